"""The agent's heartbeat and its reaps: the only caller of the presence and reap steps.

A busy agent beats once a heartbeat (its slots' lease renewals are beats too) and reaps its sweep's
lapsed leases once a heartbeat (every agent does: a run whose agent vanished comes back within its
lease plus one heartbeat). An agent with nothing to run waits here (``wait``), and costs Redis almost
nothing: it looks at the queue and the search only when a token wakes it (every event that can give
it work or end the sweep pushes one: queue/scripts' ``wake``, ``wake_all``, ``wake_if_done``).
Between tokens it does only what is due, and blocks in one BLPOP until the next due moment:

- its heartbeat, once a heartbeat (``Place.beat``: its liveness score and its record's TTL, and the
  sweep's earliest lease deadline; Redis's clock every ``CLOCK_EVERY`` heartbeats);
- the reap, exactly when the earliest lease can lapse (that deadline on Redis's clock, read through
  ``RedisClock``): a dead agent's run is requeued as its lease ends, and taken at once by the agent
  that reaped it, instead of up to a heartbeat later;
- systemd's watchdog ping, when there is one;
- a look unwoken every ``LOOK_EVERY`` heartbeats, in case a token was lost (a failover).

The loop tells it what the agent holds (``holding``); it calls nothing of the agent's.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from . import logs
from .metrics import Metrics
from .options import Options
from .place import Place
from .sdnotify import Notifier
from .signals import Waker

log = logs.get("sweepd.agent")

#: Heartbeats between two reads of Redis's clock (``TIME``) while idle: the estimate drifts only as
#: the two clocks do, and a reap reads the clock too.
CLOCK_EVERY = 6
#: Heartbeats between two pushes of the agent's record's TTL (a lease, three heartbeats) while idle:
#: every other one keeps it a heartbeat ahead, and an idle heartbeat at four commands, not five.
RECORD_EVERY = 2
#: Heartbeats between two looks at the queue that no token asked for: only a lost token needs it.
LOOK_EVERY = 30
#: Reap this long after the lease deadline as we estimate it (ms): a little late rather than early.
MARGIN_MS = 2.0


@cache
def _version() -> str:
    """The installed sweepd's version, read once: a read of the package metadata costs a
    heartbeat about 2 ms."""
    try:
        return version("sweepd")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class RedisClock:
    """Redis's clock (``TIME``, ms) as seen from ours: the offset learnt at the last reading."""

    offset_ms: float | None = None

    def sync(self, redis_ms: int, local_s: float) -> None:
        self.offset_ms = redis_ms - local_s * 1000

    def local(self, redis_ms: int) -> float | None:
        """When ``redis_ms`` comes by our clock (``time.time()`` seconds); None before any reading."""
        if self.offset_ms is None:
            return None
        return (redis_ms - self.offset_ms + MARGIN_MS) / 1000


def wait_for(now: float, *moments: float | None) -> float:
    """Seconds from ``now`` to the first of ``moments`` (None: not due), never below a millisecond."""
    due = min((m for m in moments if m is not None), default=math.inf)
    return max(0.001, due - now)


def _try(lock: threading.Lock, call: Callable[[], None]) -> None:
    """Call unless another thread is doing it right now (a slot's renewal and the loop may both ask)."""
    if lock.acquire(blocking=False):
        try:
            call()
        finally:
            lock.release()


