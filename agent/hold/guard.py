"""The lease guard: one thread, for every run this process holds, that kills a run's process half
a heartbeat before its lease could lapse (invariant 5).

It is a thread of its own so that nothing a holder's loop waits on (a hung Redis call, a slow disk)
can delay it. One thread serves every hold, rather than one thread per run: starting a thread for
each run of a short command cost the dispatch about half a millisecond a run, and an agent with
slots holds several runs at once. Behind it stands the watchdog process (watchdog.py).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

POLL = 0.1  # the longest the guard sleeps while it guards: a deadline moved earlier is seen within it


class Guarded(Protocol):
    """What the guard needs of a hold."""

    def guard_deadline(self) -> float:
        """When (monotonic) the process must be killed, if the lease has not been renewed by then."""

    def guard_fire(self) -> None:
        """The deadline passed: fence the run and kill its process (once; never after release)."""


class Guard:
    """Watches every hold given to ``watch`` until ``forget``; its thread starts with the first."""

    def __init__(self) -> None:
        self._holds: set[Guarded] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, hold: Guarded) -> None:
        with self._changed:
            self._holds.add(hold)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="sweepd-lease-guard")
                self._thread.start()
            self._changed.notify()

    def forget(self, hold: Guarded) -> None:
        with self._changed:
            self._holds.discard(hold)

    def poke(self) -> None:
        """A deadline moved earlier (the run is fenced): look at once."""
        with self._changed:
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [hold for hold in self._holds if hold.guard_deadline() <= now]
                self._holds.difference_update(due)
                if not due:
                    self._changed.wait(POLL if self._holds else None)
                    continue
            for hold in due:  # outside the lock: a kill may take a while, and other holds go on
                hold.guard_fire()


#: The process's guard: every hold in it (an agent's slots, a script's own run) shares the thread.
GUARD = Guard()
