"""Idle cost: Redis commands per second per idle agent, and an idle agent's RSS and CPU.

Idle agents wait on a sweep that has nothing to hand out but is not complete (its other run is held
by the benchmark itself, with a long lease), at the default heartbeat. The baseline, measured over
the same minute on a Redis of its own: idle ``rq worker`` processes (rq's default worker class, the
command users would otherwise run) waiting on an empty queue. Commands are counted from the
server's ``INFO commandstats`` (the benchmark's own INFO calls left out); RSS and CPU per process
from psutil.

    python bench/idle.py [--agents 4] [--seconds 60] [--heartbeat 10]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Sequence

import psutil
import redis
from common import (
    Row,
    Section,
    agent,
    bench_env,
    markdown,
    new_sweep,
    num,
    private_redis,
    ratio,
    show,
    stop,
    wait_for,
)

from sweepd.agent.daemon.options import Options
from sweepd.queue import keys
from sweepd.queue.store import Store


def calls(r: redis.Redis) -> dict[str, int]:
    """Commands the server executed so far, by name (those Lua scripts ran included; INFO left out)."""
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


class Meter:
    """Commands on one Redis, and CPU and RSS of some processes, between start() and stop()."""

    def __init__(self, r: redis.Redis, pids: Sequence[int]) -> None:
        self.r, self.procs = r, [psutil.Process(p) for p in pids]

    def start(self) -> None:
        self.cpu0 = [p.cpu_times() for p in self.procs]
        self.calls0, self.t0 = calls(self.r), time.monotonic()

    def stop(self) -> tuple[float, float, float]:
        """(commands per second per process, mean RSS in MiB, mean CPU in % of one core)."""
        now, seconds = calls(self.r), time.monotonic() - self.t0
        self.mix = {k: (v - self.calls0.get(k, 0)) / seconds / len(self.procs) for k, v in now.items()}
        cpu1 = [p.cpu_times() for p in self.procs]
        rss = [p.memory_info().rss for p in self.procs]
        cpu = sum((b.user + b.system) - (a.user + a.system) for a, b in zip(self.cpu0, cpu1, strict=True))
        n = len(self.procs)
        return sum(self.mix.values()), sum(rss) / n / 2**20, 100 * cpu / seconds / n


def rq_worker(url: str, queue: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--quiet", queue],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rq_cli_works() -> bool:
    done = subprocess.run([sys.executable, "-m", "rq.cli", "--help"], capture_output=True)
    return done.returncode == 0


def measure(
    quick: bool = False, agents: int | None = None, seconds: float | None = None, heartbeat: float = Options.heartbeat
) -> Section:
    seconds = seconds or (4 if quick else 60)
    agents = agents or (2 if quick else 4)
    section = Section("idle")
    with private_redis() as server, private_redis() as rq_server:
        env = bench_env(server.url, server.work)
        r, rq_r = server.client(), rq_server.client()
        sid = new_sweep(
            server.url,
            {"method": "grid", "command": ["true", "${args}"], "parameters": {"x": {"values": [0, 1]}}},
        )
        store = Store(r)
        store.create_next(sid, "bench-holder", lease_s=3600)  # point 0: held here, so never complete
        procs = [agent(env, sid, "--heartbeat", str(heartbeat)) for _ in range(agents)]
        # the agents run point 1 (true) at once, then wait
        workers: list[subprocess.Popen[bytes]] = []
        try:
            if rq_cli_works():
                workers = [rq_worker(rq_server.url, "bench-idle") for _ in range(agents)]
            wait_for(lambda: r.zcard(keys.sweep_agents(sid)) == agents, 60, "the agents")
            if workers:
                wait_for(lambda: len(rq_r.smembers("rq:workers")) == agents, 60, "the rq workers")
            time.sleep(1 if quick else 3)  # past start-up
            meters = [Meter(r, [p.pid for p in procs])]
            if workers:
                meters.append(Meter(rq_r, [w.pid for w in workers]))
            for m in meters:
                m.start()
            time.sleep(seconds)
            results = [m.stop() for m in meters]
        finally:
            stop([*procs, *workers])
    ours = results[0]
    theirs = results[1] if workers else (float("nan"),) * 3
    note = f"idle `rq worker`, {agents} at once" if workers else "rq's CLI did not start: no baseline"
    names = ["Redis commands per second per idle agent", "idle agent RSS, MiB", "idle agent CPU, % of one core"]
    for name, a, b, digits in zip(names, ours, theirs, (3, 1, 2), strict=True):
        figure = f"idle cost: {name} ({seconds:g} s, --heartbeat {heartbeat:g})"
        section.rows.append(Row(figure, num(a, digits), f"{num(b, digits)} ({note})", ratio(a, b)))
    section.detail = markdown(
        [
            [f"sweepd agent (idle, --heartbeat {heartbeat:g})", agents, num(ours[0], 2), num(ours[1]), num(ours[2], 2)],
            ["rq worker (idle)", agents if workers else 0, num(theirs[0], 3), num(theirs[1]), num(theirs[2], 2)],
        ],
        ["idle process", "n", "Redis commands/s each", "RSS MiB", "CPU % of a core"],
    )
    mix = sorted(((v, k) for k, v in meters[0].mix.items() if v > 0), reverse=True)
    section.detail += "\n\nWhat one idle agent makes Redis execute per second (INFO commandstats; the commands its "
    section.detail += "Lua scripts run are counted too, EVALSHA is the script call itself):\n\n"
    section.detail += markdown([[f"`{k.upper()}`", num(v, 2)] for v, k in mix], ["command", "per second"])
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--heartbeat", type=float, default=Options.heartbeat)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    section = measure(
        args.quick, None if args.quick else args.agents, None if args.quick else args.seconds, args.heartbeat
    )
    show(section)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
