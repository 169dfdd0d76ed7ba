"""The agent's intake: what signal handlers and notice watchers recorded, turned into the
preemption decision (preemption.py) by the loop or a slot's attempt, whichever looks first.

Handlers and watcher threads only record and wake (huey's rule); the logging, the decision and the
wake-up of every slot happen here, one caller at a time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence

from . import logs
from .notices import Notice
from .preemption import Preemption
from .sdnotify import Notifier
from .signals import SignalFlags, Waker

log = logs.get("sweepd.agent")


class Intake:
    def __init__(self, preemption: Preemption, notifier: Notifier, wakers: Sequence[Waker]) -> None:
        self.preemption, self.notifier = preemption, notifier
        self.flags = SignalFlags()  # the agent installs it (its main thread), waking ``wakers[0]``
        self.wakers = list(dict.fromkeys(wakers))  # a lone slot sleeps on the agent's own
        self._notices: list[Notice] = []
        self._seen_signals = 0
        self._seen: tuple[bool, bool] = (False, False)  # the decision as the slots were last woken for it
        self._lock = threading.Lock()

    def on_notice(self, notice: Notice) -> None:
        """Called from a watcher thread: only record and wake the loop."""
        self._notices.append(notice)
        self.wakers[0].wake()

    def __call__(self) -> None:
        """Take in what was recorded; a change of the decision (preempting, draining) wakes every slot."""
        with self._lock:
            self._take_in()
            now = (self.preemption.requested, self.preemption.draining)
            changed, self._seen = now != self._seen, now
        if changed:
            for waker in self.wakers:
                waker.wake()

    def _take_in(self) -> None:
        now = time.monotonic()
        preemption = self.preemption
        while self._seen_signals < len(self.flags.received):
            signum = self.flags.received[self._seen_signals]
            self._seen_signals += 1
            first = preemption.request("signal", now=now)
            log.warning("signal received", signal=signal.Signals(signum).name, preempting=first)
            if preemption.repeat(now=now):
                left = round(preemption.kill_at() - now, 3)
                log.warning("signal repeated: grace shortened", grace_left=left)
        while self._notices:
            notice = self._notices.pop(0)
            if notice.drain_only:
                preemption.drain()
                log.warning("taking no new runs", reason=notice.reason, detail=notice.detail)
                continue
            deadline = None if notice.deadline is None else now + (notice.deadline - time.time())
            first = preemption.request(notice.reason, now=now, deadline=deadline)
            log.warning("preemption notice", reason=notice.reason, detail=notice.detail, first=first)
            self.notifier.stopping(f"{notice.reason}: {notice.detail}")
