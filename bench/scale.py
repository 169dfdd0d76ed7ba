"""Scale: how many agents one Redis serves.

The load is made of the agent's own code (bench/scale_load.py): sweepd's ``Agent`` objects, each
on a connection of its own, idle ones turning the agent's own loop and waiting in its own idle wait,
busy ones holding their runs through the agent's own ``Hold`` without a process behind them. A few
thousand agents per generator process. ``--check`` (and the full run.py) runs real ``sweepd agent``
processes and generated agents side by side and compares the commands Redis executes per agent,
command by command (bench/scale_check.py).

- busy: every agent holds a run of ``--run-length`` seconds on one random sweep: each heartbeat the
  hold's renewal, the agent's beat and its reap; at a run's end the hold's record and the agent's
  next claim.
- idle: every agent waits on a sweep that has nothing to hand out but is not complete (the end of a
  sweep): one heartbeat and one BLPOP per heartbeat.

N grows in phases (10, 100, 1,000, 5,000, 10,000 by default) in one run per workload: the agents of
earlier phases go on, each phase adds agents (connected up front, silent until then), started over
one heartbeat so that their heartbeats are spread as real agents' are; after the ramp (at least a
heartbeat) it measures for ``--window`` seconds:

- Redis CPU: ``INFO cpu`` (user + sys) delta over the window, in % of one core; Redis's memory per
  agent (``used_memory`` over N = 0).
- Command latency as an agent sees it: a probe in the benchmark's own process makes an agent's
  calls through ``Store`` (renew, agent_beat, claim, the sweep's HGETALL, ZCARD) every 5 ms and
  times each round trip; p50 and p99. Also the server's own p99 (``INFO latencystats``, blocking
  commands left out).
- The baseline, measured in the same run: the probe against the same Redis with no agent (N = 0).

Redis is pinned to one core and runs SCHED_FIFO, and so does the probe (as root, on a machine with
two or more cores; otherwise both run as they are); the generators run at normal priority on any
core. So Redis has a core of its own, as on a machine of its own, neither Redis nor the probe waits
for the generators' CPU, and the generators use what is left. What remains in the probe's figure is
the machine's own noise (a shared VM's steal time): the N = 0 baseline shows it. While it measures,
the benchmark also keeps the cores out of their idle states (Linux PM QoS, ``/dev/cpu_dma_latency``,
as root): on a VM a core that went idle takes milliseconds to wake. The generator must keep up, or
the figure would understate the load: each phase reports the share of the offered heartbeats the
generated agents made in the window and how late the busy agents' renewals were sent (p99); an idle
phase under 90% of its heartbeats, or a busy phase whose renewals were late by more than a tenth of
a heartbeat, is marked generator-limited and not counted for the largest N.

    python bench/scale.py [--agents 10,100,1000,5000,10000] [--workloads busy,busy-hb1,idle]
                          [--window 3] [--ramp 1.5] [--run-length 60] [--check]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from dataclasses import dataclass
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
from pinning import awake_cpus, realtime, realtime_probe
from scale_check import fidelity_rows
from scale_load import WORKLOADS, Workload, client_timeout, start_generators

from sweepd.queue.connections import connect
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

TARGET_P99_MS = 5.0
PROBE_EVERY = 0.005
KEEP_UP = 0.9  # an idle phase whose generators made less than this share of the offered heartbeats is not counted
FEW = 20  # heartbeats offered in a window below which its share made says nothing
LAG_LIMIT = 0.1  # nor a busy phase whose renewals were late by more than this share of a heartbeat (p99)
DEFAULT_NS = [10, 100, 1000, 5000, 10000]


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
    memory: int  # Redis's used_memory at the window's end, bytes
    offered: float = 0.0  # heartbeats per second the schedule asks for
    made: float = 0.0  # what the generated agents made
    lag_p99: float = 0.0  # busy: how late a renewal was sent, the scheduler's own lag
    lag_limit: float | None = None  # busy: the lag (ms) past which the generators fell behind
    window: float = 0.0  # seconds measured

    @property
    def kept_up(self) -> bool:
        """Idle: the share of the offered heartbeats made. Busy: the renewals' lag, since a busy agent
        makes fewer beats than heartbeats (a run's end falls on a renewal's moment, and its beat there
        is skipped when the last one is just under a heartbeat old: about 1 in 12 for 60 s runs)."""
        if self.lag_limit is not None:
            return self.lag_p99 <= self.lag_limit
        if self.offered * self.window < FEW:  # too few heartbeats in the window to say
            return True
        return self.made >= KEEP_UP * self.offered


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
        memory=int(r.info("memory")["used_memory"]),
    )
    progress(f"scale: N={n:,} Redis CPU {phase.cpu_pct:.1f}%, probe p99 {phase.probe_p99:.2f} ms")
    return phase


def run_workload(
    w: Workload, ns: list[int], window: float, ramp: float, run_length: float, pinned: bool
) -> tuple[Phase, list[Phase], bool]:
    """(the baseline with no agent, one phase per N, whether Redis and the probe ran real-time)."""
    with (
        private_redis(cpus={0} if pinned else None, maxclients=max(ns) + 1000, in_memory=True) as server,
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
            ramp = max(ramp, w.heartbeat + 1.0)  # a phase's agents start over one heartbeat, then a margin
            activate = [t0 + k * (ramp + window) for k in range(len(ns))]
            windows = [(a + ramp, a + ramp + window) for a in activate]
            schedule = {"activate": activate, "windows": windows, "stop": windows[-1][1] + 0.2, "spread": w.heartbeat}
            for p in gens:
                assert p.stdin is not None
                p.stdin.write(json.dumps(schedule) + "\n")
                p.stdin.flush()
            procs = [psutil.Process(p.pid) for p in gens]
            base = observe(r, probe, procs, 0, *base_window)
            phases = [observe(r, probe, procs, n, w0, w1) for n, (w0, w1) in zip(ns, windows, strict=True)]
            reports = []
            for p in gens:
                out, _ = p.communicate(timeout=300)
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            stop(gens)
        for k, phase in enumerate(phases):
            seconds = windows[k][1] - windows[k][0]
            phase.offered, phase.window = phase.n / w.heartbeat, seconds
            phase.made = sum(rep[k]["beats"] for rep in reports) / seconds
            phase.lag_p99 = max(rep[k]["lag_p99_ms"] for rep in reports)
            phase.lag_limit = LAG_LIMIT * 1000 * w.heartbeat if w.kind == "busy" else None
        return base, phases, isolated


def made_share(p: Phase, window: float) -> str:
    """The share of the offered calls the generators made (too few calls in a window to say at small N)."""
    if not p.offered:
        return "—"
    return f"{100 * p.made / p.offered:.0f}%" if p.offered * window >= FEW else "(few calls)"


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
    ns = ns or ([1000] if quick else DEFAULT_NS)
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
        unmeasured = [f"{p.n:,}" for p in phases if not p.kept_up]
        failed = [p.n for p in counted if p.probe_p99 >= TARGET_P99_MS]
        target = f"p99 < {TARGET_P99_MS:.0f} ms: {verdict(not failed and largest > 0)}"
        if unmeasured and not failed:
            target += f" to {largest:,}; N = {', '.join(unmeasured)} not measured (generator-limited)"
        section.rows.append(
            Row(
                f"scale, {w.label}: largest N (of {', '.join(f'{n:,}' for n in ns)}) with probe p99 < 5 ms",
                f"{largest:,}" + (" (all tested)" if largest == max(ns) and not unmeasured else ""),
                "—",
                "—",
                target,
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
                num((p.memory - base.memory) / p.n, 0) if p.n else "—",
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
            "Redis memory per agent, bytes",
            "generators' CPU %",
        ]
        text = f"{w.label}:\n\n" + markdown(rows, header)
        fit = max(counted, key=lambda p: p.n, default=None)  # the largest N the generators kept up with
        if fit is not None and fit.n and fit.cpu_pct > base.cpu_pct:
            per_1000 = (fit.cpu_pct - base.cpu_pct) / fit.n * 1000
            text += (
                f"\n\nRedis's CPU grows by {per_1000:.1f}% of a core per 1,000 agents (N = {fit.n:,}): by a straight "
                f"line, one core would be busy all the time near N = {(100 - base.cpu_pct) / per_1000 * 1000:,.0f}."
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
    parser.add_argument("--agents", default=",".join(map(str, DEFAULT_NS)))
    parser.add_argument("--workloads", default="busy,busy-hb1,idle")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--ramp", type=float, default=1.5)
    parser.add_argument("--run-length", type=float, default=60.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin Redis and the load to separate cores")
    parser.add_argument("--check", action="store_true", help="compare generated with real agents, busy and idle")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
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
