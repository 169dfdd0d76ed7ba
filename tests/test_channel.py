"""The agent's end of the script's socket: a script that goes away in the middle of a conversation
ends its connection, never the agent's serving thread with a traceback (seen in CI: a run stopped
while its agent's reply was unread reset the connection under the reader)."""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from sweepd.agent.daemon.channel import Channel


def test_a_connection_reset_by_the_script_ends_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    broken: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: broken.append(args.exc_value))
    channel = Channel(str(tmp_path / "s"), lambda message: seen.append(message) or {"ok": True})
    script = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    script.connect(channel.path)
    select.select([channel.fileno()], [], [], 5)
    channel.accept()
    script.sendall(b'{"op": "hello"}\n')
    assert script.recv(100).startswith(b'{"ok"')
    script.sendall(b'{"op": "one"}\n{"op": "two"}\n')  # replies the script will never read
    while len(seen) < 3:
        threading.Event().wait(0.01)
    script.close()  # unread data in its buffer: the agent's next read is reset (ECONNRESET)
    channel.close(timeout=5)
    assert [m["op"] for m in seen] == ["hello", "one", "two"]
    assert broken == [], broken
