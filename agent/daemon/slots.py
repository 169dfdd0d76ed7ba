"""An agent that holds one run per GPU slot (``--gpus LIST|all [--gpus-per-run K]``).

A slot is one attempt at a time (attempt.py), on a thread of its own, with its own lease, heartbeat,
fencing and attempt token exactly as a single-run agent's: the hold (hold.py) knows no difference.
What the slots share is the agent: its store, its preemption decision, its watchdog, its heartbeat
record. The agent's thread claims (queue head first, then the search) into every free slot, and
waits; a slot's end wakes it to refill that slot at once. With every slot empty it waits as a
single-run agent does (idle.py: a pushed token, no polling); with some slots busy it looks for work
for the free ones every ``idle_wait``.

Signals still only set flags. Whichever thread calls ``intake`` first turns them into the preemption
decision, under a lock, and wakes every slot: each attempt then tells its own process, waits its
grace and requeues its run at the front, all at once. The agent exits once every slot is empty.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from sweepd.queue.records import Claim

from ..hold.backoff import REDIS_DOWN, Backoff
from . import launch, logs
from .attempt import Attempt, Host, Result
from .idle import Idle
from .notices import Watcher
from .signals import Waker

log = logs.get("sweepd.agent")


class Owner(Host, Protocol):
    """What the slots need of the agent that holds them (loop.py's ``Agent``): what an attempt
    needs of it, and more."""

    watchers: list[Watcher]
    idle: Idle
    idle_wait: float
    scratch: launch.Scratch

    def outage(self, exc: BaseException, backoff: Backoff) -> None: ...

    def answering(self, backoff: Backoff) -> None: ...

    def next_claim(self) -> Claim | None: ...

    def failing(self) -> bool: ...

    def complete(self) -> bool: ...

    def count_outcome(self, failed: bool) -> None: ...


class Slot:
    """One slot: its devices, and the run it holds (on its thread) if any."""

    def __init__(self, index: int, devices: tuple[str, ...]) -> None:
        self.index, self.devices = index, devices
        self.waker = Waker()  # the slot's attempt sleeps on its own self-pipe
        self.thread: threading.Thread | None = None
        self.claim: Claim | None = None
        self.result: Result | None = None

    @property
    def env(self) -> dict[str, str]:
        """What the slot's training process is told: its devices, and which slot it is."""
        gpus = ",".join(self.devices)
        return {"CUDA_VISIBLE_DEVICES": gpus, "SWEEPD_GPUS": gpus, "SWEEPD_GPU_SLOT": str(self.index)}

    def describe(self) -> dict[str, Any]:
        return {"slot": self.index, "gpus": list(self.devices), "run_id": self.claim.run_id if self.claim else ""}


class SlotHost:
    """What one slot's attempt sees of the agent (``attempt.Host``): the agent's store, options,
    preemption and watchdog; its own waker, metric series and environment."""

    def __init__(self, slots: Slots, slot: Slot) -> None:
        agent = slots.agent
        self.store, self.opts, self.sid = agent.store, agent.opts, agent.sid
        self.preemption, self.notifier, self.watchdog = agent.preemption, agent.notifier, agent.watchdog
        self.waker = slot.waker
        self.metrics = agent.metrics.for_slot(str(slot.index))
        self.slot_env = slot.env
        self._slots = slots

    def intake(self) -> None:
        self._slots.intake()

    def beat(self, force: bool = False) -> None:
        self._slots.beat(force)

    def maybe_reap(self) -> None:
        self._slots.maybe_reap()


def _try(lock: threading.Lock, call: Callable[[], None]) -> None:
    """Call unless another thread is doing it right now (a heartbeat or a reap is the agent's, once)."""
    if lock.acquire(blocking=False):
        try:
            call()
        finally:
            lock.release()


class Slots:
    """The agent's loop when it holds runs in slots (loop.py's ``Agent.run`` hands over to it)."""

    def __init__(self, agent: Owner) -> None:
        self.agent = agent
        self.slots = [Slot(i, devices) for i, devices in enumerate(agent.opts.slots)]
        self.hosts = [SlotHost(self, slot) for slot in self.slots]
        self.started = 0  # runs taken, for --count
        self._intake_lock, self._beat_lock, self._reap_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._outcome_lock = threading.Lock()
        self._seen: tuple[bool, bool] = (False, False)

    # what the slots share, from any thread --------------------------------------------------------

    def intake(self) -> None:
        """The agent's intake, once at a time; a change of the decision wakes every slot."""
        with self._intake_lock:
            self.agent.intake()
            preemption = self.agent.preemption
            now = (preemption.requested, preemption.draining)
            changed, self._seen = now != self._seen, now
        if changed:
            for slot in self.slots:
                slot.waker.wake()
            self.agent.waker.wake()

    def beat(self, force: bool = False) -> None:
        _try(self._beat_lock, lambda: self.agent.beat(force))

    def maybe_reap(self) -> None:
        _try(self._reap_lock, self.agent.maybe_reap)

    def describe(self) -> dict[str, str]:
        """The agent's heartbeat fields for its slots (``sweepd agents``, ``status``)."""
        held = [slot.claim.run_id for slot in self.slots if slot.claim is not None]
        return {"run_id": ",".join(held), "slots": json.dumps([slot.describe() for slot in self.slots])}

    # the agent's thread ---------------------------------------------------------------------------

    def run(self) -> int:
        """Fill the slots until the sweep is complete, --count is reached or the machine goes away;
        the exit code once every slot is empty."""
        log.info("holding one run per slot", slots=[",".join(slot.devices) for slot in self.slots])
        try:
            return self._loop()
        finally:
            self._drain_on_error()
            for slot in self.slots:
                slot.waker.close()

    def _loop(self) -> int:
        agent, backoff, stop = self.agent, Backoff(cap=5.0), None
        while True:
            self.intake()
            stop = self._collect(stop)
            busy = any(slot.thread is not None for slot in self.slots)
            ending = self._ending(stop)
            if ending is not None:
                if not busy:
                    return ending
                agent.notifier.maybe_watchdog()
                agent.waker.wait(agent.opts.heartbeat)  # a slot's end or a signal wakes us at once
                continue
            try:
                done = self._turn()
            except REDIS_DOWN as exc:
                agent.outage(exc, backoff)
                continue
            agent.answering(backoff)
            if done is not None:
                return done

    def _ending(self, stop: int | None) -> int | None:
        """Why no slot may take another run, as the exit code the agent will give once all are
        empty; None while slots may take runs."""
        agent = self.agent
        if agent.preemption.requested:
            if not any(slot.thread is not None for slot in self.slots):
                for watcher in agent.watchers:
                    watcher.acknowledge()  # every run is safe: Azure may go ahead now
                log.info("preempted: exiting without taking another run", reason=agent.preemption.reason)
                agent.notifier.stopping(f"preempted ({agent.preemption.reason})")
            return 0
        if stop is not None:
            return stop
        if agent.opts.count is not None and self.started >= agent.opts.count:
            return 0
        with self._outcome_lock:
            failing = agent.failing()
        if failing:
            return 0 if agent.complete() else 1
        return None

    def _turn(self) -> int | None:
        """Claim into every free slot; then wait for work, a slot's end or a signal. An int ends
        the agent (the sweep is complete and no slot holds a run)."""
        agent = self.agent
        self.maybe_reap()
        for slot in self.slots:
            if slot.thread is not None:
                continue
            if not agent.preemption.may_claim() or (agent.opts.count is not None and self.started >= agent.opts.count):
                break
            taken_at = time.monotonic()  # before the claim is sent: our view of its lease is never too long
            claim = agent.next_claim()
            if claim is None:
                break
            self._start(slot, claim, taken_at)
        busy = sum(slot.thread is not None for slot in self.slots)
        self.beat(force=False)
        agent.notifier.maybe_watchdog()
        if not busy:
            if agent.complete():
                log.info("sweep complete, exiting")
                return 0
            agent.idle.wait()  # as a single-run agent: a pushed token, a signal, or what is due
            agent.waker.drain()  # what woke it is recorded; intake() reads it next
        elif busy == len(self.slots):
            agent.waker.wait(agent.opts.heartbeat)
        else:
            agent.waker.wait(agent.idle_wait)  # look for work for the free slots again then
        return None

    def _start(self, slot: Slot, claim: Claim, taken_at: float) -> None:
        slot.claim, slot.result = claim, None
        self.started += 1
        slot.thread = threading.Thread(
            target=self._work, args=(slot, claim, taken_at), name=f"sweepd-slot-{slot.index}", daemon=True
        )
        slot.thread.start()

    def _collect(self, stop: int | None) -> int | None:
        """Empty the slots whose attempt ended; the first exit code one asked for."""
        for slot in self.slots:
            if slot.thread is None or slot.result is None:  # its result is set just before it wakes us
                continue
            slot.thread.join()
            result, slot.thread, slot.claim = slot.result, None, None
            if result is not None and result.stop is not None and stop is None:
                log.warning("a slot's run stops the agent: taking no new runs", slot=slot.index, exit_code=result.stop)
                stop = result.stop
        return stop

    # a slot's thread ------------------------------------------------------------------------------

    def _work(self, slot: Slot, claim: Claim, taken_at: float) -> None:
        structlog.contextvars.bind_contextvars(run_id=claim.run_id, attempt=claim.attempt, slot=slot.index)
        workdir = self.agent.scratch.take()
        result = Result()  # what the thread hands back, once it is done: never None then
        try:
            result = Attempt(self.hosts[slot.index], claim, workdir, taken_at).run()
            if result.failed is not None:
                with self._outcome_lock:
                    self.agent.count_outcome(result.failed)
        except REDIS_DOWN as exc:  # the run's lease lapses and any agent's reap requeues it
            self.agent.metrics.redis_error()
            log.warning("Redis went away while recording the run: requeued once its lease expires", error=str(exc))
        except Exception:
            log.exception("the slot's attempt failed: taking no new runs")
            result = Result(stop=1)
        finally:
            self.agent.scratch.give(workdir)
            slot.result = result
            self.agent.waker.wake()

    def _drain_on_error(self) -> None:
        """Leaving with runs still held (an error in the agent's own thread): preempt them, so
        that each is requeued rather than left to run unsupervised."""
        held = [slot for slot in self.slots if slot.thread is not None]
        if not held:
            return
        self.agent.preemption.request("agent-error", now=time.monotonic())
        for slot in held:
            slot.waker.wake()
        for slot in held:
            assert slot.thread is not None
            slot.thread.join()
