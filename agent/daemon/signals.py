"""Signals and wake-ups: handlers only record what arrived; the loop does the work.

The agent's loop sleeps in ``Waker.wait`` on three things at once: a self-pipe (which Python's
``signal.set_wakeup_fd`` and the agent's own threads write to), the training process's pidfd (it
became readable: the process exited), and a timeout (the next heartbeat). So a SIGTERM, a cloud
notice or the end of a run is acted on at once, without polling.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from types import FrameType


class Waker:
    """A self-pipe that signals and threads write to, and that the loop waits on."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    @property
    def fd(self) -> int:
        return self._w

    @property
    def readable(self) -> int:
        """The end to watch: readable once woken (``drain`` empties it)."""
        return self._r

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"\0")

    def wait(self, timeout: float | None, *fds: int) -> None:
        """Return when woken, when one of ``fds`` is readable, or after ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            timeout = 0
        poller = select.poll()  # not select(): a process with many files has descriptors past 1024
        for fd in (self._r, *fds):
            poller.register(fd, select.POLLIN)
        ready = [fd for fd, _ in poller.poll(None if timeout is None else 1000 * timeout)]
        if self._r in ready:
            self.drain()

    def drain(self) -> None:
        """Forget the wake-ups so far (what they meant was recorded by whoever woke us)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._r, 512):
                pass

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class SignalFlags:
    """Records which signals arrived. Repeats are recorded and change nothing else.

    SLURM sends SIGCONT+SIGTERM and may send SIGTERM again at the end of GraceTime; systemd follows
    SIGTERM with SIGCONT. None of that may cut a checkpoint short or skip the requeue, so a handler
    never does more than append here.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def install(self, signums: Iterable[int], waker: Waker) -> None:
        """Trap ``signums`` (main thread only) and make every signal wake ``waker``."""
        for signum in signums:
            self._previous[signum] = signal.signal(signum, self._handle)
        signal.set_wakeup_fd(waker.fd, warn_on_full_buffer=False)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        signal.set_wakeup_fd(-1)

    def detach(self) -> None:
        """For a process that is ending: stop waking the self-pipe (it is about to close), and
        ignore the trapped signals from now on. Not back to their defaults, which would let a
        repeated SIGTERM kill it on its way out (exit 143 instead of its own code); and ignoring is
        what the interpreter leaves in place at exit, where it resets Python handlers."""
        signal.set_wakeup_fd(-1)
        for signum in self._previous:
            signal.signal(signum, signal.SIG_IGN)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


def parse_signal(name: str) -> signal.Signals:
    """``USR2``, ``SIGUSR2`` or ``12`` -> ``signal.SIGUSR2``; ValueError for anything else."""
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None
