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
import threading
import time

import redis
from common import Row, Section, agent, bench_env, markdown, new_sweep, num, private_redis, ratio, show, stop, verdict

from sweepd.queue.reads import Reads

SLOTS = 8
TARGET = 4.0
ROUNDS = 2


COMMANDS = {"`true`": ["true"], "`sleep 0.1`": ["sleep", "0.1"]}
#: ``sleep 0.1`` runs for 100 ms: fewer runs give as many seconds of data.
SHARE = {"`true`": 1.0, "`sleep 0.1`": 0.25}


def cpu_jiffies() -> tuple[int, int]:
    """The machine's (busy, total) CPU time so far, over all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


class CpuSampler:
    """/proc/stat every 20 ms, so the machine's busy cores over a window known only afterwards
    (the runs' first start to last end, on the Redis clock) can be read off."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), *cpu_jiffies()))
            self._stop.wait(0.02)

    def busy_cores(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def through_slots(url: str, env: dict[str, str], n: int, slots: int, argv: list[str]) -> tuple[float, float]:
    """N runs of ``argv`` through one agent with ``slots`` slots: runs per second, and how many of
    the machine's cores were busy meanwhile (the agent, Redis, the runs, and anything else)."""
    sid = new_sweep(
        url,
        {
            "method": "random",
            "command": [*argv],
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "run_cap": n,
        },
    )
    with CpuSampler() as cpu:
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
    return n / ((end - start) / 1000), cpu.busy_cores(start / 1000, end / 1000)


def measure(quick: bool = False, runs: int | None = None) -> Section:
    total = runs or (40 if quick else 400)
    section = Section("slots")
    detail = []
    cores = os.cpu_count() or 1
    with private_redis() as server:
        env = bench_env(server.url, server.work)
        for label, argv in COMMANDS.items():
            n = max(16, round(total * SHARE[label]))
            (one, one_busy), (many, many_busy) = (0.0, 0.0), (0.0, 0.0)
            for _ in range(1 if quick else ROUNDS):  # best of: a burst of others' load only slows a round
                one, one_busy = max((one, one_busy), through_slots(server.url, env, n, 1, argv))
                many, many_busy = max((many, many_busy), through_slots(server.url, env, n, SLOTS, argv))
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
            # If every slot's run cost the machine what one slot's does, this is the most any number
            # of slots could give: the cores there are over the cores one slot keeps busy.
            ceiling = cores / one_busy if one_busy > 0 else float("nan")
            detail.append(
                [
                    label,
                    n,
                    num(one),
                    f"{one_busy:.2f}",
                    num(many),
                    f"{many_busy:.2f}",
                    ratio(many, one),
                    f"{ceiling:.2f}x",
                    cores,
                ]
            )
    header = [
        "command",
        "runs",
        "1 slot runs/s",
        "1 slot: busy cores",
        f"{SLOTS} slots runs/s",
        f"{SLOTS} slots: busy cores",
        "ratio",
        "ceiling (cores / busy cores at 1 slot)",
        "cores",
    ]
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
