"""Holding a run: the rule every holder lives by, written once.

A run is held by one process at a time, named by its attempt token (invariant 2). Two kinds of
holder use this module: an agent's attempt (attempt.py), which holds the run for the training
process it started, and a script that holds its own run (the API without an agent, api/standalone.py).
Each says only how to kill its process and how to tell it to end (``Process``); everything else is
here:

- the lease: taken at a moment measured by our own monotonic clock *before* the request was sent,
  renewed every heartbeat (renew.lua), so our deadline is never later than Redis's;
- what each renewal answer means: keep going, an operator's stop or requeue, a cancelled sweep,
  or fenced (the run is someone else's: stop now);
- the guard (guard.py): a thread of its own, shared by every hold of the process, that kills the
  process half a heartbeat before the lease could lapse, so nothing the holder's loop waits on (a
  hung Redis call, a slow disk) can delay it (invariant 5); and behind it the watchdog
  (watchdog.py), a process of its own fed each new deadline, which kills the process a quarter
  heartbeat later when the holder's interpreter could not (frozen, stalled, dead);
- the end: the exit-status table (``states.outcome``) applied once, its reason, and the fenced
  writes retried until they land or are refused, past the lease's end too (they are checked
  against the token: a run somebody took meanwhile refuses them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sweepd.queue import bounds, states
from sweepd.queue.records import Claim
from sweepd.queue.store import Renewal, Store

from .backoff import REDIS_DOWN, Backoff
from .guard import GUARD
from .reports import Reports
from .watchdog import Watchdog

HEARTBEAT = 10.0  # seconds between renewals, by default (an agent's --heartbeat, a script's SWEEPD_HEARTBEAT)
GRACE = 110.0  # seconds to checkpoint and end, by default: fits in AWS's 2-minute notice with room to requeue
LEASE_HEARTBEATS = 3  # a lease lasts this many heartbeats: two can be missed before it lapses
FLUSH_EVERY = 0.25  # seconds between writes of buffered metric rows


def lease_of(heartbeat: float) -> float:
    """How long a lease lasts for a holder that renews every ``heartbeat`` seconds (every holder's rule)."""
    return heartbeat * LEASE_HEARTBEATS


Ending = Literal["preempt", "stop", "pause"]
#: What a renewal can ask of the holder, and the reason the run's record will give.
ENDINGS: dict[Renewal, tuple[Ending, str]] = {
    "stop": ("stop", "operator-stop"),
    "cancel": ("stop", "sweep-cancelled"),
    "requeue": ("preempt", "operator-requeue"),
}


class Process(Protocol):
    """The process a run is held for, as its holder reaches it."""

    def kill(self) -> None:
        """Kill it and everything it started, now (called from the guard's thread)."""

    def tell(self, ending: Ending, reason: str, grace: float) -> None:
        """Ask it to checkpoint and end within ``grace`` seconds (it must not block for long)."""


class Say(Protocol):
    """Where a hold reports what happened: the agent's structured log, or a script's stderr."""

    def __call__(self, level: Literal["info", "warning", "error"], event: str, /, **fields: Any) -> None: ...


@dataclass(frozen=True)
class Recorded:
    """How an attempt's end was recorded. ``how`` is ``retry`` (failed, requeued for another try),
    ``requeued`` (at the front, for the table or a preemption), ``ended`` (a terminal state), or
    ``lost`` (refused, or Redis away until the lease's end: the reaper requeues it)."""

    how: Literal["retry", "requeued", "ended", "paused", "lost"]
    state: str
    reason: str
    failed: bool


class Hold(Reports):
    """One run held for one process: ``heartbeat`` and ``grace`` in seconds, ``taken_at`` the moment
    (monotonic) before the request that took the lease was sent."""

    def __init__(
        self,
        store: Store,
        claim: Claim,
        process: Process,
        heartbeat: float,
        grace: float,
        taken_at: float,
        *,
        say: Say,
        on_redis_error: Callable[[], None] = lambda: None,
        watchdog: Watchdog | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store, self.claim, self.process = store, claim, process
        self.heartbeat, self.grace = heartbeat, grace
        self.lease = lease_of(heartbeat)
        self.say, self.on_redis_error = say, on_redis_error
        #: Asked while an ended run's record waits for Redis past the lease: True stops waiting.
        self.give_up = give_up
        self.watchdog = watchdog
        self._watched: int | None = None  # the pid the watchdog guards for this hold
        #: Our own, conservative view of the lease's end: measured from before each renewal was sent.
        self.lease_until = taken_at + self.lease
        self.next_renew = taken_at + heartbeat
        self.init_reports()
        self.preempting = False  # decided here or said by the script, whether or not Redis heard it
        self.marked = False  # the run is `preempting` in Redis
        self.ending: Ending | None = None  # why the run is being ended early, once decided
        self.reason = ""
        self.kill_at: float | None = None  # when the grace after an early end is over (monotonic)
        self.rung: int | None = None  # a "pause" ending's ASHA rung (None: max_iter, it finishes)
        self.fenced = threading.Event()  # the guard killed the process: the run is not ours any more
        self.flushed_at = 0.0  # when a supervision turn last wrote the buffered rows (tick.py)
        self._released = threading.Event()
        self._guard_lock = threading.RLock()  # a kill by the guard, against release()
        self._renewals = Backoff(cap=max(0.1, heartbeat / 2))
        self._mark_failed = False
        self._record_lock = threading.Lock()
        self._recorded = False

    # the lease ----------------------------------------------------------------------------------

    def guard(self, pid: int | None = None, *, group: bool = False) -> None:
        """Start the guard: from now on the process is killed before the lease can lapse. With
        ``pid`` the watchdog guards it too (``group``: and its process group), from outside."""
        GUARD.watch(self)
        if pid is not None and self.watchdog is not None:
            self._watched = pid
            self.watchdog.watch(pid, self._watchdog_deadline(), group=group)

    def release(self) -> None:
        """The process has ended (or is ending on its own): stop guarding it. Once this returns,
        the guard will not kill it (a kill already under way is waited for)."""
        with self._guard_lock:
            self._released.set()
        GUARD.forget(self)
        if self._watched is not None and self.watchdog is not None:
            self.watchdog.release(self._watched)
            self._watched = None

    def holding(self) -> bool:
        """A heartbeat of the lease is left at least: work done for the run now (a snapshot's
        commit) still lands while it is ours."""
        return time.monotonic() < self.lease_until - self.heartbeat

    def lapsing(self) -> bool:
        """The guard's deadline has passed: the process is (being) killed and the run may be
        someone else's, so its end must not be recorded by us (the watchdog may have killed it
        while we could not run). Says so once, whoever notices first."""
        if time.monotonic() < self.lease_until - self.heartbeat / 2:
            return False
        self._fence()
        return True

    def _fence(self) -> None:
        with self._record_lock:
            if self.fenced.is_set():
                return
            self.fenced.set()
        self.say(
            "error",
            "the run's lease could not be renewed in time (or the run is no longer ours): stopping its "
            "process, so that no other can run the same run at once (fencing)",
        )

    def _watchdog_deadline(self) -> float:
        """A quarter heartbeat after the guard's: the guard acts first (and says why) whenever it
        can run, also when a renewal found the run fenced and the guard's deadline is now."""
        return max(self.lease_until - self.heartbeat / 4, time.monotonic() + self.heartbeat / 4)

    def _extend(self, until: float) -> None:
        earlier = until < self.lease_until
        self.lease_until = until
        if earlier:  # fenced: the guard acts now, not at its next look
            GUARD.poke()
        if self._watched is not None and self.watchdog is not None:
            self.watchdog.feed(self._watched, self._watchdog_deadline())

    def guard_deadline(self) -> float:
        """Half a heartbeat before our view of the lease's end (guard.py)."""
        return self.lease_until - self.heartbeat / 2

    def guard_fire(self) -> None:
        """Called by the guard's thread once the deadline passed: fence, and kill the process."""
        with self._guard_lock:
            if self._released.is_set():
                return
            self._fence()
            self.process.kill()

    def renew(self, now: float) -> Renewal | None:
        """Renew the lease (``now`` read before the call is sent) and act on the answer: an ending
        is started, fenced lets the guard act at once. None when Redis did not answer: retried with
        backoff (at ``next_renew``) while the guard watches the deadline."""
        try:
            answer = self.store.renew(self.claim, self.lease, tell_gone=True)
        except REDIS_DOWN as exc:
            self.on_redis_error()
            self.next_renew = now + self._renewals.next()
            if self._renewals.failures == 1:
                self.say("warning", "Redis is not answering: retrying, the training process goes on", error=str(exc))
            return None
        if self._renewals.failures:
            self.say("info", "Redis is answering again", failures=self._renewals.failures)
            self._renewals.reset()
        if answer == "gone":
            self.say(
                "error",
                "the run no longer exists in Redis (Redis lost its data, or its keys were deleted): stopping "
                "its process",
            )
            answer = "fenced"  # to every caller it is the same: not ours, stop now
            self._extend(now)
        elif answer == "fenced":
            self._extend(now)  # not ours any more: the guard stops the process at once
            self.say("error", "the run is no longer ours (requeued elsewhere): stopping its process")
        else:
            self._extend(now + self.lease)
        if answer in ENDINGS and self.ending is None:
            kind, reason = ENDINGS[answer]
            self.end(kind, reason, now + self.grace)
        self.next_renew = now + self.heartbeat
        return answer

    # ending early -------------------------------------------------------------------------------

    def end(self, kind: Ending, reason: str, kill_at: float) -> None:
        """End the run early: a preemption (it goes back to the queue), a stop (it ends
        ``stopped``) or an ASHA pause (it waits ``paused`` at ``self.rung``, or finishes at max_iter).
        The process is told, and has until ``kill_at`` (monotonic)."""
        self.ending, self.reason, self.kill_at = kind, reason, kill_at
        if kind == "preempt":
            self.preempting = True
            self.mark()
        self.process.tell(kind, reason, max(0.0, kill_at - time.monotonic()))

    def note_preempting(self, reason: str) -> None:
        """The run is being preempted (the script said so, or the agent's machine is going away);
        the first reason given is the one recorded."""
        self.preempting = True
        self.reason = self.reason or reason

    def script_marked(self, *, mark: bool = True) -> None:
        """The script said its run is being preempted (``mark_preempting``): noted, with that
        reason unless another came first, and while it runs (``mark``) marked in Redis too."""
        self.note_preempting("child-marked")
        if mark:
            self.mark()

    def mark(self) -> None:
        """Mark the run ``preempting`` in Redis (preempt.lua, fenced); retried at each call until
        Redis has heard it."""
        if self.marked:
            return
        reason = self.reason or "signal"
        try:
            self.marked = self.store.mark_preempting(self.claim, reason)
        except REDIS_DOWN as exc:
            self.on_redis_error()
            if not self._mark_failed:
                self.say("warning", "could not mark the run preempting yet: Redis is not answering", error=str(exc))
            self._mark_failed = True
            return
        if self.marked:
            self.say("warning", "run marked preempting", reason=reason)

    # the end ------------------------------------------------------------------------------------

    def record(self, exit_code: int, *, retries: int = 0, quick_mark: bool = False) -> Recorded | None:
        """Apply the exit-status table once, as the holder, and write it: a failed run with
        ``retries`` left is requeued for another try, a requeue goes to the front with its event,
        else the run ends. ``quick_mark``: the run marked itself preempting and exited non-zero at
        once with no trigger at its holder; the ``bounds.QUICK_MARKS``-th such attempt in a row
        ends the run ``failed`` (``preempt-loop``): it would be requeued for ever. A run whose rows
        Redis refused (``refused``) ends ``failed`` with that reason. None when it was recorded
        already."""
        with self._record_lock:
            if self._recorded:
                return None
            self._recorded = True
        store, claim = self.store, self.claim
        self.persist(self.flush)
        end = states.outcome(exit_code, preempting=self.preempting, stopping=self.ending == "stop")
        reason = self.reason or end.reason
        failed = end.state in (states.FAILED, states.CRASHED)
        quick_mark = quick_mark and end.requeue
        if self.refused is not None:  # what the run sent could not be stored: a poison run fails
            reason = self.refused
            done = self.persist(lambda: store.complete(claim, states.FAILED, exit_code, reason))
            return Recorded("ended" if done else "lost", states.FAILED, reason, True)
        if quick_mark and self._quick_marks() + 1 >= bounds.QUICK_MARKS:
            reason = "preempt-loop"
            self.say(
                "error",
                "the run marks itself preempting and exits at once, attempt after attempt: failed",
                attempts=bounds.QUICK_MARKS,
            )
            done = self.persist(lambda: store.complete(claim, states.FAILED, exit_code, reason))
            return Recorded("ended" if done else "lost", states.FAILED, reason, True)
        if self.ending == "pause" and exit_code != 0:  # parked at its rung, whatever else happened
            return self._park(exit_code)
        if failed and claim.attempt <= retries:
            how: Literal["retry", "requeued", "ended"] = "retry"
            done = self.persist(lambda: store.requeue(claim, reason="retry"))
        elif end.requeue:
            how = "requeued"
            done = self.persist(lambda: store.requeue(claim, reason=reason, event=True, quick_mark=quick_mark))
        else:
            how = "ended"
            done = self.persist(lambda: store.complete(claim, end.state, exit_code, reason))
        return Recorded(how if done else "lost", end.state, reason, failed)

    def _quick_marks(self) -> int:
        try:
            return self.store.quick_marks(self.claim.run_id)
        except REDIS_DOWN:
            return 0  # counted at the requeue all the same

    def _park(self, exit_code: int) -> Recorded:
        """An ASHA pause: ``paused`` at its rung (pause.lua), or ``finished`` at max_iter."""
        store, claim, rung = self.store, self.claim, self.rung
        if rung is None:
            done = self.persist(lambda: store.complete(claim, states.FINISHED, exit_code, self.reason))
            return Recorded("ended" if done else "lost", states.FINISHED, self.reason, False)
        done = self.persist(lambda: store.pause(claim, rung, self.reason))
        return Recorded("paused" if done else "lost", states.PAUSED, self.reason, False)

    def persist(self, write: Callable[[], bool]) -> bool:
        """Do a fenced write once the process has ended, retrying while Redis is away, past the
        lease's end too: the write is checked against our token, so it lands only if nobody took
        the run meanwhile, and a store back from an outage gives us a heartbeat before it reaps
        (reap.lua). False when it was refused (no longer ours: the run went back to the queue), or
        when ``give_up`` says so once the lease has lapsed (the agent is going away)."""
        backoff = Backoff(cap=max(0.1, self.heartbeat / 2))
        lapsed = False
        while True:
            try:
                if write():
                    if lapsed:
                        self.say("info", "the run's end was recorded after its lease's end: nobody had taken it")
                    return True
                self.say("warning", "the run's end was not recorded: the run is no longer ours")
                return False
            except REDIS_DOWN as exc:
                self.on_redis_error()
                if not lapsed and time.monotonic() + backoff.cap >= self.lease_until:
                    lapsed = True
                    self.say(
                        "warning",
                        "the run's lease ends before its end could be recorded: still trying (it lands only if "
                        "nobody has taken the run)",
                        error=str(exc),
                    )
                if lapsed and self.give_up():
                    self.say("error", "could not record the run's end: left to the reaper", error=str(exc))
                    return False
                time.sleep(backoff.next())
