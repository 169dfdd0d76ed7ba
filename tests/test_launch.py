"""An attempt's private directory (launch.scratch / discard): nothing of it is left behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sweepd.agent.daemon import launch


def test_an_attempts_directory_goes_whatever_it_holds() -> None:
    plain = launch.scratch()
    Path(plain, "wandb-config.yaml").write_text("wandb_version: 1")
    nested = launch.scratch()
    Path(nested, "logs").mkdir()
    Path(nested, "logs", "reader.log").write_text("x")
    sock = launch.scratch()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(os.path.join(sock, "agent.sock"))  # an agent that died before closing its channel
    for d in (plain, nested, sock, launch.scratch()):
        launch.discard(d)
        assert not os.path.exists(d)
