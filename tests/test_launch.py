"""Attempts' private directories (launch.Scratch): handed out empty, nothing left behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sweepd.agent.daemon import launch


def test_an_attempts_directory_comes_back_empty_and_goes_at_the_end() -> None:
    scratch = launch.Scratch()
    first, second = scratch.take(), scratch.take()  # two slots at once: two directories
    assert first != second
    Path(first, "logs").mkdir()
    Path(first, "logs", "reader.log").write_text("x")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(os.path.join(first, "agent.sock"))  # a channel that was never closed
    scratch.give(first)
    again = scratch.take()
    assert again == first and os.listdir(again) == []
    scratch.give(again)
    scratch.close()
    assert not os.path.exists(first) and not os.path.exists(second)
