"""systemd's notify protocol (``sd_notify(3)``), with no dependencies.

Under a ``Type=notify`` unit systemd sets ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``. Each call here sends one
datagram of newline-separated ``KEY=VALUE`` assignments to that socket. Outside systemd (no
``NOTIFY_SOCKET``) every call is a no-op, and a failed send is swallowed: a notification is advice to
the service manager and must never stop the agent.

The training process does not need these variables: ``ENV_VARS`` names them for whoever builds its
environment (with ``NotifyAccess=main`` systemd ignores anything it would send anyway).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

SEND_TIMEOUT = 1.0  # seconds: a datagram to a stuck service manager must not hang the agent


def _address(value: str) -> bytes | None:
    """The socket address for ``NOTIFY_SOCKET``: an absolute path, or ``@name`` for the abstract
    namespace (a leading NUL byte). Anything else (empty, relative, ``vsock:``) is not supported."""
    if value.startswith("/"):
        return os.fsencode(value)
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``WATCHDOG_USEC`` when the watchdog is on and meant for this process, as
    ``sd_watchdog_enabled(3)`` decides: a positive integer, and ``WATCHDOG_PID`` unset or ``pid``."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    return usec


def _one_line(text: str) -> str:
    """A value must not contain a newline: it would start another assignment."""
    return " ".join(text.splitlines())


class Notifier:
    """Tells systemd how the agent is doing; does nothing when not started by systemd.

    ``clock`` (monotonic seconds) paces ``maybe_watchdog``; tests pass a fake one.
    """

    def __init__(
        self,
        address: bytes | None = None,
        watchdog_usec: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.enabled: bool = address is not None
        self._watchdog_usec = watchdog_usec if self.enabled else None
        self._clock = clock
        self._last_ping: float | None = None
        self.last_error: OSError | None = None  # the last send that failed, for diagnosis only

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Notifier:
        """A notifier for the socket and watchdog systemd gave this process (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        address = _address(env.get("NOTIFY_SOCKET", ""))
        return cls(address, _watchdog_usec(env, os.getpid()), clock=clock)

    # messages ----------------------------------------------------------------------------------------

    def ready(self, status: str = "") -> None:
        """Start-up is done (``Type=notify`` units are "starting" until this)."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """A one-line status for ``systemctl status``."""
        self._send(f"STATUS={_one_line(text)}")

    def stopping(self, status: str = "") -> None:
        """The agent has begun to shut down (a preemption, or the end of the sweep)."""
        self._send("STOPPING=1", status)

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before systemd's start/stop timeout fires (from now)."""
        usec = max(0, int(seconds * 1_000_000))
        self._send(f"EXTEND_TIMEOUT_USEC={usec}")

    # the watchdog ------------------------------------------------------------------------------------

    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half of ``WATCHDOG_USEC``, as ``sd_watchdog_enabled(3)`` advises;
        None without a watchdog for this process."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def watchdog(self) -> None:
        """Ping the watchdog now."""
        self._last_ping = self._clock()
        self._send("WATCHDOG=1")

    def maybe_watchdog(self) -> None:
        """Ping when half of ``watchdog_interval()`` has passed since the last ping (or there was none).

        Cheap enough for every turn of a loop: one clock read when no ping is due. A caller that calls
        it at least every ``watchdog_interval()`` seconds pings at least that often, half of systemd's
        timeout, which leaves the other half as margin.
        """
        interval = self.watchdog_interval()
        if interval is None:
            return
        if self._last_ping is None or self._clock() - self._last_ping >= interval / 2:
            self.watchdog()

    # the socket --------------------------------------------------------------------------------------

    def _send(self, assignment: str, status: str = "") -> None:
        if self.address is None:
            return
        message = assignment if not status else f"{assignment}\nSTATUS={_one_line(status)}"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT)
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError as exc:  # no listener, queue full, socket gone: never the agent's problem
            self.last_error = exc
