"""The agent: claim runs into its slots, run them (attempt.py), record them; until the sweep is
complete, ``--count`` is reached, its runs keep failing, or the machine is going away.

One loop serves one slot or many (slots.py): without ``--gpus`` there is one. Each exit is decided
here, once (``_ending``), and taken once every slot is empty. Signal handlers and notice watchers
only record what happened (``signals``, ``Preemption``) and wake the loop; the loop does every
write, log and kill. On preemption the agent lets its runs checkpoint, requeues them at the front,
and exits 0 without taking another run: a clean stop for systemd, SLURM and Kubernetes. Its
presence in Redis and its reaps are the heartbeat's (heartbeat.py); where it works, a sweep or a
pool, is its place's (place.py, pool.py).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import structlog

from sweepd.queue.ids import host_part
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

from ..hold.backoff import REDIS_DOWN, Backoff
from ..hold.watchdog import Watchdog
from . import launch, logs
from .attempt import Attempt
from .heartbeat import Heartbeat
from .intake import Intake
from .metrics import Metrics
from .notices import Watcher, make_watchers
from .options import Options
from .place import Place, SweepPlace
from .pool import PoolPlace
from .preemption import Preemption
from .sdnotify import Notifier
from .signals import Waker
from .slots import Result, Slot, SlotHost, held, make_slots

log = logs.get("sweepd.agent")


def new_agent_id() -> str:
    return f"{host_part(socket.gethostname())}-{os.getpid()}-{os.urandom(2).hex()}"


class Agent:
    def __init__(self, store: Store, options: Options, agent_id: str | None = None) -> None:
        self.store = store
        self.opts = options
        self.sid = options.sweep_id
        self.id = agent_id or new_agent_id()
        #: Where it works: a pool agent (``--pool``) reads each claim's sweep config in its attempt.
        self.place: Place = (PoolPlace if options.pool else SweepPlace)(store, options, self.id)
        self.started = time.monotonic()
        self.failures = 0  # consecutive failed or crashed runs
        self.early_failures = 0  # failures within fast_failure_window of the start
        self.taken = 0  # runs taken, for --count
        self.preemption = Preemption(grace=options.grace)
        self.waker = Waker()
        self.notifier = Notifier.from_env()
        self.slotted = bool(options.slots)  # ``--gpus``: the record and the metrics name each slot
        self.metrics = Metrics(self.sid or f"pool:{options.pool}", slotted=self.slotted)
        self.watchdog = Watchdog()  # one for every run this agent holds, started with the agent
        self.heartbeat = Heartbeat(self.place, options, self.notifier, self.metrics, self.waker)
        self.watchers: list[Watcher] = []
        self._outcome_lock = threading.Lock()
        #: With some slots busy and some free, how often to look for work for the free ones.
        self.idle_wait = min(options.idle_poll, store.call_timeout() / 2)
        watchdog = self.notifier.watchdog_interval()
        if watchdog:  # an agent must still ping systemd's watchdog in time
            self.idle_wait = min(self.idle_wait, watchdog / 2)
        self.scratch = launch.Scratch()  # the attempts' private directories (a slot takes one each)
        self.slots = make_slots(options, self.waker)
        #: Signals and notices into the preemption decision, from any slot's thread; a change wakes every slot.
        self.intake = Intake(self.preemption, self.notifier, [self.waker, *(s.waker for s in self.slots)])
        self.hosts = [self._host(slot) for slot in self.slots]
        self._restore_signals = True

    def _host(self, slot: Slot) -> SlotHost:
        return SlotHost(
            store=self.store,
            opts=self.opts,
            preemption=self.preemption,
            notifier=self.notifier,
            watchdog=self.watchdog,
            waker=slot.waker,
            metrics=self.metrics.for_slot(str(slot.index)),
            slot_env=slot.env,
            intake=self.intake,
            beat=self.heartbeat.beat,
            maybe_reap=self.heartbeat.maybe_reap,
        )

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
        self._begin()
        try:
            if self.slotted:
                log.info("holding one run per slot", slots=[",".join(slot.devices) for slot in self.slots])
            return self._loop()
        finally:
            self._drain_on_error()
            self._end()
            logs.unbind_process("sweep_id", "agent_id")

    def _loop(self) -> int:
        backoff, stop = Backoff(cap=5.0), None
        while True:
            self.intake()
            ended, stop = self._collect(stop)
            try:
                if ended:  # short runs back to back renew no lease: beat here too, off the pickup path
                    self.heartbeat.beat()
                ending = self._ending(stop)
                if ending is not None and not self._busy():
                    return self._leave(*ending)
                if ending is not None:
                    self._wait_for_slots()
                    continue
                done = self._turn()
            except REDIS_DOWN as exc:
                self._outage(exc, backoff)
                continue
            self._answering(backoff)
            if done is not None:
                return self._leave(*done)

    def _ending(self, stop: int | None) -> tuple[int, str] | None:
        """Why no slot may take another run: the exit code the agent gives once every slot is empty,
        and why; None while slots may take runs. The sweep's end is the one exit decided elsewhere:
        by the turn whose claim found nothing (``_turn``)."""
        if self.preemption.requested:
            return 0, "preempted"
        if stop is not None:
            return stop, "stopped"
        if self.opts.count is not None and self.taken >= self.opts.count:
            return 0, "count"
        with self._outcome_lock:
            failing = self.failing()
        if failing:
            return (0 if self.place.complete() else 1), "failing"
        return None

    def _leave(self, code: int, why: str) -> int:
        """Every slot is empty: say why the agent exits, once."""
        if why == "preempted":
            for watcher in self.watchers:
                watcher.acknowledge()  # every run is safe: Azure may go ahead now
            log.info("preempted: exiting without taking another run", reason=self.preemption.reason)
            self.notifier.stopping(f"preempted ({self.preemption.reason})")
        elif why == "count":
            log.info("count reached, exiting", runs=self.taken)
        elif why == "complete":
            log.info("sweep complete, exiting")
        return code

    def _wait_for_slots(self) -> None:
        """The agent is ending but a slot still holds a run: wait for its end (it wakes us at once)."""
        self.notifier.maybe_watchdog()
        self.waker.wait(self.opts.heartbeat)

    def _turn(self) -> tuple[int, str] | None:
        """Claim into every free slot; then wait for work, a slot's end or a signal. The agent's exit
        when the sweep is complete and no slot holds a run."""
        self.heartbeat.maybe_reap()
        for slot in self.slots:
            if slot.claim is not None:
                continue
            if not self.preemption.may_claim() or (self.opts.count is not None and self.taken >= self.opts.count):
                break
            taken_at = time.monotonic()  # before the claim is sent: our view of its lease is never too long
            claim = self._next_claim()
            if claim is None:
                break
            self._start(slot, claim, taken_at)
        if any(slot.result is not None for slot in self.slots):
            return None  # a lone slot's run ended on this thread: take in its end, then claim again
        self.heartbeat.beat()
        self.notifier.maybe_watchdog()
        busy = self._busy()
        if not busy:
            if self.place.complete():
                return 0, "complete"
            self.heartbeat.wait()  # a pushed token, a signal, or what is due
            self.waker.drain()  # what woke it is recorded; intake() reads it next
        elif busy == len(self.slots):
            self.waker.wait(self.opts.heartbeat)
        else:
            self.waker.wait(self.idle_wait)  # look for work for the free slots again then
        return None

    def _next_claim(self) -> Claim | None:
        claim = self.place.next_claim()
        if claim is not None and claim.recovered_after is not None:
            self.metrics.recovered(claim.recovered_after)
            log.info("resuming an interrupted run", run_id=claim.run_id, recovered_after=claim.recovered_after)
        return claim

    def _busy(self) -> int:
        return sum(slot.claim is not None for slot in self.slots)

    def _outage(self, exc: BaseException, backoff: Backoff) -> None:
        """A turn of the loop Redis did not answer: count it, say so once, keep systemd's watchdog
        fed, and wait out the backoff (a signal or a run's end still wakes us at once)."""
        self.metrics.redis_error()
        delay = backoff.next()
        if backoff.failures == 1:
            log.warning("Redis is not answering: retrying", error=str(exc))
        self.notifier.maybe_watchdog()
        self.waker.wait(delay)

    def _answering(self, backoff: Backoff) -> None:
        """Redis answered a turn: say so if it had not, and start the backoff over."""
        if backoff.failures:
            log.info("Redis is answering again", failures=backoff.failures)
            backoff.reset()

    # the slots ------------------------------------------------------------------------------------

    def _start(self, slot: Slot, claim: Claim, taken_at: float) -> None:
        slot.claim, slot.result = claim, None
        self.taken += 1
        self.heartbeat.holding(held(self.slots, self.slotted))
        if len(self.slots) == 1:  # a lone slot: its attempt on this thread, nothing to hand over
            self._work(slot, claim, taken_at)
            return
        slot.thread = threading.Thread(
            target=self._work, args=(slot, claim, taken_at), name=f"sweepd-slot-{slot.index}", daemon=True
        )
        slot.thread.start()

    def _work(self, slot: Slot, claim: Claim, taken_at: float) -> None:
        """One attempt in ``slot``; its result is left on the slot for the loop to take in."""
        where = {"slot": slot.index} if self.slotted else {}
        structlog.contextvars.bind_contextvars(run_id=claim.run_id, attempt=claim.attempt, **where)
        workdir = self.scratch.take()
        result = Result()  # what the slot hands back, once its attempt is done: never None then
        try:
            result = Attempt(self.hosts[slot.index], claim, workdir, taken_at).run()
            if result.failed is not None:
                with self._outcome_lock:
                    self.count_outcome(result.failed)
        except REDIS_DOWN as exc:  # the run's lease lapses and any agent's reap requeues it
            self.metrics.redis_error()
            log.warning("Redis went away while recording the run: requeued once its lease expires", error=str(exc))
        except Exception:
            log.exception("the run's attempt failed: taking no new runs")
            result = Result(stop=1)
        finally:
            self.scratch.give(workdir)
            structlog.contextvars.unbind_contextvars("run_id", "attempt", *where)
            slot.result = result
            if slot.thread is not None:
                self.waker.wake()

    def _collect(self, stop: int | None) -> tuple[bool, int | None]:
        """Empty the slots whose attempt ended: whether any did, and the first exit code one asked for."""
        ended = False
        for slot in self.slots:
            result = slot.result  # set just before its thread wakes us
            if result is None:
                continue
            if slot.thread is not None:
                slot.thread.join()
            slot.thread, slot.claim, slot.result, ended = None, None, None, True
            if result.stop is not None and stop is None:
                log.warning("a run stops the agent: taking no new runs", exit_code=result.stop)
                stop = result.stop
        if ended:
            self.heartbeat.holding(held(self.slots, self.slotted))
        return ended, stop

    def _drain_on_error(self) -> None:
        """Leaving with runs still held (an error in the agent's own thread): preempt them, so
        that each is requeued rather than left to run unsupervised."""
        running = [slot for slot in self.slots if slot.thread is not None]
        if not running:
            return
        self.preemption.request("agent-error", now=time.monotonic())
        for slot in running:
            slot.waker.wake()
        for slot in running:
            assert slot.thread is not None
            slot.thread.join()

    # what happens around it ----------------------------------------------------------------------

    def _begin(self) -> None:
        signums = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *self.opts.notice_signals}  # HUP: a lost terminal
        self.intake.flags.install(signums, self.waker)
        self.watchers = make_watchers(self.opts.notices, self.opts.notice_interval)
        for watcher in self.watchers:
            watcher.start(self.intake.on_notice)
        log.info("agent started", heartbeat=self.opts.heartbeat, grace=self.opts.grace, count=self.opts.count)
        try:
            warning = self.store.failover_check(self.opts.heartbeat)
        except REDIS_DOWN:
            warning = None  # the sentinels are asked once, at start; the agent works without the answer
        if warning:
            log.warning(warning)
        self.watchdog.start()
        self.heartbeat.beat(force=True)
        self.notifier.ready(f"working sweep {self.sid}" if self.sid else f"working pool {self.opts.pool}")

    def _end(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        self.watchdog.close()
        self.scratch.close()
        self.heartbeat.gone()
        if self._restore_signals:
            self.intake.flags.uninstall()
        else:
            self.intake.flags.detach()  # the handlers stay, recording, until the process ends
        for slot in self.slots:
            slot.close()
        self.waker.close()

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
