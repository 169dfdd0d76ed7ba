"""The agent: claim a run, run it (attempt.py), record it; until the sweep is complete or the machine
is going away.

Signal handlers and notice watchers only record what happened (``signals``, ``Preemption``) and wake
the loop; the loop does every write, log and kill. On preemption the agent lets its run checkpoint,
requeues it at the front, and exits 0 without taking another run: a clean stop for systemd, SLURM
and Kubernetes.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

import structlog

from sweepd.queue.ids import host_part
from sweepd.queue.next_run import NextRuns
from sweepd.queue.presence import Beat, Woken
from sweepd.queue.records import Claim
from sweepd.queue.space import SweepConfig
from sweepd.queue.store import Reaped, Store

from ..hold.backoff import REDIS_DOWN, Backoff
from ..hold.watchdog import Watchdog
from . import launch, logs
from .attempt import Attempt, Result
from .idle import Idle
from .metrics import Metrics
from .notices import Notice, Watcher, make_watchers
from .options import Options
from .preemption import Preemption
from .sdnotify import Notifier
from .signals import SignalFlags, Waker
from .slots import Slots

log = logs.get("sweepd.agent")


@cache
def _version() -> str:
    """The installed sweepd's version, read once: a read of the package metadata costs a
    heartbeat about 2 ms."""
    try:
        return version("sweepd")
    except PackageNotFoundError:
        return "unknown"


def new_agent_id() -> str:
    return f"{host_part(socket.gethostname())}-{os.getpid()}-{os.urandom(2).hex()}"


class Agent:
    def __init__(self, store: Store, options: Options, agent_id: str | None = None) -> None:
        self.store = store
        self.opts = options
        self.sid = options.sweep_id
        self.id = agent_id or new_agent_id()
        #: A pool agent (pool.py) has no sweep of its own: each attempt reads its claim's config.
        self.config: SweepConfig | None = store.config(self.sid) if self.sid else None
        self.started = time.monotonic()
        self.failures = 0  # consecutive failed or crashed runs
        self.early_failures = 0  # failures within fast_failure_window of the start
        self.preemption = Preemption(grace=options.grace)
        self.waker = Waker()
        self.flags = SignalFlags()
        self.notifier = Notifier.from_env()
        self.metrics = Metrics(self.sid or f"pool:{options.pool}", slotted=bool(options.slots))
        self.watchdog = Watchdog()  # one for every run this agent holds, started with the agent
        self.watchers: list[Watcher] = []
        self._notices: list[Notice] = []
        self._seen_signals = 0
        self._last_beat = 0.0
        self._last_reap = 0.0
        self._written: dict[str, object] | None = None  # the record as last written
        self._started_ms = int(time.time() * 1000)
        # A slotted agent's poll for free slots (slots.py); a single-run agent waits in idle.py.
        self.idle_wait = min(options.idle_poll, store.call_timeout() / 2)
        watchdog = self.notifier.watchdog_interval()
        if watchdog:  # an idle agent must still ping systemd's watchdog in time
            self.idle_wait = min(self.idle_wait, watchdog / 2)
        self._current: Claim | None = None
        self._search_first = False  # the last run came from the search (next_claim)
        self.next_runs = NextRuns(store.reads, store.operations)  # the search is asked here, not in a write
        self.scratch = launch.Scratch()  # the attempts' private directories (slots take one each)
        self.idle = Idle(self)
        self._restore_signals = True
        #: ``--gpus``: a run per slot at once (slots.py), else one run at a time (this loop).
        self.slots = Slots(self) if options.slots else None
        self.slot_env: dict[str, str] = {}  # a slot's devices, for its runs (slots.py)

    # the loop ------------------------------------------------------------------------------------

    def run(self, *, restore_signals: bool = True) -> int:
        """Work the sweep; return the process exit code (0: complete, --count reached, preempted).

        ``restore_signals=False`` (``sweepd agent``) keeps the handlers until the process ends: a
        signal repeated while the agent shuts down (SLURM's after its grace) is recorded, never the
        process's death by that signal."""
        self._restore_signals = restore_signals
        logs.bind_process(sweep_id=self.sid, agent_id=self.id)
        if self.opts.metrics_port is not None:  # before anything else: a port in use is a user's mistake
            port = self.metrics.serve(self.opts.metrics_port, self.opts.metrics_addr)
            log.info("serving Prometheus metrics", url=f"http://{self.opts.metrics_addr}:{port}/metrics")
        self._start()
        try:
            return self.slots.run() if self.slots is not None else self._loop()
        finally:
            self._stop()
            logs.unbind_process("sweep_id", "agent_id")

    def _loop(self) -> int:
        done = 0
        backoff = Backoff(cap=5.0)
        while True:
            self.intake()
            if self.preemption.requested:
                log.info("preempted: exiting without taking another run", reason=self.preemption.reason)
                self.notifier.stopping(f"preempted ({self.preemption.reason})")
                return 0
            if self.opts.count is not None and done >= self.opts.count:
                log.info("count reached, exiting", runs=done)
                return 0
            try:
                code = self._step()
            except REDIS_DOWN as exc:
                self.outage(exc, backoff)
                continue
            self.answering(backoff)
            if code == "ran":
                done += 1
            elif code != "idle":
                return code

    def outage(self, exc: BaseException, backoff: Backoff) -> None:
        """A turn of the loop Redis did not answer: count it, say so once, keep systemd's watchdog
        fed, and wait out the backoff (a signal or a run's end still wakes us at once)."""
        self.metrics.redis_error()
        delay = backoff.next()
        if backoff.failures == 1:
            log.warning("Redis is not answering: retrying", error=str(exc))
        self.notifier.maybe_watchdog()
        self.waker.wait(delay)

    def answering(self, backoff: Backoff) -> None:
        """Redis answered a turn: say so if it had not, and start the backoff over."""
        if backoff.failures:
            log.info("Redis is answering again", failures=backoff.failures)
            backoff.reset()

    def _step(self) -> int | Literal["ran", "idle"]:
        """One turn of the loop: run one attempt, or wait for work; an int ends the agent."""
        if self.failing():
            return 0 if self.complete() else 1
        self.maybe_reap()
        taken_at = time.monotonic()  # before the claim is sent: our view of its lease is never too long
        claim = self.next_claim() if self.preemption.may_claim() else None
        if claim is None:
            if self.complete():
                log.info("sweep complete, exiting")
                return 0
            self.idle.wait()
            self.waker.drain()  # what woke it is recorded; intake() reads it next
            return "idle"
        code = self.execute(claim, taken_at)
        # Short runs back to back never renew a lease, so beat here too or the agent's record expires;
        # after the run rather than before the claim, which keeps it off the pickup path.
        self.beat()
        return "ran" if code is None else code

    def _start(self) -> None:
        signums = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *self.opts.notice_signals}  # HUP: a lost terminal
        self.flags.install(signums, self.waker)
        self.watchers = make_watchers(self.opts.notices, self.opts.notice_interval)
        for watcher in self.watchers:
            watcher.start(self._on_notice)
        log.info("agent started", heartbeat=self.opts.heartbeat, grace=self.opts.grace, count=self.opts.count)
        try:
            warning = self.store.failover_check(self.opts.heartbeat)
        except REDIS_DOWN:
            warning = None  # the sentinels are asked once, at start; the agent works without the answer
        if warning:
            log.warning(warning)
        self.watchdog.start()
        self.beat(force=True)
        self.notifier.ready(f"working sweep {self.sid}" if self.sid else f"working pool {self.opts.pool}")

    def _stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        self.watchdog.close()
        self.scratch.close()
        self.gone()
        if self._restore_signals:
            self.flags.uninstall()
        else:
            self.flags.detach()  # the handlers stay, recording, until the process ends
        self.waker.close()

    def next_claim(self) -> Claim | None:
        """A queued run first (a requeued run comes back before any new one), else a new one.

        After a run made by the search the search is asked first: create.lua refuses while a run
        is queued ('queued'), so the queue still goes first, and an empty queue costs no claim.lua
        (a round trip of each run's gap)."""
        lease = self.opts.lease
        et = self.config.early_terminate if self.config is not None else None
        asha = et is not None and et.type == "asha"
        first = self._search_first and not asha  # ASHA: a promotion goes before a new run
        made = self.next_runs.create_next(self.sid, self.id, lease, unless_queued=True) if first else None
        if isinstance(made, Claim):
            return made
        claim = self.store.claim(self.sid, self.id, lease)
        if claim is not None:
            self._search_first = False
            if claim.recovered_after is not None:
                self.metrics.recovered(claim.recovered_after)
                log.info("resuming an interrupted run", run_id=claim.run_id, recovered_after=claim.recovered_after)
            return claim
        promoted = self.store.promote_next(self.sid, self.id, lease) if asha else None
        if promoted is not None:
            log.info("promoting a paused run to its next rung", run_id=promoted.run_id)
            return promoted
        if made is None or made == "queued":  # not asked yet, or the queued run went to another agent
            made = self.next_runs.create_next(self.sid, self.id, lease)
            if isinstance(made, Claim):
                self._search_first = True
                return made
        return None

    def execute(self, claim: Claim, taken_at: float) -> int | None:
        """Run one attempt; return an exit code only to stop the agent."""
        structlog.contextvars.bind_contextvars(run_id=claim.run_id, attempt=claim.attempt)
        self._current = claim
        workdir = self.scratch.take()
        try:
            result: Result = Attempt(self, claim, workdir, taken_at).run()
            if self.preemption.requested:
                for watcher in self.watchers:
                    watcher.acknowledge()  # the run is safe: Azure may go ahead now
            if result.failed is not None:
                self.count_outcome(result.failed)
            return result.stop
        finally:
            self.scratch.give(workdir)
            self._current = None
            structlog.contextvars.unbind_contextvars("run_id", "attempt")

    # what happens around it ----------------------------------------------------------------------

    def intake(self) -> None:
        """Turn what signal handlers and watcher threads recorded into the preemption decision."""
        now = time.monotonic()
        while self._seen_signals < len(self.flags.received):
            signum = self.flags.received[self._seen_signals]
            self._seen_signals += 1
            first = self.preemption.request("signal", now=now)
            log.warning("signal received", signal=signal.Signals(signum).name, preempting=first)
            if self.preemption.repeat(now=now):
                left = round(self.preemption.kill_at() - now, 3)
                log.warning("signal repeated: grace shortened", grace_left=left)
        while self._notices:
            notice = self._notices.pop(0)
            if notice.drain_only:
                self.preemption.drain()
                log.warning("taking no new runs", reason=notice.reason, detail=notice.detail)
                continue
            deadline = None if notice.deadline is None else now + (notice.deadline - time.time())
            first = self.preemption.request(notice.reason, now=now, deadline=deadline)
            log.warning("preemption notice", reason=notice.reason, detail=notice.detail, first=first)
            self.notifier.stopping(f"{notice.reason}: {notice.detail}")

    def _on_notice(self, notice: Notice) -> None:
        """Called from a watcher thread: only record and wake the loop."""
        self._notices.append(notice)
        self.waker.wake()

    def maybe_reap(self) -> None:
        """Requeue the sweep's runs whose lease expired, once a heartbeat (every agent does this:
        a run whose agent vanished comes back within its lease plus one heartbeat)."""
        now = time.monotonic()
        if now - self._last_reap < self.opts.heartbeat:
            return
        self._last_reap = now
        self.reaped(self.reap_due().requeued)

    def reap_done(self, now: float) -> None:
        """The idle wait reaped, or saw that no lease can have lapsed yet: no reap is due before
        another heartbeat."""
        self._last_reap = now

    def reaped(self, run_ids: list[str]) -> None:
        for rid in run_ids:
            self.metrics.requeued("lease-expired", None)
            log.warning("requeued a run whose lease expired", reaped_run_id=rid)

    def count_outcome(self, failed: bool) -> None:
        if failed:
            self.failures += 1
            if time.monotonic() - self.started <= self.opts.fast_failure_window:
                self.early_failures += 1
        else:
            self.failures = 0

    def failing(self) -> bool:
        """W&B's crash guards: stop an agent whose runs keep failing (a broken node must not burn
        the sweep)."""
        if self.failures >= self.opts.max_failures:
            log.error("stopping: runs keep failing", consecutive_failures=self.failures)
            return True
        if self.early_failures >= self.opts.fast_failures:
            log.error(
                "stopping: runs fail fast",
                failures=self.early_failures,
                within_seconds=self.opts.fast_failure_window,
            )
            return True
        return False

    @property
    def last_beat(self) -> float:
        return self._last_beat

    def beat_done(self, now: float) -> None:
        self._last_beat = now
        self.metrics.heartbeat()

    def rewrite_record(self) -> None:
        """The record expired (Redis was away longer than its TTL): write all of it now."""
        self._written = None
        self.beat(force=True)

    def beat(self, force: bool = False) -> None:
        """Say this agent is alive (at most once a heartbeat unless forced): the whole record when a
        field changed (or it expired), else only its liveness (``Store.idle_beat``)."""
        now = time.monotonic()
        if not force and now - self._last_beat < self.opts.heartbeat:
            return
        current = self._current
        info: dict[str, object] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "sweep_id": self.sid,
            "run_id": current.run_id if current else "",
            "version": _version(),
            "started_at": self._started_ms,
        }
        if self.slots is not None:
            info.update(self.slots.describe())
        if info != self._written or not self.idle_beat().recorded:
            self.write_record(info)
            self._written = info
        self.beat_done(now)

    # where the agent works: its sweep (a pool agent, pool.py, works a pool through the same calls) --

    def complete(self) -> bool:
        """Nothing more to do: the agent exits 0."""
        return self.store.is_complete(self.sid)

    def reap_due(self) -> Reaped:
        return self.store.reap_due(self.sid, self.opts.heartbeat)

    def idle_beat(self, clock: bool = False, record: bool = True) -> Beat:
        return self.store.idle_beat(self.sid, self.id, self.opts.lease, clock=clock, record=record)

    def write_record(self, info: dict[str, object]) -> None:
        self.store.agent_beat(self.sid, self.id, info, ttl_s=self.opts.lease)

    def wait_for_work(self, timeout: float) -> Woken:
        """Block until a token on the wake list, a signal (the waker) or ``timeout``."""
        return self.store.wait_for_work(self.sid, timeout, self.waker.readable)

    def gone(self) -> None:
        self.store.agent_gone(self.sid, self.id)
