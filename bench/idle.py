"""Idle cost: Redis commands per second per idle agent, and an idle agent's RSS and CPU.

Idle agents wait on a sweep whose only run another agent holds (so the sweep is not complete).

    python bench/idle.py [--agents 4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import time

import psutil
import redis
from common import agent, create_sweep, private_redis


def total_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--heartbeat", type=float, default=10)
    args = parser.parse_args()
    with private_redis() as (url, work):
        (work / "sleeper.py").write_text("import time\ntime.sleep(3600)\n")
        env = {**os.environ, "SWEEPD_REDIS_URL": url, "SWEEPD_HOME": str(work)}
        sid = create_sweep(env, work, str(work / "sleeper.py"))
        r = redis.Redis.from_url(url)
        holder = agent(env, sid)
        while not r.zcard(f"sweepd:sweep:{sid}:held"):
            time.sleep(0.01)
        idle = [agent(env, sid, "--heartbeat", str(args.heartbeat)) for _ in range(args.agents)]
        time.sleep(3)  # past start-up
        procs = [psutil.Process(p.pid) for p in idle]
        cpu0 = [p.cpu_times() for p in procs]
        calls0, t0 = total_calls(r), time.monotonic()
        time.sleep(args.seconds)
        calls1, t1 = total_calls(r), time.monotonic()
        cpu1 = [p.cpu_times() for p in procs]
        rss = [p.memory_info().rss for p in procs]
        for p in [holder, *idle]:
            p.kill()
            p.wait(10)
    # the holder's heartbeats are in the count too: it is one more agent, busy instead of idle
    per_agent = (calls1 - calls0) / (t1 - t0) / (args.agents + 1)
    cpu = sum((b.user + b.system) - (a.user + a.system) for a, b in zip(cpu0, cpu1, strict=True))
    cpu_pct = 100 * cpu / (t1 - t0) / args.agents
    print(f"| idle cost ({args.agents} idle agents, {args.seconds:g} s, --heartbeat {args.heartbeat:g}) | value |")
    print("|---|---|")
    print(f"| Redis commands per second per agent | {per_agent:.2f} |")
    print(f"| agent RSS (MiB, mean) | {sum(rss) / len(rss) / 2**20:.1f} |")
    print(f"| agent CPU (% of one core, mean) | {cpu_pct:.2f} |")


if __name__ == "__main__":
    main()
