"""The line the training script talks to its agent on: a unix socket, one JSON object per line.

The agent passes the socket's path in ``SWEEPD_AGENT_SOCKET``; the script never needs Redis or its
password. Messages from the script: ``{"op": "hello"}`` (the API says it is there; the agent answers
``{"op": "hello", ...}`` on that connection), ``{"op": "log", "row": {...}}`` and
``{"op": "preempting"}``. Messages to the script: ``{"op": "preempting"}`` when preemption is coming.
Handlers run on the channel's threads; they must be quick and must not raise; what a handler returns
(a dict) is sent back on the connection the message came from.

A line is read up to ``bounds.LINE_BYTES``: a longer one is read on in pieces of that size and
dropped, so no script can grow the agent by sending a line without end. A line that is not a JSON
object (or nests deeper than Python parses) is dropped too; each drop is told to ``on_dropped``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from sweepd.queue.bounds import LINE_BYTES

BACKLOG = 64  # connections waiting for the loop to accept them (every rank of a run may connect)

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


class Channel:
    """Listens on ``path`` for the training process (and any process it starts) to connect.

    Connections are accepted by the holder's own loop (``accept``, when ``fileno`` is readable) and
    by ``close``, not by a thread of the channel's: most runs never connect, and a thread started
    for each run cost a run of `true` about half a millisecond. Each connection is served on a
    thread of its own, so a script's lines are read whatever the loop is doing."""

    def __init__(self, path: str, handler: Handler, on_dropped: Callable[[str], None] = lambda what: None) -> None:
        self.path = path
        self._handler = handler
        self._dropped = on_dropped
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        os.chmod(path, 0o600)
        self._server.listen(BACKLOG)
        self._server.setblocking(False)
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def fileno(self) -> int:
        """Readable when a process is waiting to be accepted."""
        return self._server.fileno()

    def accept(self) -> None:
        """Accept every process waiting to connect (never blocks), each served on its own thread."""
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # none waiting (BlockingIOError), or closed
                return
            conn.setblocking(True)
            with self._lock:
                self._clients.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in self._lines(lines):
                try:
                    message = json.loads(line)
                except (ValueError, RecursionError):
                    message = None
                if not isinstance(message, dict):
                    self._dropped("socket line not a JSON object")
                    continue
                reply = self._handler(message)
                if reply is not None:
                    with self._lock, contextlib.suppress(OSError):  # one writer at a time per socket
                        conn.sendall((json.dumps(reply) + "\n").encode())

    def _lines(self, lines: BinaryIO) -> Iterator[bytes]:
        """The connection's lines, each at most ``LINE_BYTES`` (a longer one is read piece by piece,
        let go and counted), until the script closes it or it breaks: a script killed in the middle of
        a write resets the connection, which ends its lines like a close, not the agent's thread."""
        try:
            while line := lines.readline(LINE_BYTES + 1):
                if len(line) > LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := lines.readline(LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # the rest of the line, read and let go piece by piece
                    self._dropped("socket line too long")
                    continue
                yield line
        except OSError:
            return

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every connected script (best effort: a script may have gone)."""
        data = (json.dumps(message) + "\n").encode()
        with self._lock:
            for conn in self._clients:
                with contextlib.suppress(OSError):
                    conn.sendall(data)

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening, and wait a little for what the script already sent to be handled (also
        by a process that connected after the loop last looked)."""
        self.accept()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            for conn in self._clients:
                with contextlib.suppress(OSError):
                    conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
