"""Goodput on a fleet without shared storage (bench/checkpoints.py's fourth figure).

4 agents, runs of N seconds of training steps that checkpoint every second (tests/ckpt_trainer.py),
SIGTERM to a random agent every ~15 s (seeded) and a replacement agent on a fresh cache directory
2 s later, until every run finished. Three sweeps in the same run: without preemptions (the ideal),
with an object-store root (the checkpoints travel), and with a local root that dies with its agent
(today's behaviour without shared storage: a resumed run restarts from scratch). Target: at most
1.25x the ideal, and ahead of restart-from-scratch.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from common import ROOT, Row, agent, bench_env, markdown, new_sweep, num, progress, ratio, stop, verdict

from sweepd.queue.store import Store

TRAINER = ROOT / "tests" / "ckpt_trainer.py"
AGENTS = 4


def config(runs: int, seconds: int) -> dict[str, Any]:
    return {
        "method": "grid",
        "program": str(TRAINER),
        "command": [sys.executable, "${program}"],
        "parameters": {
            "i": {"values": list(range(runs))},
            "steps": {"value": seconds},
            "delay": {"value": 1.0},
            "size": {"value": 65536},
            "frozen": {"value": 65536},
        },
    }


def sweep(url: str, work: Path, mode: str, runs: int, seconds: int, every: float, seed: int) -> tuple[float, int]:
    """Seconds until every run finished, and how many agents were preempted."""
    work.mkdir(parents=True)
    (work / "out").mkdir()
    sid = new_sweep(url, config(runs, seconds))
    root = f"s3://bench/fleet-{uuid.uuid4().hex[:6]}" if mode == "travel" else None
    r = redis.Redis.from_url(url)
    store = Store(r)
    rng = random.Random(seed)
    procs: list[subprocess.Popen[bytes]] = []
    made = 0

    def start() -> subprocess.Popen[bytes]:
        nonlocal made
        made += 1
        home = work / f"agent-{made}"  # a fresh machine: its own disk
        local = {"SWEEPD_CHECKPOINT_ROOT": root or str(home / "ckpt")}
        env = bench_env(url, home, OUT_DIR=str(work / "out"), **local)
        proc = agent(env, sid, "--checkpoint-cache", str(home / "cache"), "--checkpoint-sync", "0", "--heartbeat", "2")
        proc.home = home  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    alive = [start() for _ in range(AGENTS)]
    began = time.monotonic()
    next_kill = began + every * rng.uniform(0.8, 1.2)
    pending: list[float] = []
    kills = 0
    try:
        while True:
            states = [run.state for run in store.runs(sid)]
            if len(states) == runs and all(s == "finished" for s in states):
                return time.monotonic() - began, kills
            now = time.monotonic()
            if mode != "ideal" and now >= next_kill:
                victim = alive.pop(rng.randrange(len(alive)))
                victim.send_signal(signal.SIGTERM)
                kills += 1
                pending.append(now + 2.0)
                next_kill = now + every * rng.uniform(0.8, 1.2)
                if mode == "scratch":  # its disk goes with it, once it has handed the run back
                    victim.wait(60)
                    shutil.rmtree(victim.home, ignore_errors=True)  # type: ignore[attr-defined]
            while pending and now >= pending[0]:
                pending.pop(0)
                alive.append(start())
            if time.monotonic() - began > 60 * seconds:
                raise RuntimeError(f"goodput {mode}: the sweep did not finish")
            time.sleep(0.1)
    finally:
        stop(procs)
        r.close()


def measure(url: str, work: Path, quick: bool) -> tuple[list[Row], str]:
    runs, seconds = (4, 8) if quick else (16, 20)
    every = 6.0 if quick else 15.0
    got: dict[str, tuple[float, int]] = {}
    for mode in ("ideal", "travel", "scratch"):
        progress(f"checkpoints: goodput, {mode}")
        got[mode] = sweep(url, work / f"fleet-{mode}", mode, runs, seconds, every, seed=7)
    ideal, travel, scratch = got["ideal"][0], got["travel"][0], got["scratch"][0]
    rows = [
        Row(
            f"goodput: {runs} runs of {seconds} s on {AGENTS} agents, SIGTERM every ~{every:.0f} s, s to finish",
            f"{num(travel)} (object store)",
            f"{num(ideal)} (no preemption); {num(scratch)} (restart from scratch)",
            ratio(travel, ideal) + " of ideal",
            f"<= 1.25x ideal and ahead of scratch: {verdict(travel <= 1.25 * ideal and travel < scratch)}",
        )
    ]
    detail = markdown(
        [[mode, num(got[mode][0], 1), got[mode][1], ratio(got[mode][0], ideal)] for mode in got],
        ["goodput sweep", "seconds to finish", "agents preempted", "over ideal"],
    )
    return rows, detail
