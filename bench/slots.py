"""GPU slots: N runs of ``true`` through one agent holding 8 slots (``--gpus 0,...,7``) against the
same agent with one slot (``--gpus 0``), measured in the same run, in turns, best of two rounds
(once in --quick). Throughput is N over the time from the first run's start to the last run's end
(Redis clock: agent start-up is not counted). Target: 8 slots at least 4x one slot's runs/s.

``true`` lasts a few milliseconds: one slot already keeps the agent's interpreter (one core: the
slots are its threads) busy with claiming, spawning and recording, so what 8 slots add is bounded
by that core and the machine's (dispatch.py's bare loops show the machine's limit). The same figure
for runs of ``sleep 0.1`` shows the slots' runs overlapping, as a GPU sweep's do.

    python bench/slots.py [--runs 400]
"""

from __future__ import annotations

import argparse
import os

import redis
from common import Row, Section, agent, bench_env, markdown, new_sweep, num, private_redis, ratio, show, stop, verdict

from sweepd.queue.reads import Reads

SLOTS = 8
TARGET = 4.0
ROUNDS = 2


COMMANDS = {"`true`": ["true"], "`sleep 0.1`": ["sleep", "0.1"]}
#: ``sleep 0.1`` runs for 100 ms: fewer runs give as many seconds of data.
SHARE = {"`true`": 1.0, "`sleep 0.1`": 0.25}


def through_slots(url: str, env: dict[str, str], n: int, slots: int, argv: list[str]) -> float:
    """N runs of ``argv`` through one agent with ``slots`` slots: runs per second."""
    sid = new_sweep(
        url,
        {
            "method": "random",
            "command": [*argv],
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "run_cap": n,
        },
    )
    proc = agent(env, sid, "--gpus", ",".join(str(i) for i in range(slots)))
    try:
        proc.wait(600)
    finally:
        stop([proc])
    runs = Reads(redis.Redis.from_url(url)).runs(sid)
    bad = [r for r in runs if r.state != "finished"]
    if len(runs) != n or bad:
        raise RuntimeError(f"slots: {len(runs)} runs, {len(bad)} not finished (first: {bad[:1]})")
    start = min(r.started_at or 0 for r in runs)
    end = max(r.ended_at or 0 for r in runs)
    return n / ((end - start) / 1000)


def measure(quick: bool = False, runs: int | None = None) -> Section:
    total = runs or (40 if quick else 400)
    section = Section("slots")
    detail = []
    cores = os.cpu_count() or 1
    with private_redis() as server:
        env = bench_env(server.url, server.work)
        for label, argv in COMMANDS.items():
            n = max(16, round(total * SHARE[label]))
            one, many = 0.0, 0.0
            for _ in range(1 if quick else ROUNDS):  # best of: a burst of others' load only slows a round
                one = max(one, through_slots(server.url, env, n, 1, argv))
                many = max(many, through_slots(server.url, env, n, SLOTS, argv))
            section.values[f"{argv[0]}_one_slot_per_s"], section.values[f"{argv[0]}_slots_per_s"] = one, many
            section.rows.append(
                Row(
                    f"GPU slots, {label}: one agent with {SLOTS} slots, runs/s",
                    num(many),
                    f"{num(one)} (the same agent, 1 slot)",
                    ratio(many, one),
                    f">= {TARGET:.0f}x: {verdict(many >= TARGET * one)}",
                )
            )
            detail.append([label, n, num(one), num(many), ratio(many, one), cores])
    header = ["command", "runs", "1 slot runs/s", f"{SLOTS} slots runs/s", "ratio", "cores"]
    section.detail = markdown(detail, header)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=400, help="runs of `true` per measurement (a quarter as many sleeps)"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, args.runs))


if __name__ == "__main__":
    main()
