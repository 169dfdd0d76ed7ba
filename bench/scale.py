"""Scale: how many agents one Redis serves.

A load generator reproduces the Redis traffic of N agents by making the calls agents make, in the
agent's order: the same Lua scripts (loaded from ``Store``), keys and arguments that ``Store``
sends, one asyncio task and one connection per simulated agent, a few hundred agents per
generator process. The generator speaks the Redis protocol itself, because redis-py's per-call
CPU would not let 2,000 agents fit beside Redis on 2 cores; ``--check`` (and the full run.py) runs
real ``sweepd agent`` processes and simulated agents side by side and compares the commands Redis
executes per agent, command by command:

- busy: every agent holds a run of ``--run-length`` seconds on one random sweep. Each heartbeat:
  ``renew.lua``, ``agent_beat`` (one MULTI/EXEC), ``reap.lua`` (as ``Attempt._supervise``). At
  the end of a run: ``complete.lua``, then ``claim.lua`` on the empty queue, and ``create_next``
  (the sweep's HGETALL and ``create.lua``, retried when another agent took the point), as
  ``Agent._step`` does. Heartbeat phases and the first run's remaining length are random, so the
  rates are steady from the start (N / heartbeat renewals a second).
- idle: every agent waits on a sweep that has nothing to hand out but is not complete (the end of
  a sweep): each turn ``claim.lua``, ``create_next``'s HGETALL, ``is_complete``'s HGETALL and
  ZCARD, then the blocking wait (BLPOP on the wake list, as long as the agent's), plus
  ``agent_beat`` and ``reap.lua`` once a heartbeat.

N grows in phases (10, 100, 500, 1,000, 2,000 by default) in one run per workload: the agents of
earlier phases go on, each phase adds agents (their connections are opened up front and stay
silent until then), waits ``--ramp`` seconds and measures for ``--window`` seconds:

- Redis CPU: ``INFO cpu`` (user + sys) delta over the window, in % of one core.
- Command latency as an agent sees it: a probe in the benchmark's own process makes an agent's
  calls through ``Store`` (renew, agent_beat, claim, the sweep's HGETALL, ZCARD) every 5 ms and
  times each round trip; p50 and p99. Also the server's own p99 (``INFO latencystats``, blocking commands left out).
- The baseline, measured in the same run: the probe against the same Redis with no agent (N = 0).

Redis is pinned to one core and runs SCHED_FIFO, and so does the probe (as root, on a machine with
two or more cores; otherwise both run as they are); the generators run at normal priority on any
core. So Redis has a core of its own, as on a machine of its own, neither
Redis nor the probe waits for the generators' CPU, and the generators use what is left. What
remains in the probe's figure is the machine's own noise (a shared VM's steal time, the disk under
the append-only file): the N = 0 baseline shows it. While it measures, the benchmark also keeps the
cores out of their idle states (Linux PM QoS, ``/dev/cpu_dma_latency``, as root): on a VM a core
that went idle takes milliseconds to wake, which at low N would be all the probe measured, and a
Redis serving many agents is never idle long enough for it. The generator must keep up, or the figure
would understate the load: each phase reports the share of the offered calls (heartbeats, idle
turns) the generators made in the window, and a phase under 90% is marked generator-limited and
not counted for the largest N.

Time compression: the window (seconds) is shorter than the default heartbeat (10 s), which is
fine because phases are random: the Redis load is a rate, N / heartbeat. ``busy, --heartbeat 1``
is ten times the default's heartbeat traffic, so its figures at N stand for 10 N agents at the
default heartbeat (as far as heartbeats go; connections and keys do not scale with it).

    python bench/scale.py [--agents 10,100,500,1000,2000] [--workloads busy,busy-hb1,idle]
                          [--window 3] [--ramp 1.5] [--run-length 60] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import redis
from common import (
    Row,
    Section,
    markdown,
    new_sweep,
    num,
    percentile,
    private_redis,
    progress,
    ratio,
    show,
    stop,
    verdict,
)

from sweepd.agent.daemon.hold import LEASE_HEARTBEATS
from sweepd.agent.daemon.options import Options
from sweepd.queue import keys, search
from sweepd.queue.connections import connect
from sweepd.queue.records import Claim
from sweepd.queue.store import Store, new_id

TARGET_P99_MS = 5.0
AGENTS_PER_GENERATOR = 500
PROBE_EVERY = 0.005
KEEP_UP = 0.9
REALTIME_PRIORITY = 10  # a phase whose generators made less than this share of the offered calls is not counted


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


def client_timeout(heartbeat: float) -> float:
    """The Redis client timeout ``sweepd agent`` sets (agent/cli/agent.py)."""
    return min(10.0, max(1.0, heartbeat))


def idle_wait(heartbeat: float, idle_poll: float = Options.idle_poll) -> float:
    """How long the idle loop blocks (Agent._idle_wait)."""
    return min(idle_poll, client_timeout(heartbeat) / 2)


async def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


# the generator process --------------------------------------------------------------------------


@dataclass
class Plan:
    url: str
    sid: str
    kind: str
    heartbeat: float
    run_length: float
    counts: list[int]  # this generator's agents, cumulative, per phase
    seed: int
    name: str


class WireError(Exception):
    pass


class Wire:
    """One agent's connection, speaking RESP2 itself: the generator must cost far less CPU per call
    than the agents' own client does, or 2,000 agents would not fit beside Redis on 2 cores. What
    goes over the wire is what redis-py sends for the same ``Store`` call (same commands, keys,
    arguments; ``--check`` compares the two)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    @classmethod
    async def open(cls, host: str, port: int) -> Wire:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    @staticmethod
    def encode(args: Sequence[Any]) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            b = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    async def replies(self, n: int) -> list[Any]:
        """Read n replies: parse what has arrived, read more only when a reply is incomplete."""
        while True:
            out: list[Any] = []
            pos = 0
            while len(out) < n:
                got = parse(self.buf, pos)
                if got is None:
                    break
                value, pos = got
                out.append(value)
            if len(out) == n:
                self.buf = self.buf[pos:]
                for value in out:
                    if isinstance(value, WireError):
                        raise value
                return out
            more = await self.reader.read(65536)
            if not more:
                raise WireError("connection closed")
            self.buf += more

    async def call(self, *args: Any) -> Any:
        self.writer.write(self.encode(args))
        return (await self.replies(1))[0]

    async def transaction(self, *commands: Sequence[Any]) -> Any:
        """MULTI, the commands, EXEC in one write, as redis-py's pipeline(transaction=True) sends them."""
        self.writer.write(b"".join(self.encode(c) for c in [("MULTI",), *commands, ("EXEC",)]))
        return (await self.replies(len(commands) + 2))[-1]


