"""An agent with nothing to run: it waits on the sweep's wake list, and costs Redis almost nothing.

An idle agent looks at the queue and the search (claim, create, is the sweep complete) only when a
token wakes it: every event that can give it work or end the sweep pushes one (queue/scripts'
``wake``, ``wake_all``, ``wake_if_done``). Between tokens it does only what is due, and blocks in
one BLPOP until the next due moment:

- its heartbeat, once a heartbeat (``Store.idle_beat``: its liveness score and its record's TTL,
  and the sweep's earliest lease deadline; Redis's clock every ``CLOCK_EVERY`` heartbeats);
- the reap, exactly when the earliest lease can lapse (that deadline on Redis's clock, read through
  ``RedisClock``): a dead agent's run is requeued as its lease ends, and taken at once by the agent
  that reaped it, instead of up to a heartbeat later;
- systemd's watchdog ping, when there is one;
- a look unwoken every ``LOOK_EVERY`` heartbeats, in case a token was lost (a failover).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from sweepd.queue.presence import Beat, Woken
from sweepd.queue.store import Reaped

from .options import Options
from .sdnotify import Notifier
from .signals import Waker


class Agent(Protocol):
    """What the idle wait uses of its agent (loop.py's ``Agent``)."""

    opts: Options
    notifier: Notifier
    waker: Waker

    @property
    def last_beat(self) -> float: ...

    def beat(self, force: bool = False) -> None: ...

    def beat_done(self, now: float) -> None: ...

    def rewrite_record(self) -> None: ...

    def reap_done(self, now: float) -> None: ...

    def reaped(self, run_ids: list[str]) -> None: ...

    # where it waits: its sweep's keys, or its pool's (pool.py)

    def idle_beat(self, clock: bool = False, record: bool = True) -> Beat: ...

    def reap_due(self) -> Reaped: ...

    def wait_for_work(self, timeout: float) -> Woken: ...


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


class Idle:
    """The wait of one agent between looks at the queue (single-run agents: loop.py)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.clock = RedisClock()
        self.beats = 0
        self.earliest: int | None = None  # the sweep's first lease deadline, Redis ms
        self.read_at: float | None = None  # when it was read (monotonic)
        self.look_at = time.monotonic() + LOOK_EVERY * agent.opts.heartbeat

    def wait(self) -> None:
        """Return when there may be work: a token, a signal or notice (the waker), a run this agent
        reaped, or the periodic look. Heartbeats, reaps and watchdog pings are done meanwhile."""
        agent, hb = self.agent, self.agent.opts.heartbeat
        agent.beat()  # when due: the record says what changed (the run ended)
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= hb:
            self.heartbeat(now)  # the earliest lease as it is now
        while True:
            now = time.monotonic()
            if now >= self.look_at:
                self.look_at = now + LOOK_EVERY * hb
                return
            if now - agent.last_beat >= hb:
                self.heartbeat(now)
            lapse = self.lapse_at(now)
            if lapse is not None and lapse <= now:
                if self.reap():
                    return  # a run was requeued: take it now
                continue
            agent.notifier.maybe_watchdog()
            interval = agent.notifier.watchdog_interval()
            timeout = wait_for(
                now,
                agent.last_beat + hb,
                self.look_at,
                lapse,
                now + interval / 2 if interval else None,
            )
            woken = agent.wait_for_work(timeout)
            if woken != "timeout":
                return  # a token: look at the queue; the waker: the loop takes in what woke it

    def heartbeat(self, now: float) -> None:
        agent = self.agent
        beat = agent.idle_beat(clock=self.beats % CLOCK_EVERY == 0, record=self.beats % RECORD_EVERY == 0)
        self.beats += 1
        agent.beat_done(now)
        if not beat.recorded:  # the record expired (Redis was away longer than its TTL): write it
            agent.rewrite_record()
        if beat.now_ms is not None:
            self.clock.sync(beat.now_ms, time.time())
        self.earliest, self.read_at = beat.earliest, now
        lapse = self.lapse_at(now)
        if lapse is None or lapse > now:
            agent.reap_done(now)  # nothing lapsed yet: that look stands for a reap

    def lapse_at(self, now: float) -> float | None:
        """When (monotonic) the earliest lease lapses, or None: nothing held."""
        if self.earliest is None:
            return None
        at = self.clock.local(self.earliest)
        return now if at is None else now + (at - time.time())

    def reap(self) -> bool:
        agent = self.agent
        got = agent.reap_due()
        now = time.monotonic()
        self.clock.sync(got.now_ms, time.time())
        self.earliest, self.read_at = got.earliest, now
        agent.reap_done(now)
        agent.reaped(got.requeued)
        return bool(got.requeued)
