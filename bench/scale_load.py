"""bench/scale.py's load: many agents in one process, made of the agent's own code.

Nothing here writes a Redis command. The agents are sweepd's own objects on connections of their own,
so the traffic follows the Store and the agent whenever they change:

- idle: each agent is sweepd's ``Agent`` (agent/daemon/loop.py) on a thread of its own, turning its
  own loop turn (``Agent._turn``: the claim, the search, is the sweep complete, then ``Heartbeat.wait``'s
  heartbeats and its one BLPOP on the wake list until the next due moment).
- busy: a run's process cannot be started 10,000 times on one machine, so each agent holds its runs
  through the agent's own ``Hold`` (hold.py), with no process behind it. What an attempt does with
  Redis while its process runs (attempt.py's ``_supervise``: the hold's renewal, the heartbeat a
  renewal is, the reap once a heartbeat) and at its end (the hold's record, the agent's beat,
  the place's ``next_claim``) is called here, in that order, by one scheduler thread for all of the
  process's agents. Only that order is written here; ``scale.py --check`` compares the commands
  Redis executes for these agents with real ``sweepd agent`` processes, command by command.

    python bench/scale_load.py PLAN_JSON    (started by bench/scale.py: prints "ready", reads the
                                             schedule as one JSON line, prints its report at the end)
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import random
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import stop

from sweepd.agent.daemon import logs
from sweepd.agent.daemon.heartbeat import Heartbeat
from sweepd.agent.daemon.loop import Agent
from sweepd.agent.daemon.options import Options
from sweepd.agent.hold.backoff import REDIS_DOWN
from sweepd.agent.hold.hold import Hold
from sweepd.queue.connections import connect
from sweepd.queue.records import Claim
from sweepd.queue.store import Store


@dataclass
class Plan:
    url: str
    sid: str
    kind: str  # busy | idle
    heartbeat: float
    run_length: float
    counts: list[int]  # this process's agents, cumulative, per phase
    seed: int
    name: str


def client_timeout(heartbeat: float) -> float:
    """The Redis client timeout ``sweepd agent`` sets (agent/cli/agent.py)."""
    return min(10.0, max(1.0, heartbeat))


class Tally:
    """When each heartbeat was taken (and how late, for busy agents): what the report counts."""

    def __init__(self) -> None:
        self.beats: list[float] = []
        self.lags: list[tuple[float, float]] = []  # (when, ms late)
        self.errors = 0


TALLY = Tally()


class CountedHeartbeat(Heartbeat):
    """sweepd's agent's heartbeat, counting its beats for the report."""

    def _beaten(self, now: float) -> None:
        super()._beaten(now)
        TALLY.beats.append(time.time())


def new_agent(plan: Plan, index: int) -> Agent:
    store = Store(connect(plan.url, check=False, timeout=client_timeout(plan.heartbeat)))
    options = Options(sweep_id=plan.sid, heartbeat=plan.heartbeat, notices="none")
    agent = Agent(store, options, f"{plan.name}-{index}")
    agent.heartbeat = CountedHeartbeat(agent.place, options, agent.notifier, agent.metrics, agent.waker)
    return agent


# idle: the agent's own loop, one thread each ------------------------------------------------------


def idle_agent(agent: Agent, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.monotonic()))
    agent.heartbeat.beat(force=True)  # as Agent._begin
    while True:
        try:
            agent._turn()
        except REDIS_DOWN:
            TALLY.errors += 1
            time.sleep(0.1)


# busy: the agent's holds, one scheduler for all -------------------------------------------------


class NoProcess:
    """The process a hold would kill: there is none (the guard is not started either)."""

    def kill(self) -> None:
        pass


def quiet(level: str, event: str, /, **fields: Any) -> None:
    del level, event, fields


class BusyAgent:
    """An agent holding one run at a time: its hold's renewals, its beats and reaps, its next run."""

    def __init__(self, agent: Agent, run_length: float, rng: random.Random) -> None:
        self.agent, self.run_length, self.rng = agent, run_length, rng
        self.hold: Hold | None = None
        self.ends_at = 0.0

    def take(self, now: float, first: bool = False) -> None:
        """The place's ``next_claim``, then a hold on the run as ``Attempt`` makes one."""
        claim = self.agent.place.next_claim()
        if not isinstance(claim, Claim):
            raise RuntimeError(f"the busy sweep handed out no run: {claim!r}")
        self.agent.heartbeat.holding({"run_id": claim.run_id})  # as Agent._start: the record names its run
        o = self.agent.opts
        self.hold = Hold(self.agent.store, claim, NoProcess(), o.heartbeat, o.grace, now, say=quiet)
        length = self.run_length * (self.rng.random() if first else 1.0)  # steady from the start
        self.ends_at = now + length

    def turn(self, now: float) -> float:
        """What is due now, in ``_supervise``'s order; returns when the next thing is due."""
        hold, agent = self.hold, self.agent
        assert hold is not None
        if now >= self.ends_at:  # the process ended 0: the hold records it, the agent beats, claims
            hold.record(0, retries=agent.opts.max_retries)
            agent.heartbeat.holding({"run_id": ""})
            agent.heartbeat.beat()
            self.take(now)
            return self.next_due()
        if now >= hold.next_renew:  # hold/tick.py renews, Attempt._renew beats
            TALLY.lags.append((time.time(), 1000 * (now - hold.next_renew)))
            answer = hold.renew(now)
            if answer is not None and answer != "fenced":
                agent.heartbeat.beat(force=True)
        agent.heartbeat.maybe_reap()
        return self.next_due()

    def next_due(self) -> float:
        """The next renewal, the run's end, or the next reap (the supervising loop looks every
        ``FLUSH_EVERY``, so its reap follows the heartbeat closely)."""
        assert self.hold is not None
        return min(self.hold.next_renew, self.ends_at, self.agent.heartbeat.last_reap + self.agent.opts.heartbeat)