def parse(buf: bytes, pos: int) -> tuple[Any, int] | None:
    """One RESP2 reply from ``buf`` at ``pos``: (value, next position), or None if incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, rest, pos = buf[pos], buf[pos + 1 : end], end + 2
    if kind == 43:  # +
        return rest, pos
    if kind == 45:  # -
        return WireError(rest.decode()), pos
    if kind == 58:  # :
        return int(rest), pos
    if kind == 36:  # $
        size = int(rest)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            return None
        return buf[pos : pos + size], pos + size + 2
    if kind == 42:  # *
        size = int(rest)
        if size < 0:
            return None, pos
        items = []
        for _ in range(size):
            got = parse(buf, pos)
            if got is None:
                return None
            item, pos = got
            items.append(item)
        return items, pos
    raise WireError(f"unexpected reply type {chr(kind)!r}")


class Shared:
    """What a generator's agents share: the scripts' SHAs, the sweep's config, rq's job layout."""

    def __init__(self, plan: Plan) -> None:
        self.store = Store(redis.Redis.from_url(plan.url))
        self.sha = {name: script.sha for name, script in self.store._scripts.items()}
        for script in self.store._scripts.values():  # as redis-py does on NOSCRIPT, once
            self.store.r.script_load(script.script)
        self.config = self.store.config(plan.sid)
        self.host = socket.gethostname()
        #: Agents joining take their first run one at a time per generator: the benchmark measures
        #: the steady state, not the stampede of N agents creating runs at the same moment.
        self.joining = asyncio.Lock()


class SimAgent:
    """One simulated agent: a task with its own connection, making the agent's calls on schedule,
    in the agent's order (Agent._step, Attempt._supervise, Store)."""

    def __init__(self, plan: Plan, shared: Shared, index: int, wire: Wire) -> None:
        self.plan, self.shared, self.index, self.wire = plan, shared, index, wire
        self.id = f"sim-{plan.name}-{index}"
        self.rng = random.Random(f"{plan.seed}:{plan.name}:{index}")
        self.lease_s = plan.heartbeat * LEASE_HEARTBEATS
        self.lease_ms = int(self.lease_s * 1000)
        self.ops: list[tuple[str, float, float]] = []  # (what, started at, seconds)
        self.lags: list[tuple[float, float]] = []  # (when due, seconds late)
        self.started = time.time()
        sid = plan.sid
        self.k_sweep, self.k_queue, self.k_held = keys.sweep(sid), keys.rq_queue(sid), keys.sweep_held(sid)
        self.k_wake, self.k_events, self.k_runs = keys.sweep_wake(sid), keys.sweep_events(sid), keys.sweep_runs(sid)

    def note(self, what: str, t0: float, p0: float) -> None:
        self.ops.append((what, t0, time.perf_counter() - p0))

    # Store's calls, as the wire carries them ----------------------------------------------------

    async def claim(self) -> tuple[str, str] | None:
        """Store.claim: claim.lua (it returns the run's params and last step too)."""
        t0, p0 = time.time(), time.perf_counter()
        token = uuid.uuid4().hex
        got = await self.wire.call(
            "EVALSHA", self.shared.sha["claim"], 4, self.k_sweep, self.k_queue, self.k_held, self.k_events,
            keys.PREFIX + "run:", keys.RQ_JOB_PREFIX, self.id, token, self.lease_ms,
        )  # fmt: skip
        self.note("claim", t0, p0)
        return (got[0].decode(), token) if got else None

    async def sweep_next_index(self) -> tuple[int, int, bytes]:
        """Reads.sweep: HGETALL of the sweep's hash; (seed, next_index, state)."""
        flat = await self.wire.call("HGETALL", self.k_sweep)
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return int(raw[b"seed"]), int(raw[b"next_index"]), raw[b"state"]

    async def create_next(self) -> tuple[str, str] | None:
        """Store.create_next: the sweep, the search's next point, create.lua (again when beaten)."""
        t0, p0 = time.time(), time.perf_counter()
        try:
            while True:
                seed, index, _ = await self.sweep_next_index()
                params = search.suggest(self.shared.config, seed, index)
                if params is None:
                    return None
                rid, token = new_id(), uuid.uuid4().hex
                job = self.shared.store._rq_job_fields(self.plan.sid, rid)
                result = await self.wire.call(
                    "EVALSHA", self.shared.sha["create"], 6, self.k_sweep, self.k_runs, self.k_held,
                    keys.run(rid), keys.rq_job(rid), keys.sweep_seq(self.plan.sid),
                    index, rid, json.dumps(params), self.id, token, self.lease_ms, 0, self.plan.sid, *job,
                )  # fmt: skip
                self.ops.append(("create.lua", t0, 0.0))
                if result == b"ok":
                    return rid, token
                if result in (b"paused", b"cap", b"target"):
                    return None
        finally:
            self.note("create_next", t0, p0)

    async def is_complete(self) -> None:
        """Reads.is_complete on a running sweep with a run held: the sweep's HGETALL, ZCARD."""
        t0, p0 = time.time(), time.perf_counter()
        _, _, state = await self.sweep_next_index()
        if state != b"running" or not await self.wire.call("ZCARD", self.k_held):
            raise RuntimeError("the idle sweep is not running with a run held")
        self.note("is_complete", t0, p0)

    async def beat(self, run_id: str) -> None:
        """Store.agent_beat: one MULTI/EXEC."""
        t0, p0 = time.time(), time.perf_counter()
        now_ms = int(time.time() * 1000)
        info = {
            "host": self.shared.host,
            "pid": os.getpid(),
            "sweep_id": self.plan.sid,
            "run_id": run_id,
            "version": "0.1.0",
            "started_at": int(self.started * 1000),
            "heartbeat_at": now_ms,
        }
        mapping = [item for k, v in info.items() for item in (k, v)]
        ttl = max(1, int(self.lease_s + 0.999))
        await self.wire.transaction(
            ("HSET", keys.agent(self.id), *mapping),
            ("EXPIRE", keys.agent(self.id), ttl),
            ("ZADD", keys.sweep_agents(self.plan.sid), now_ms, self.id),
        )
        self.note("agent_beat", t0, p0)

    async def renew(self, rid: str, token: str) -> None:
        t0, p0 = time.time(), time.perf_counter()
        await self.wire.call(
            "EVALSHA", self.shared.sha["renew"], 3, keys.run(rid), self.k_held, self.k_sweep, rid, token, self.lease_ms
        )
        self.note("renew", t0, p0)

    async def reap(self) -> None:
        t0, p0 = time.time(), time.perf_counter()
        await self.wire.call(
            "EVALSHA", self.shared.sha["reap"], 4, self.k_held, self.k_queue, self.k_wake, self.k_events,
            keys.PREFIX + "run:", keys.RQ_JOB_PREFIX,
        )  # fmt: skip
        self.note("reap", t0, p0)

    async def complete(self, rid: str, token: str) -> None:
        t0, p0 = time.time(), time.perf_counter()
        await self.wire.call(
            "EVALSHA", self.shared.sha["complete"], 4, keys.run(rid), self.k_held, keys.rq_job(rid), self.k_wake,
            rid, token, "finished", 0, "",
        )  # fmt: skip
        self.note("complete", t0, p0)

    async def wait(self, seconds: float) -> None:
        """Reads.wait_for_work: BLPOP on the wake list."""
        t0, p0 = time.time(), time.perf_counter()
        await self.wire.call("BLPOP", self.k_wake, seconds)
        self.note("wait", t0, p0)

    # the two loops ------------------------------------------------------------------------------

    async def next_claim(self) -> tuple[str, str]:
        while True:
            got = await self.claim() or await self.create_next()
            if got:
                return got
            await asyncio.sleep(1.0)  # not expected on a random sweep with no cap

    async def busy(self, start: float, stop: float) -> None:
        h, length = self.plan.heartbeat, self.plan.run_length
        await sleep_until(start)
        await self.beat("")
        async with self.shared.joining:
            rid, token = await self.next_claim()
        run_end = time.time() + self.rng.uniform(0, length)  # runs end at random moments
        next_hb = time.time() + self.rng.uniform(0, h)  # heartbeats at random phases
        while True:
            due = min(next_hb, run_end)
            if due >= stop:
                return
            await sleep_until(due)
            now = time.time()
            if now >= run_end:
                await self.complete(rid, token)
                rid, token = await self.next_claim()
                run_end = time.time() + length
            if now >= next_hb:
                self.lags.append((next_hb, now - next_hb))
                await self.renew(rid, token)
                await self.beat(rid)
                await self.reap()
                next_hb += h

    async def idle(self, start: float, stop: float) -> None:
        h, wait = self.plan.heartbeat, idle_wait(self.plan.heartbeat)
        await sleep_until(start)
        last_reap = last_beat = -math.inf
        while time.time() < stop:
            now = time.time()
            if now - last_reap >= h:
                last_reap = now
                await self.reap()
            if await self.claim() is not None:
                raise RuntimeError("the idle sweep handed out a run")
            await self.create_next()
            await self.is_complete()
            if now - last_beat >= h:
                last_beat = now
                await self.beat("")
            await self.wait(wait)


