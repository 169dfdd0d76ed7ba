"""The embedded server's keeper: stops it once no client has connected for a while.

The embedded Redis (connections.py) is started for the commands and agents of one user on one
machine; left running it would outlive its use, and outlive the install it came from (a deleted
virtualenv's server holding the socket, answering every later sweepd). So its starter also starts
this process beside it, detached: it holds one connection (named ``sweepd-keeper``) and reads the
server's ``INFO`` every few seconds. When, for ``SWEEPD_EMBEDDED_IDLE`` seconds (default 300), it
has been the only client and no connection was made at all (``total_connections_received`` did not
move: a command's ping counts), it takes the starters' lock, looks once more, and sends
``SHUTDOWN``: the append-only file is flushed, nothing is lost, and the next sweepd starts the
server again. The server gone some other way, the keeper exits.

It runs as ``python -I -S keeper.py SOCKET LOCK IDLE`` and imports only the standard library, so
it starts fast, and a deleted install cannot break it once started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time

NAME = "sweepd-keeper"
DEFAULT_IDLE = 300.0


def command(conn: socket.socket, *args: str) -> bytes:
    """Send one command (RESP) and return its reply's payload: a bulk string's bytes, a status's
    text; an error reply raises ``OSError``."""
    conn.sendall(b"".join([f"*{len(args)}\r\n".encode(), *(f"${len(a)}\r\n{a}\r\n".encode() for a in args)]))
    buf = b""
    while b"\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    if head[:1] == b"-":
        raise OSError(head[1:].decode(errors="replace"))
    if head[:1] != b"$":
        return head[1:]
    size = int(head[1:])
    while len(rest) < size + 2:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        rest += chunk
    return rest[:size]


def activity(conn: socket.socket) -> tuple[int, int]:
    """Clients connected now (the keeper included), and connections ever made."""
    fields = dict(
        line.split(":", 1) for line in command(conn, "INFO").decode(errors="replace").splitlines() if ":" in line
    )
    return int(fields["connected_clients"]), int(fields["total_connections_received"])


def keep(path: str, lock: str, idle: float) -> None:
    """Watch the server at ``path`` until it has been unused for ``idle`` seconds, then stop it."""
    poll = max(0.1, min(5.0, idle / 4))
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(path)
        command(conn, "CLIENT", "SETNAME", NAME)
        clients, seen = activity(conn)
        quiet_since = time.monotonic()
        while True:
            time.sleep(poll)
            clients, total = activity(conn)
            if clients > 1 or total != seen:
                quiet_since, seen = time.monotonic(), total
                continue
            if time.monotonic() - quiet_since < idle:
                continue
            with open(lock, "a") as held:
                fcntl.flock(held, fcntl.LOCK_EX)  # no starter is between its ping and its start
                clients, total = activity(conn)
                if clients > 1 or total != seen:
                    quiet_since, seen = time.monotonic(), total
                    continue
                with contextlib.suppress(OSError):
                    command(conn, "SHUTDOWN")  # answered by the connection closing
                gone(path)
                return


def gone(path: str, timeout: float = 30.0) -> None:
    """Wait until nothing answers at ``path`` (the server has flushed and exited), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(path)
        except OSError:
            return
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    path, lock, idle = argv[1], argv[2], float(argv[3])
    if os.fork():  # the starter reaps this at once; the child, reparented, keeps the server
        return 0
    with contextlib.suppress(OSError, ValueError, KeyError):  # the server went away: nothing to keep
        keep(path, lock, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
