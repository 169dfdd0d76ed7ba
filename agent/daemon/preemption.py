"""The preemption decision in one small class: whether the machine is going away, why, by when.

Signals, cloud notices and the training script feed it (from handlers' flags and watcher threads);
the agent's loop reads it. The clock is passed in, so tests drive every case without waiting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Preemption:
    """``grace`` is how long a preempted run gets to checkpoint; a notice's deadline caps it.

    ``margin`` is kept back from a notice's deadline for killing the process tree and requeueing
    the run before the machine is gone.
    """

    grace: float
    margin: float = 5.0
    reason: str | None = None
    requested_at: float | None = None
    deadline: float | None = None
    draining: bool = False
    burst: float = 1.0
    cut_at: float | None = None
    _counted_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request(self, reason: str, *, now: float, deadline: float | None = None) -> bool:
        """Record that the machine is going away. True the first time; a later request keeps the
        first reason and only ever brings the deadline closer."""
        with self._lock:
            first = self.requested_at is None
            if first:
                self.reason, self.requested_at = reason, now
            if deadline is not None and (self.deadline is None or deadline < self.deadline):
                self.deadline = deadline
            return first

    def repeat(self, *, now: float) -> bool:
        """A trapped signal arrived (after ``request``). The first is only remembered; a later one
        (SLURM signals again when its GraceTime ends, an operator presses Ctrl-C twice) halves what
        is left of the grace. Signals within ``burst`` seconds of the last one counted are one
        signal, so systemd's SIGTERM+SIGCONT or a storm of repeats cannot cut a checkpoint to
        nothing. True when the grace was shortened."""
        with self._lock:
            if self._counted_at is None:
                self._counted_at = now
                return False
            if now - self._counted_at < self.burst:
                return False
            self._counted_at = now
            self.cut_at = now + max(0.0, self._kill_at() - now) / 2
            return True

    def drain(self) -> None:
        """Take no new runs, but let the current one finish (AWS's rebalance recommendation)."""
        self.draining = True

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def may_claim(self) -> bool:
        return not self.requested and not self.draining

    def since_request(self, now: float) -> float | None:
        """Seconds since the request (how long a handoff took), or None without one."""
        return None if self.requested_at is None else round(now - self.requested_at, 4)

    def kill_at(self) -> float:
        """When whatever is left of the training process is killed: the grace period after the
        request, or sooner if the notice's deadline (less the margin) or a repeated signal says so."""
        with self._lock:
            return self._kill_at()

    def _kill_at(self) -> float:
        assert self.requested_at is not None, "no preemption was requested"
        at = self.requested_at + self.grace
        if self.deadline is not None:
            at = min(at, self.deadline - self.margin)
        if self.cut_at is not None:
            at = min(at, self.cut_at)
        return max(at, self.requested_at)