async def generate_async(plan: Plan) -> None:
    """A generator process: connect every agent, say ready, take the schedule, run it, report."""
    shared = Shared(plan)
    where = urllib.parse.urlsplit(plan.url)
    host, port = where.hostname or "127.0.0.1", where.port or 6379
    agents = [SimAgent(plan, shared, i, await Wire.open(host, port)) for i in range(plan.counts[-1])]
    print("ready", flush=True)
    schedule = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    activate: list[float] = schedule["activate"]
    stop: float = schedule["stop"]
    tasks = []
    for agent in agents:
        phase = next(k for k, c in enumerate(plan.counts) if agent.index < c)
        start = activate[phase] + agent.rng.uniform(0, schedule["spread"])
        run = agent.busy if plan.kind == "busy" else agent.idle
        tasks.append(asyncio.create_task(run(start, stop)))
    await asyncio.gather(*tasks)
    report = []
    for w0, w1 in schedule["windows"]:
        counts: dict[str, int] = defaultdict(int)
        took: list[float] = []
        lags = []
        for agent in agents:
            for what, t0, seconds in agent.ops:
                if w0 <= t0 < w1:
                    counts[what] += 1
                    if what != "wait":
                        took.append(seconds)
            lags += [late for due, late in agent.lags if w0 <= due < w1]
        report.append(
            {
                "counts": counts,
                "client_p99_ms": percentile(took, 99) * 1000 if took else float("nan"),
                "lag_p99_ms": percentile(lags, 99) * 1000 if lags else float("nan"),
            }
        )
    print(json.dumps(report), flush=True)