def busy_loop(agents: list[tuple[float, BusyAgent]]) -> None:
    """Every agent's turns, each when due (a heap of due moments), on this one thread."""
    heap = [(at, i) for i, (at, _) in enumerate(agents)]
    heapq.heapify(heap)
    started: set[int] = set()
    while heap:
        due, i = heapq.heappop(heap)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        busy = agents[i][1]
        try:
            if i not in started:
                started.add(i)
                busy.agent.heartbeat.beat(force=True)
                busy.take(now, first=True)  # the starts are spread: so are the renewals after them
                heapq.heappush(heap, (busy.next_due(), i))
                continue
            heapq.heappush(heap, (busy.turn(now), i))
        except REDIS_DOWN:
            TALLY.errors += 1
            heapq.heappush(heap, (now + 0.1, i))


# the process ---------------------------------------------------------------------------------------


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q / 100))] if xs else 0.0


def report(schedule: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    beats, lags = list(TALLY.beats), list(TALLY.lags)
    for w0, w1 in schedule["windows"]:
        out.append(
            {
                "beats": sum(1 for t in beats if w0 <= t < w1),
                "lag_p99_ms": percentile([ms for t, ms in lags if w0 <= t < w1], 99),
                "errors": TALLY.errors,
            }
        )
    return out


def main() -> None:
    plan = Plan(**json.loads(sys.argv[1]))
    # On stderr (stdout is the report), errors only: past the generators' capacity each reap warns.
    logs.configure(json=True, level=logging.ERROR)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a connection and a waker pipe per agent
    threading.stack_size(256 * 1024)
    rng = random.Random(f"{plan.seed}-{plan.name}")
    agents = [new_agent(plan, i) for i in range(plan.counts[-1])]  # connected (config read) up front
    print("ready", flush=True)
    schedule = json.loads(sys.stdin.readline())
    # The schedule is in wall-clock time (shared with bench/scale.py); turns are on the monotonic clock.
    offset = time.monotonic() - time.time()
    spread = max(schedule["spread"], plan.heartbeat)  # starts spread over a heartbeat: steady phases
    starts: list[float] = []
    first = 0
    for at, upto in zip(schedule["activate"], plan.counts, strict=True):
        starts += [at + offset + rng.random() * spread for _ in range(first, upto)]
        first = upto
    if plan.kind == "idle":
        for agent, at in zip(agents, starts, strict=True):
            threading.Thread(target=idle_agent, args=(agent, at), daemon=True).start()
    else:
        busy = [(at, BusyAgent(agent, plan.run_length, rng)) for agent, at in zip(agents, starts, strict=True)]
        threading.Thread(target=busy_loop, args=(busy,), daemon=True).start()
    time.sleep(max(0.0, schedule["stop"] - time.time()))
    print(json.dumps(report(schedule)), flush=True)
    os._exit(0)  # the agents' threads are blocked in Redis calls: no need to unwind them


# the launcher's side (bench/scale.py, bench/scale_check.py) ---------------------------------------

AGENTS_PER_GENERATOR = 2500
LOAD = str(Path(__file__))


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # busy | idle
    heartbeat: float

    @property
    def label(self) -> str:
        hb = "default heartbeat" if self.heartbeat == Options.heartbeat else f"--heartbeat {self.heartbeat:g}"
        what = "busy (every agent holds a run)" if self.kind == "busy" else "idle (every agent waiting)"
        return f"{what}, {hb}"


WORKLOADS = {
    "busy": Workload("busy", "busy", Options.heartbeat),
    "busy-hb1": Workload("busy-hb1", "busy", 1.0),
    "idle": Workload("idle", "idle", Options.heartbeat),
}


def start_generators(url: str, sid: str, w: Workload, ns: list[int], run_length: float) -> list[subprocess.Popen[str]]:
    """Generator processes, each with its share of every phase's agents, connected and ready."""
    count = max(1, math.ceil(max(ns) / AGENTS_PER_GENERATOR))
    gens = []
    for g in range(count):
        counts = [n // count + (1 if g < n % count else 0) for n in ns]
        plan = Plan(url, sid, w.kind, w.heartbeat, run_length, counts, 7, f"{w.name}{g}")
        cmd = [sys.executable, LOAD, json.dumps(asdict(plan))]
        gens.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in gens:
        line = p.stdout.readline() if p.stdout else ""  # after its agents are made and connected
        if line.strip() != "ready":
            stop(gens)
            raise RuntimeError(f"a load generator did not start: {line!r}")
    return gens


if __name__ == "__main__":
    main()
