"""The script's end of the channel to its agent (channel.py): a unix socket, one JSON object a line.

On connecting, the script says hello and waits (briefly) for the agent's answer: from then on the
agent knows the script reports through the API and reads no metrics from its printed lines. A send
never blocks the script for long: it gives up after ``SEND_WAIT`` seconds (an agent that stopped
reading is frozen or gone) and drops that message with a warning.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HELLO_WAIT = 2.0  # seconds to wait for the agent's answer to hello
SEND_WAIT = 2.0  # seconds a message may take to send before it is dropped


class AgentLink:
    """A ``Sink`` (script.py) that hands rows and the script's word to the agent."""

    def __init__(self, path: str, on_notice: Callable[[str], None]) -> None:
        self.path = path
        self._on_notice = on_notice
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._hello = threading.Event()
        self._warned = False

    def connect(self) -> bool:
        """Connect and say hello (a no-op when connected); False when the agent cannot be reached."""
        with self._lock:
            return self._connect() is not None

    def _connect(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        self._sock = sock
        self._hello.clear()
        threading.Thread(target=self._listen, args=(sock,), daemon=True).start()
        if self._send_now(sock, {"op": "hello"}):
            self._hello.wait(HELLO_WAIT)
        return self._sock

    def _listen(self, sock: socket.socket) -> None:
        """Read what the agent says: its answer to hello, and that preemption is coming."""
        with contextlib.suppress(OSError), sock.makefile("rb") as lines:
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("op") == "hello":
                    self._hello.set()
                elif message.get("op") == "preempting":
                    self._on_notice(str(message.get("reason") or "agent"))

    def send(self, message: dict[str, Any]) -> bool:
        with self._lock:
            sock = self._connect()
            return sock is not None and self._send_now(sock, message)

    def _send_now(self, sock: socket.socket, message: dict[str, Any]) -> bool:
        """Send one line within SEND_WAIT, without blocking the socket's reader; on failure the
        connection is dropped (a part-sent line is then cut off) and the next send reconnects."""
        data = (json.dumps(message) + "\n").encode()
        deadline = time.monotonic() + SEND_WAIT
        while data:
            try:
                data = data[sock.send(data, socket.MSG_DONTWAIT) :]
                continue
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left > 0 and select.select([], [sock], [], left)[1]:
                    continue
            except OSError:
                pass
            self._drop(sock)
            return False
        return True

    def _drop(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if not self._warned:
            self._warned = True
            print("sweepd: warning: the agent is not reading: a message to it was dropped", file=sys.stderr)

    # the Sink interface ---------------------------------------------------------------------------

    def rows(self, items: list[dict[str, Any]], cut: int = 0) -> None:
        for row in items:
            if not self.send({"op": "log", "row": row, **({"cut": cut} if cut else {})}):
                print(json.dumps(row), file=sys.stderr)  # kept in the agent's output log at least

    def mark(self) -> None:
        self.send({"op": "preempting"})

    def close(self, exit_code: int) -> None:
        pass  # the agent records the process's own exit status