def generate(plan: Plan) -> None:
    asyncio.run(generate_async(plan))


# the benchmark's side ---------------------------------------------------------------------------


class Probe:
    """An agent's calls, one every 10 ms, each round trip timed: what an agent waits for."""

    def __init__(self, url: str, sid: str, heartbeat: float) -> None:
        self.store = Store(connect(url, timeout=client_timeout(heartbeat)))
        self.sid = sid
        made = self.store.create_next(sid, "probe", lease_s=3600)
        if not isinstance(made, Claim):
            raise RuntimeError(f"the probe could not hold a run: {made}")
        self.claim = made
        self.samples: list[tuple[float, float]] = []  # (when, ms)
        info = {"host": "probe", "pid": os.getpid(), "sweep_id": sid, "run_id": made.run_id, "version": "0.1.0"}
        self.calls: list[Any] = [
            lambda: self.store.renew(self.claim, 3600),
            lambda: self.store.agent_beat(sid, "probe", info, ttl_s=3600),
            lambda: self.store.claim(sid, "probe-claims", 30),
            lambda: self.store.sweep(sid),
            lambda: self.store.held_count(sid),
        ]
        self.turn = 0

    def once(self) -> None:
        call = self.calls[self.turn % len(self.calls)]
        self.turn += 1
        t0 = time.perf_counter()
        call()
        self.samples.append((time.time(), (time.perf_counter() - t0) * 1000))

    def until(self, t: float) -> None:
        gc.disable()  # the probe's own garbage collection is no Redis latency
        try:
            while time.time() < t:
                self.once()
                time.sleep(max(0.0, min(PROBE_EVERY, t - time.time())))
        finally:
            gc.enable()

    def window(self, w0: float, w1: float) -> list[float]:
        return [ms for at, ms in self.samples if w0 <= at < w1]


def redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def server_p99(r: redis.Redis) -> tuple[float, str]:
    """The highest p99 (ms) the server measured for a command that does not block, and which."""
    worst, name = 0.0, "-"
    for key, value in r.info("latencystats").items():
        command = key.removeprefix("latency_percentiles_usec_")
        if command.split("|")[0] in ("blpop", "brpop", "blmove", "info", "config"):
            continue
        if isinstance(value, dict):
            p99 = float(value.get("p99", 0))
        else:
            fields = dict(part.split("=") for part in str(value).split(","))
            p99 = float(fields.get("p99", 0))
        if p99 / 1000 > worst:
            worst, name = p99 / 1000, command
    return worst, name


@dataclass
class Phase:
    """One N's window: what observe() measured in it, then what the generators report of it."""

    n: int
    cpu_pct: float
    probe_p50: float
    probe_p99: float
    server_p99: float
    server_cmd: str
    commands_per_s: float
    gen_cpu_pct: float
    offered: float = 0.0  # heartbeats (busy) or idle turns per second the schedule asks for
    made: float = 0.0  # what the generators made
    client_p99: float = 0.0
    lag_p99: float = 0.0

    @property
    def kept_up(self) -> bool:
        return self.offered == 0 or self.made >= KEEP_UP * self.offered


def realtime(pid: int) -> bool:
    """Run ``pid`` under SCHED_FIFO (needs root or CAP_SYS_NICE): nothing else on the machine can
    keep it waiting for a core. False when the system does not allow it."""
    try:  # RESET_ON_FORK: what it starts (the generators) runs at normal priority again
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(pid, policy, os.sched_param(REALTIME_PRIORITY))
        return True
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def awake_cpus(wanted: bool) -> Iterator[bool]:
    """Keep the cores out of their idle states while held (Linux PM QoS, /dev/cpu_dma_latency = 0;
    root only): a core that went idle takes milliseconds to wake on a VM, which at low load would
    be all the probe measures. Yields whether it took."""
    fd = None
    if wanted:
        with contextlib.suppress(OSError):
            fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
            os.write(fd, struct.pack("i", 0))
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # the request ends with the file


