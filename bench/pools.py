"""Pools: what an idle pool agent costs Redis with 100 sweeps in its pool, and how fast it picks up a
requeued run, each beside a single-sweep agent measured in the same run.

Every sweep of the pool has its one run held by the benchmark itself (a long lease), so the pool
has no work and no sweep is complete: the agent waits, as a fleet does between sweeps. One more
sweep of the pool has a second point, which the agent runs first and the benchmark then requeues
(an operator's requeue: ``Store.operate``) trial after trial. The baselines are bench/idle.py's and
bench/pickup.py's measurements of a single-sweep agent, on a Redis of its own, over the same
time (idle: the same window; pickup: trial by trial in turn).

    python bench/pools.py [--sweeps 100] [--seconds 600] [--trials 30]

The idle window is long (600 s, 60 heartbeats): the pool agent's periodic look (its pool's ``:gen``)
and lease read (its pool's ``:held`` index) come every 30 heartbeats, and a shorter window would
catch one or none.

Targets: idle at most 0.5 Redis commands per second (as a single-sweep idle agent); pickup within
1.5x of the single-sweep agent's.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import sys
import time
from typing import Any

import redis
from common import Row, Section, agent, bench_env, markdown, median, num, percentile, private_redis, ratio, show, stop
from common import wait_for as wait
from idle import Meter
from pickup import program, read_mark

from sweepd.agent.daemon.options import Options
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.store import Store

POOL = "bench"
IDLE_TARGET = 0.5
PICKUP_TARGET = 1.5


def pool_agent(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sweepd.agent", "agent", "--pool", POOL, "--notices", "none", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def fill(store: Store, sweeps: int) -> str:
    """``sweeps`` sweeps in the pool with nothing to hand out (each one's run held here), and one
    more whose second point the agent will run: its id."""
    one = validate({"method": "grid", "command": program(), "parameters": {"x": {"value": 0}}})
    for _ in range(sweeps):
        sid = store.create_sweep(one)
        store.create_next(sid, "bench-holder", lease_s=3600)
        store.set_pool(sid, pool=POOL)
    two = validate({"method": "grid", "command": program(), "parameters": {"x": {"values": [0, 1]}}})
    sid = store.create_sweep(two)
    store.create_next(sid, "bench-holder", lease_s=3600)
    store.set_pool(sid, pool=POOL)
    return sid


def usec(r: redis.Redis) -> float:
    """Microseconds Redis spent executing commands so far (INFO commandstats; INFO left out)."""
    stats = r.info("commandstats")
    return sum(float(v["usec"]) for k, v in stats.items() if k != "cmdstat_info")


def idle_costs(sweeps: int, seconds: float) -> dict[str, tuple[float, float, dict[str, float]]]:
    """An idle pool agent of ``sweeps`` sweeps and an idle single-sweep agent, each on a Redis of
    its own, over the same window: per agent (Redis commands/s, Redis CPU µs/s, the commands)."""
    with private_redis() as pool_server, private_redis() as sweep_server:
        pr, sr = pool_server.client(), sweep_server.client()
        fill(Store(pr), sweeps)
        sweep_store = Store(sr)
        two = validate({"method": "grid", "command": program(), "parameters": {"x": {"values": [0, 1]}}})
        sid = sweep_store.create_sweep(two)
        sweep_store.create_next(sid, "bench-holder", lease_s=3600)  # never complete: the agent waits
        procs = [
            pool_agent(bench_env(pool_server.url, pool_server.work, MARKS=str(pool_server.work))),
            agent(bench_env(sweep_server.url, sweep_server.work, MARKS=str(sweep_server.work)), sid),
        ]
        try:
            wait(lambda: pr.zcard(keys.pool_agents(POOL)) == 1, 60, "the pool agent")
            wait(lambda: sr.zcard(keys.sweep_agents(sid)) == 1, 60, "the sweep agent")
            wait(lambda: list(pool_server.work.glob("*.1")) and list(sweep_server.work.glob("*.1")), 60, "runs")
            time.sleep(3)  # past start-up and that run
            meters = {"pool": Meter(pr, [procs[0].pid]), "sweep": Meter(sr, [procs[1].pid])}
            cpu0 = {"pool": usec(pr), "sweep": usec(sr)}
            for m in meters.values():
                m.start()
            t0 = time.monotonic()
            time.sleep(seconds)
            out = {}
            for name, m in meters.items():
                per_s, _, _ = m.stop()
                cpu = (usec(pr if name == "pool" else sr) - cpu0[name]) / (time.monotonic() - t0)
                out[name] = (per_s, cpu, m.mix)
        finally:
            stop(procs)
    return out


class Idler:
    """An idle agent on a Redis of its own whose one finished run the benchmark requeues."""

    def __init__(self, server: Any, pooled: bool, sweeps: int) -> None:
        self.marks = server.work / "marks"
        self.marks.mkdir()
        self.store = Store(server.client())
        env = bench_env(server.url, server.work, MARKS=str(self.marks))
        if pooled:
            fill(self.store, sweeps)
            self.proc = pool_agent(env)
        else:
            two = validate({"method": "grid", "command": program(), "parameters": {"x": {"values": [0, 1]}}})
            sid = self.store.create_sweep(two)
            self.store.create_next(sid, "bench-holder", lease_s=3600)  # never complete: the agent waits
            self.proc = agent(env, sid)
        first = wait(lambda: list(self.marks.glob("*.1")), 60, "the agent's first run")
        self.rid = first[0].name.split(".")[0]
        wait(lambda: self.store.run(self.rid).state == "finished", 30, "the first run to finish")

    def trial(self) -> float:
        """ms from an operator's requeue of the run to its process's first act."""
        store, rid = self.store, self.rid
        attempt = store.run(rid).attempt + 1
        t0 = time.time()
        store.operate(rid, "requeue")
        mark = self.marks / f"{rid}.{attempt}"
        wait(mark.exists, 30, "the requeued run to start", interval=0.001)
        wait(lambda: mark.stat().st_size > 0, 5, "the mark", interval=0.001)
        took = (read_mark(mark) - t0) * 1000
        wait(lambda: store.run(rid).state == "finished" and store.run(rid).attempt == attempt, 30, "end")
        return took


def pickups(sweeps: int, trials: int) -> tuple[list[float], list[float]]:
    """Pickups of the pool agent and of the single-sweep agent, trial by trial in turn (the same
    machine load for both)."""
    with private_redis() as pool_server, private_redis() as sweep_server:
        idlers = [Idler(pool_server, True, sweeps), Idler(sweep_server, False, sweeps)]
        try:
            out: tuple[list[float], list[float]] = ([], [])
            for i in range(2 * trials):
                time.sleep(random.uniform(0.1, 0.3))  # the agents are back in their blocking wait
                which = i % 2 if (i // 2) % 2 == 0 else 1 - i % 2  # pool first, then single first, ...
                out[which].append(idlers[which].trial())
            return out
        finally:
            stop([idler.proc for idler in idlers])


def measure(
    quick: bool = False, sweeps: int | None = None, seconds: float | None = None, trials: int | None = None
) -> Section:
    sweeps = sweeps or (20 if quick else 100)
    seconds = seconds or (4 if quick else 600)
    trials = trials or (8 if quick else 30)
    section = Section("pools")
    costs = idle_costs(sweeps, seconds)
    (pool_idle, pool_cpu, mix), (base_idle, base_cpu, _) = costs["pool"], costs["sweep"]
    # What the agent sends: its heartbeat's ZADD, PEXPIRE and ZRANGEBYSCORE (one each; pool_leases.lua
    # runs ZRANGEBYSCORE too, but no ZADD), its BLPOP and its script calls.
    beats = mix.get("zadd", 0)
    sent = mix.get("evalsha", 0) + mix.get("blpop", 0) + mix.get("pexpire", 0) + 2 * beats
    section.rows.append(
        Row(
            f"pool: idle pool agent, {sweeps} sweeps: Redis commands/s "
            f"({seconds:g} s, --heartbeat {Options.heartbeat:g})",
            num(pool_idle, 3),
            f"{num(base_idle, 3)} (an idle single-sweep agent)",
            ratio(pool_idle, base_idle),
            f"<= {IDLE_TARGET}: {'yes' if pool_idle <= IDLE_TARGET else 'NO'}",
        )
    )
    section.rows.append(
        Row(
            f"pool: idle pool agent, {sweeps} sweeps: Redis CPU µs/s (same window)",
            num(pool_cpu, 1),
            f"{num(base_cpu, 1)} (an idle single-sweep agent)",
            ratio(pool_cpu, base_cpu),
        )
    )
    ours, theirs = pickups(sweeps, trials)
    section.rows.append(
        Row(
            f"pool: pickup of a requeued run by an idle pool agent of {sweeps} sweeps, ms p50 / p99 ({trials} trials)",
            f"{num(median(ours))} / {num(percentile(ours, 99))}",
            f"{num(median(theirs))} / {num(percentile(theirs, 99))} (a single-sweep agent)",
            ratio(median(ours), median(theirs)),
            f"within {PICKUP_TARGET}x: {'yes' if median(ours) <= PICKUP_TARGET * median(theirs) else 'NO'}",
        )
    )
    section.detail = markdown(
        [
            [
                f"idle pool agent ({sweeps} sweeps)",
                num(pool_idle, 3),
                num(sent, 3),
                num(pool_cpu, 1),
                num(median(ours)),
                num(percentile(ours, 99)),
            ],
            [
                "idle single-sweep agent",
                num(base_idle, 3),
                num(base_idle, 3),
                num(base_cpu, 1),
                num(median(theirs)),
                num(percentile(theirs, 99)),
            ],
        ],
        [
            "agent",
            "Redis commands/s idle (scripts' own included)",
            "commands/s the agent sends (TIME aside)",
            "Redis CPU µs/s",
            "pickup p50 ms",
            "pickup p99 ms",
        ],
    )
    rows = sorted(((v, k) for k, v in mix.items() if v > 0), reverse=True)
    section.detail += "\n\nWhat the idle pool agent makes Redis execute per second (INFO commandstats; the commands "
    section.detail += "its Lua scripts run are counted too, EVALSHA is the script call itself):\n\n"
    section.detail += markdown([[f"`{k.upper()}`", num(v, 2)] for v, k in rows], ["command", "per second"])
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        show(measure(True))
    else:
        show(measure(False, args.sweeps, args.seconds, args.trials))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
