"""Dispatch: N runs of a trivial command through 1 and 2 agents, against a bare loop that spawns the
same commands the same way (sweepd's own ``Child``: process group, parent-death signal, output
pumps), which is the physical limit on this machine.

For each command (``true``, and a Python one-liner) and each number of agents k, a random sweep with
``run_cap`` N runs the command with ``${args}``; the agents exit when it is complete. Throughput is
N over the time from the first run's start to the last run's end (Redis clock: agent start-up is
not counted). The baseline is k bare loops in parallel spawning the same argv N/k times each.
Each is measured three times, in turns, and the best round kept (noise on a shared machine only slows;
once in --quick).
The added gap per run is each agent's start-to-next-start time less the bare loop's median time
per run (median and p99).

    python bench/dispatch.py [--runs 200] [--agents 1,2]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

import redis
from bare import ARGS, bare
from common import (
    Row,
    Section,
    agent,
    bench_env,
    markdown,
    median,
    new_sweep,
    num,
    percentile,
    private_redis,
    ratio,
    show,
    stop,
    verdict,
)

from sweepd.queue.reads import Reads

PY_ONE_LINER = "import sys; sys.exit(len(sys.argv) < 1)"
COMMANDS: dict[str, list[str]] = {
    "`true`": ["true"],
    "Python one-liner": [sys.executable, "-c", PY_ONE_LINER],
}
ROUNDS = 3
TARGET = 0.6  # `true` through one agent, over the bare loop
#: A Python start takes ~10x longer than `true`: fewer runs give as many seconds of data.
SHARE = {"`true`": 1.0, "Python one-liner": 1 / 3}


def through_agents(url: str, env: dict[str, str], n: int, k: int, argv: list[str]) -> tuple[float, list[float]]:
    """N runs of ``argv`` through k agents: (runs per second, each agent's ms from a start to the next)."""
    sid = new_sweep(
        url,
        {
            "method": "random",
            "command": [*argv, "${args}"],
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "run_cap": n,
        },
    )
    agents = [agent(env, sid) for _ in range(k)]
    try:
        for a in agents:
            a.wait(600)
    finally:
        stop(agents)
    runs = Reads(redis.Redis.from_url(url)).runs(sid)
    bad = [r for r in runs if r.state != "finished"]
    if len(runs) != n or bad:
        raise RuntimeError(f"dispatch: {len(runs)} runs, {len(bad)} not finished (first: {bad[:1]})")
    starts = [r.started_at or 0 for r in runs]
    ends = [r.ended_at or 0 for r in runs]
    by_agent: dict[str, list[int]] = {}
    for r in runs:
        by_agent.setdefault(r.agent_id or "", []).append(r.started_at or 0)
    cycles = [float(b - a) for s in by_agent.values() for a, b in itertools.pairwise(sorted(s))]
    return n / ((max(ends) - min(starts)) / 1000), cycles


def measure(quick: bool = False, runs: int | None = None, agent_counts: tuple[int, ...] = ()) -> Section:
    """``runs`` of ``true`` (a third as many of the Python one-liner) through each number of agents
    (1 and 2; 1 only in --quick)."""
    total = runs or (20 if quick else 200)
    agent_counts = agent_counts or ((1,) if quick else (1, 2))
    section = Section("dispatch")
    detail: list[list[Any]] = []
    with private_redis() as server:
        env = bench_env(server.url, server.work)
        for label, argv in COMMANDS.items():
            full = [*argv, *ARGS]
            n = max(10, round(total * SHARE[label]))
            for k in agent_counts:
                # Best of ROUNDS, taken in turns: a burst of someone else's load on a shared
                # machine only ever slows a round down, and it should not hit one side alone.
                bare_rate, bare_ms, rate, cycles = 0.0, [0.0], 0.0, [0.0]
                for _ in range(1 if quick else ROUNDS):
                    got_bare = bare(n, k, full)
                    if got_bare[0] > bare_rate:
                        bare_rate, bare_ms = got_bare
                    got = through_agents(server.url, env, n, k, argv)
                    if got[0] > rate:
                        rate, cycles = got
                plain_rate = bare(n, k, full, plain=True)[0] if label == "`true`" else float("nan")
                if label == "`true`":
                    section.values[f"true_{k}_agents_per_s"] = rate
                base = median(bare_ms)
                gaps = [c - base for c in cycles]
                who = f"{k} agent{'s' if k > 1 else ''}"
                aimed = label == "`true`" and k == 1
                section.rows.append(
                    Row(
                        f"dispatch, {label}, {who}: runs/s",
                        num(rate),
                        f"{num(bare_rate)} (bare loop{'s' if k > 1 else ''})",
                        ratio(rate, bare_rate),
                        f">= {TARGET}x: {verdict(rate >= TARGET * bare_rate)}" if aimed else "—",
                    )
                )
                section.rows.append(
                    Row(
                        f"dispatch, {label}, {who}: added gap per run, ms p50 / p99",
                        f"{num(median(gaps))} / {num(percentile(gaps, 99))}",
                        f"{num(base)} / {num(percentile(bare_ms, 99))} (bare ms per run)",
                        ratio(median(cycles), base) + " (ms per run)",
                    )
                )
                detail.append(
                    [
                        label,
                        k,
                        n,
                        num(rate),
                        num(bare_rate),
                        num(plain_rate),
                        num(median(cycles)),
                        num(base),
                        num(median(gaps)),
                        num(percentile(gaps, 99)),
                    ]
                )
    header = [
        "command",
        "agents",
        "runs",
        "sweepd runs/s",
        "bare loop (Child) runs/s",
        "subprocess.run loop runs/s",
        "sweepd ms per run p50",
        "bare ms per run p50",
        "added gap ms p50",
        "added gap ms p99",
    ]
    section.detail = markdown(detail, header)
    if not quick:  # where the added gap goes, step by step (gap.py)
        import gap

        section.detail += "\n\nWhere a run of `true` spends its time (`python bench/gap.py`):\n\n" + gap.measure()
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of `true` (a third as many Python)")
    parser.add_argument("--agents", default="1,2", help="numbers of agents (--quick: 1)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    counts = () if args.quick else tuple(int(k) for k in args.agents.split(","))
    show(measure(args.quick, None if args.quick else args.runs, counts))


if __name__ == "__main__":
    main()