@contextlib.contextmanager
def realtime_probe(wanted: bool) -> Iterator[bool]:
    """This process (the probe) under SCHED_FIFO for the duration, then back."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    got = wanted and realtime(0)
    try:
        yield got
    finally:
        if got:
            os.sched_setscheduler(0, before[0], before[1])


def start_generators(url: str, sid: str, w: Workload, ns: list[int], run_length: float) -> list[subprocess.Popen[str]]:
    """Generator processes, each with its share of every phase's agents, connected and ready."""
    count = max(1, math.ceil(max(ns) / AGENTS_PER_GENERATOR))
    gens = []
    for g in range(count):
        counts = [n // count + (1 if g < n % count else 0) for n in ns]
        plan = Plan(url, sid, w.kind, w.heartbeat, run_length, counts, 7, f"{w.name}{g}")
        cmd = [sys.executable, __file__, "--generate", json.dumps(asdict(plan))]
        gens.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in gens:
        line = p.stdout.readline() if p.stdout else ""
        if line.strip() != "ready":
            stop(gens)
            raise RuntimeError(f"a load generator did not start: {line!r}")
    return gens


def observe(r: redis.Redis, probe: Probe, gens: list[psutil.Process], n: int, w0: float, w1: float) -> Phase:
    """Probe until w0, then measure Redis and the generators over [w0, w1)."""
    probe.until(w0)
    r.config_resetstat()
    cpu0, gcpu0 = redis_cpu(r), sum(sum(p.cpu_times()[:2]) for p in gens)
    probe.until(w1)
    cpu1, gcpu1 = redis_cpu(r), sum(sum(p.cpu_times()[:2]) for p in gens)
    calls = sum(int(v["calls"]) for k, v in r.info("commandstats").items() if k != "cmdstat_info")
    ms = probe.window(w0, w1)
    p99, command = server_p99(r)
    phase = Phase(
        n,
        cpu_pct=100 * (cpu1 - cpu0) / (w1 - w0),
        probe_p50=percentile(ms, 50),
        probe_p99=percentile(ms, 99),
        server_p99=p99,
        server_cmd=command,
        commands_per_s=calls / (w1 - w0),
        gen_cpu_pct=100 * (gcpu1 - gcpu0) / (w1 - w0),
    )
    progress(f"scale: N={n:,} Redis CPU {phase.cpu_pct:.1f}%, probe p99 {phase.probe_p99:.2f} ms")
    return phase


def run_workload(
    w: Workload, ns: list[int], window: float, ramp: float, run_length: float, pinned: bool
) -> tuple[Phase, list[Phase], bool]:
    """(the baseline with no agent, one phase per N, whether Redis and the probe ran real-time)."""
    with (
        private_redis(cpus={0} if pinned else None, in_memory=True) as server,
        realtime_probe(pinned) as isolated,
        awake_cpus(pinned),
    ):
        isolated = isolated and realtime(server.proc.pid)
        r = server.client()
        if w.kind == "busy":
            config: dict[str, Any] = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
        else:
            config = {"method": "grid", "parameters": {"x": {"value": 1}}}
        sid = new_sweep(server.url, {**config, "command": ["true", "${args}"]})
        probe = Probe(server.url, sid, w.heartbeat)  # in the idle sweep, the probe holds the one run
        gens = start_generators(server.url, sid, w, ns, run_length)
        try:
            t0 = time.time() + 1.0 + window  # the baseline window first, no agent active
            base_window = (t0 - window - 0.5, t0 - 0.5)
            activate = [t0 + k * (ramp + window) for k in range(len(ns))]
            windows = [(a + ramp, a + ramp + window) for a in activate]
            schedule = {"activate": activate, "windows": windows, "stop": windows[-1][1] + 0.2, "spread": ramp / 2}
            for p in gens:
                assert p.stdin is not None
                p.stdin.write(json.dumps(schedule) + "\n")
                p.stdin.flush()
            procs = [psutil.Process(p.pid) for p in gens]
            base = observe(r, probe, procs, 0, *base_window)
            phases = [observe(r, probe, procs, n, w0, w1) for n, (w0, w1) in zip(ns, windows, strict=True)]
            reports = []
            for p in gens:
                out, _ = p.communicate(timeout=120)
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            stop(gens)
        for k, phase in enumerate(phases):
            counts: dict[str, int] = defaultdict(int)
            for rep in reports:
                for what, c in rep[k]["counts"].items():
                    counts[what] += c
            seconds = windows[k][1] - windows[k][0]
            if w.kind == "busy":
                phase.offered, phase.made = phase.n / w.heartbeat, counts["renew"] / seconds
            else:
                phase.offered, phase.made = phase.n / idle_wait(w.heartbeat), counts["wait"] / seconds
            phase.client_p99 = max(rep[k]["client_p99_ms"] for rep in reports)
            phase.lag_p99 = max(rep[k]["lag_p99_ms"] for rep in reports)
        return base, phases, isolated


def made_share(p: Phase, window: float) -> str:
    """The share of the offered calls the generators made (too few calls in a window to say at small N)."""
    if not p.offered:
        return "—"
    return f"{100 * p.made / p.offered:.0f}%" if p.offered * window >= 20 else "(few calls)"


def per_agent_rates(r: redis.Redis, agents: int, seconds: float) -> dict[str, float]:
    """Commands Redis executed over ``seconds`` (from a CONFIG RESETSTAT now), per agent per second."""
    r.config_resetstat()
    time.sleep(seconds)
    stats = r.info("commandstats")
    skip = ("cmdstat_info", "cmdstat_config|resetstat")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) / seconds / agents for k, v in stats.items() if k not in skip}