class Heartbeat:
    """One agent's presence in Redis, its reap schedule, and its wait when it has nothing to run."""

    def __init__(self, place: Place, opts: Options, notifier: Notifier, metrics: Metrics, waker: Waker) -> None:
        self.place, self.opts, self.notifier, self.metrics, self.waker = place, opts, notifier, metrics, waker
        self.clock = RedisClock()
        self.beats = 0  # idle heartbeats so far
        self.earliest: int | None = None  # the first lease deadline, Redis ms
        self.read_at: float | None = None  # when it was read (monotonic)
        self.look_at = time.monotonic() + LOOK_EVERY * opts.heartbeat
        self.last_beat = 0.0
        self.last_reap = 0.0
        self._fields: dict[str, object] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "sweep_id": place.sweep_id,
            "run_id": "",
            "version": _version(),
            "started_at": int(time.time() * 1000),
        }
        self._written: dict[str, object] | None = None  # the record as last written
        self._beat_lock, self._reap_lock = threading.Lock(), threading.Lock()

    def holding(self, fields: dict[str, str]) -> None:
        """What the agent holds now (``run_id``, and its slots'), for the record's next write."""
        self._fields = {**self._fields, **fields}

    # a busy agent, from any thread ------------------------------------------------------------------

    def beat(self, force: bool = False) -> None:
        """Say this agent is alive (at most once a heartbeat unless forced): the whole record when a
        field changed (or it expired), else only its liveness."""
        _try(self._beat_lock, lambda: self._beat(force))

    def _beat(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_beat < self.opts.heartbeat:
            return
        info = self._fields
        if info != self._written or not self.place.beat().recorded:
            self.place.record(info)
            self._written = info
        self._beaten(now)

    def _beaten(self, now: float) -> None:
        self.last_beat = now
        self.metrics.heartbeat()

    def maybe_reap(self) -> None:
        """Requeue the lapsed leases once a heartbeat, when the place says a reap is worth it."""
        _try(self._reap_lock, self._maybe_reap)

    def _maybe_reap(self) -> None:
        if not self.place.reap_wanted():
            return
        now = time.monotonic()
        if now - self.last_reap < self.opts.heartbeat:
            return
        self.last_reap = now
        self._reaped(self.place.reap().requeued)

    def _reaped(self, run_ids: list[str]) -> None:
        for rid in run_ids:
            self.metrics.requeued("lease-expired", None)
            log.warning("requeued a run whose lease expired", reaped_run_id=rid)

    def gone(self) -> None:
        self.place.gone()

    # an idle agent, on the loop's thread --------------------------------------------------------------

    def wait(self) -> None:
        """Return when there may be work: a token, a signal or notice (the waker), a run this agent
        reaped, or the periodic look. Heartbeats, reaps and watchdog pings are done meanwhile."""
        hb = self.opts.heartbeat
        self.beat()  # when due: the record says what changed (the run ended)
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= hb:
            self._idle_beat(now)  # the earliest lease as it is now
        while True:
            now = time.monotonic()
            if now >= self.look_at:
                self.look_at = now + LOOK_EVERY * hb
                return
            if now - self.last_beat >= hb:
                self._idle_beat(now)
            lapse = self.lapse_at(now)
            if lapse is not None and lapse <= now:
                if self._reap():
                    return  # a run was requeued: take it now
                continue
            self.notifier.maybe_watchdog()
            interval = self.notifier.watchdog_interval()
            timeout = wait_for(now, self.last_beat + hb, self.look_at, lapse, now + interval / 2 if interval else None)
            if self.place.wait(timeout, self.waker.readable) != "timeout":
                return  # a token: look at the queue; the waker: the loop takes in what woke it

    def _idle_beat(self, now: float) -> None:
        beat = self.place.beat(clock=self.beats % CLOCK_EVERY == 0, record=self.beats % RECORD_EVERY == 0)
        self.beats += 1
        self._beaten(now)
        if not beat.recorded:  # the record expired (Redis was away longer than its TTL): write it all
            self._written = None
            self.beat(force=True)
        if beat.now_ms is not None:
            self.clock.sync(beat.now_ms, time.time())
        self.earliest, self.read_at = beat.earliest, now
        lapse = self.lapse_at(now)
        if lapse is None or lapse > now:
            self.last_reap = now  # nothing lapsed yet: that look stands for a reap

    def lapse_at(self, now: float) -> float | None:
        """When (monotonic) the earliest lease lapses, or None: nothing held."""
        if self.earliest is None:
            return None
        at = self.clock.local(self.earliest)
        return now if at is None else now + (at - time.time())

    def _reap(self) -> bool:
        got = self.place.reap()
        now = time.monotonic()
        self.clock.sync(got.now_ms, time.time())
        self.earliest, self.read_at = got.earliest, now
        self.last_reap = now
        self._reaped(got.requeued)
        return bool(got.requeued)