def fidelity(kind: str, agents: int = 4) -> tuple[dict[str, float], dict[str, float]]:
    """(real agents' commands per agent per second, the generator's), for the same workload: busy
    at --heartbeat 1 with runs of about 2 s, or idle at the default heartbeat; over a window of
    whole heartbeats (real agents started together beat together)."""
    from common import wait_for

    seconds = 8.0 if kind == "busy" else Options.heartbeat
    from common import agent as start_agent
    from common import bench_env

    heartbeat, length = (1.0, 2.0) if kind == "busy" else (Options.heartbeat, 60.0)
    if kind == "busy":
        config: dict[str, Any] = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
        command = [sys.executable, "-c", f"import time; time.sleep({length})", "${args}"]
    else:
        config = {"method": "grid", "parameters": {"x": {"value": 1}}}
        command = ["true", "${args}"]
    results = []
    for real in (True, False):
        with private_redis() as server:
            r = server.client()
            sid = new_sweep(server.url, {**config, "command": command})
            if kind == "idle":
                Store(r).create_next(sid, "bench-holder", lease_s=3600)  # nothing to hand out, not complete
            procs: list[subprocess.Popen[Any]] = []
            try:
                if real:
                    env = bench_env(server.url, server.work)
                    procs = [start_agent(env, sid, "--heartbeat", str(heartbeat)) for _ in range(agents)]
                    key = keys.sweep_agents(sid)
                    wait_for(lambda c=r, k=key: c.zcard(k) == agents, 60, "the agents", 0.05)
                    time.sleep(2.0)  # past start-up and the first run
                else:
                    w = Workload(f"check-{kind}", kind, heartbeat)
                    procs = start_generators(server.url, sid, w, [agents], length + 0.1)
                    now = time.time()
                    stop_at = now + 6 + seconds
                    schedule = {"activate": [now], "windows": [[now, now + 1]], "stop": stop_at, "spread": 0.5}
                    for p in procs:
                        assert p.stdin is not None
                        p.stdin.write(json.dumps(schedule) + "\n")
                        p.stdin.flush()
                    time.sleep(2.5)
                results.append(per_agent_rates(r, agents, seconds))
            finally:
                stop(procs)
    return results[0], results[1]


def fidelity_rows(kind: str) -> tuple[Row, str]:
    real, sim = fidelity(kind)
    total_real, total_sim = sum(real.values()), sum(sim.values())
    names = sorted(set(real) | set(sim), key=lambda k: -real.get(k, 0))
    worst = max(abs(sim.get(k, 0) - real.get(k, 0)) / max(real.get(k, 0), 0.05) for k in names)
    what = "busy, --heartbeat 1, 2 s runs" if kind == "busy" else "idle, default heartbeat"
    row = Row(
        f"scale generator fidelity ({what}): Redis commands per agent per second, simulated vs real agents",
        f"{num(total_sim, 2)} (simulated)",
        f"{num(total_real, 2)} (4 `sweepd agent` processes)",
        ratio(total_sim, total_real),
    )
    table_rows = [[f"`{k.upper()}`", num(real.get(k, 0), 3), num(sim.get(k, 0), 3)] for k in names]
    detail = f"Generator fidelity, {what} (largest difference in one command: {100 * worst:.0f}%):\n\n"
    detail += markdown(table_rows, ["command", "real agent per s", "simulated agent per s"])
    return row, detail


def measure(
    quick: bool = False,
    ns: list[int] | None = None,
    workloads: list[str] | None = None,
    window: float | None = None,
    ramp: float | None = None,
    run_length: float = 60.0,
    pinned: bool = True,
    check: tuple[str, ...] | None = None,
) -> Section:
    """The workloads at each N, and the generator's fidelity check for the ``check`` workloads
    (default: idle, none in --quick)."""
    check = (() if quick else ("idle",)) if check is None else check
    ns = ns or ([1000] if quick else [10, 100, 500, 1000, 2000])
    names = workloads or (["idle"] if quick else ["busy", "busy-hb1", "idle"])
    window = window or (1.5 if quick else 3.0)
    ramp = ramp or (1.0 if quick else 1.5)
    pinned = pinned and len(os.sched_getaffinity(0)) >= 2
    section = Section("scale")
    details = []
    for name in names:
        w = WORKLOADS[name]
        base, phases, isolated = run_workload(w, ns, window, ramp, run_length, pinned)
        del isolated  # (reported below)
        counted = [p for p in phases if p.kept_up]
        good = [p.n for p in counted if p.probe_p99 < TARGET_P99_MS]
        largest = max(good) if good else 0
        top = phases[-1]
        limited = "" if top.kept_up else " (generator-limited)"
        all_ok = largest == max(ns) and top.kept_up
        section.rows.append(
            Row(
                f"scale, {w.label}: largest N (of {', '.join(f'{n:,}' for n in ns)}) with probe p99 < 5 ms",
                f"{largest:,}" + (" (all tested)" if all_ok else ""),
                "—",
                "—",
                f"p99 < {TARGET_P99_MS:.0f} ms: {verdict(largest > 0)}",
            )
        )
        section.rows.append(
            Row(
                f"scale, {w.label}: at N = {top.n:,}, Redis CPU % / probe p99 ms{limited}",
                f"{num(top.cpu_pct)} / {num(top.probe_p99, 2)}",
                f"{num(base.cpu_pct)} / {num(base.probe_p99, 2)} (N = 0)",
                ratio(top.probe_p99, base.probe_p99) + " (p99)",
            )
        )
        rows = [
            [
                p.n,
                num(p.commands_per_s),
                num(p.cpu_pct),
                num(p.probe_p50, 2),
                num(p.probe_p99, 2),
                f"{num(p.server_p99, 3)} ({p.server_cmd})",
                made_share(p, window),
                num(p.lag_p99, 1) if w.kind == "busy" else "—",
                num(p.client_p99, 2),
                num(p.gen_cpu_pct),
            ]
            for p in [base, *phases]
        ]
        header = [
            "N",
            "Redis commands/s",
            "Redis CPU %",
            "probe p50 ms",
            "probe p99 ms",
            "server p99 ms (command)",
            "offered load made",
            "heartbeat lag p99 ms",
            "generator-side p99 ms",
            "generators' CPU %",
        ]
        text = f"{w.label}:\n\n" + markdown(rows, header)
        if top.n and top.cpu_pct > base.cpu_pct:
            per_1000 = (top.cpu_pct - base.cpu_pct) / top.n * 1000
            text += (
                f"\n\nRedis's CPU grows by {per_1000:.1f}% of a core per 1,000 agents: by a straight line, one core "
                f"would be busy all the time near N = {(100 - base.cpu_pct) / per_1000 * 1000:,.0f}."
            )
        details.append(text)
    for kind in check:
        row, detail = fidelity_rows(kind)
        section.rows.append(row)
        details.append(detail)
    section.detail = "\n\n".join(details)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="10,100,500,1000,2000")
    parser.add_argument("--workloads", default="busy,busy-hb1,idle")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--ramp", type=float, default=1.5)
    parser.add_argument("--run-length", type=float, default=60.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin Redis and the load to separate cores")
    parser.add_argument("--check", action="store_true", help="compare simulated with real agents, busy and idle")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Plan(**json.loads(args.generate)))
        return
    if args.quick:
        section = measure(True, pinned=not args.no_pin)
    else:
        section = measure(
            False,
            [int(n) for n in args.agents.split(",")],
            args.workloads.split(","),
            args.window,
            args.ramp,
            args.run_length,
            not args.no_pin,
            ("idle", "busy") if args.check else ("idle",),
        )
    show(section)


if __name__ == "__main__":
    main()
