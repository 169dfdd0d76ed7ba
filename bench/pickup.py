"""Pickup latency: an idle agent blocked on its sweep's queue; the time from a run being requeued at
the front (``Store.operate(rid, "requeue")``, an operator's requeue: it pushes the wake list idle
agents block on) to its process starting.

The run's program records the wall clock as its first act (bash's ``$EPOCHREALTIME``, which starts
in about a millisecond; a Python program would add its interpreter's start-up) and the latency is
measured from just before the Redis call. The baseline is the same program spawned the same way
(sweepd's ``Child``) from a bare loop: from just before the spawn to the recorded time. The agent
is kept idle but not finished by a second run of the sweep that the benchmark holds itself.

    python bench/pickup.py [--trials 50]

Target: under 10 ms median (W&B's agent polls every 5 s).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
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
    sized_main,
    stop,
    verdict,
    wait_for,
)

from sweepd.queue.store import Store

TARGET_MS = 10.0
#: The program: record the wall clock at once, then exit.
MARK = 'echo "$EPOCHREALTIME" > "$MARKS/$SWEEPD_RUN_ID.$SWEEPD_ATTEMPT"'
PY_MARK = (
    "import os, time; t = time.time(); "
    "open(os.path.join(os.environ['MARKS'], os.environ['SWEEPD_RUN_ID'] + '.' + os.environ['SWEEPD_ATTEMPT']), 'w')"
    ".write(repr(t))"
)


def program() -> list[str]:
    bash = shutil.which("bash")
    return [bash, "-c", MARK] if bash else [sys.executable, "-S", "-c", PY_MARK]


def read_mark(path: Path) -> float:
    return float(path.read_text().strip().replace(",", "."))


def bare_spawns(marks: Path, trials: int, plain: bool = False) -> list[float]:
    """The same program spawned from a bare loop: ms from just before the spawn to its first act.
    With ``plain``, by subprocess.run (no process group, no parent-death signal: no preexec_fn)."""
    from sweepd.agent.daemon.process import Child

    out = []
    for i in range(trials):
        name = "plain" if plain else "bare"
        env = {**os.environ, "MARKS": str(marks), "SWEEPD_RUN_ID": name, "SWEEPD_ATTEMPT": str(i)}
        t0 = time.time()
        if plain:
            subprocess.run(program(), env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        else:
            child = Child(program(), env, lambda lines: None)
            child.wait(None)
            child.end()
            child.close()
        out.append((read_mark(marks / f"{name}.{i}") - t0) * 1000)
        time.sleep(0.02)
    return out


def pickups(url: str, env: dict[str, str], marks: Path, trials: int) -> list[float]:
    r = redis.Redis.from_url(url)
    store = Store(r)
    sid = new_sweep(url, {"method": "grid", "command": program(), "parameters": {"x": {"values": [0, 1]}}})
    store.create_next(sid, "bench-holder", lease_s=3600)  # point 0, held here: the sweep never completes
    idle = agent(env, sid)
    try:
        first = wait_for(lambda: list(marks.glob("*.1")), 60, "the agent's first run")
        rid = first[0].name.split(".")[0]
        wait_for(lambda: store.run(rid).state == "finished", 30, "the first run to finish")
        out = []
        for _ in range(trials):
            time.sleep(random.uniform(0.1, 0.3))  # the agent is back in its blocking wait
            attempt = store.run(rid).attempt + 1
            t0 = time.time()
            store.operate(rid, "requeue")
            mark = marks / f"{rid}.{attempt}"
            wait_for(mark.exists, 30, "the requeued run to start", interval=0.001)
            wait_for(lambda m=mark: m.stat().st_size > 0, 5, "the mark", interval=0.001)
            out.append((read_mark(mark) - t0) * 1000)
            wait_for(lambda a=attempt: store.run(rid).state == "finished" and store.run(rid).attempt == a, 30, "end")
        return out
    finally:
        stop([idle])
        r.close()


def measure(quick: bool = False, trials: int | None = None) -> Section:
    n = trials or (10 if quick else 50)
    section = Section("pickup")
    with private_redis() as server:
        marks = server.work / "marks"
        marks.mkdir()
        env = bench_env(server.url, server.work, MARKS=str(marks))
        ms = pickups(server.url, env, marks, n)
        base = bare_spawns(marks, n)
        plain = bare_spawns(marks, n, plain=True)
    section.rows.append(
        Row(
            f"pickup: requeue at the front to process start, ms p50 / p99 ({n} trials)",
            f"{num(median(ms))} / {num(percentile(ms, 99))}",
            f"{num(median(base))} / {num(percentile(base, 99))} (bare spawn to start)",
            ratio(median(ms), median(base)),
            f"p50 < {TARGET_MS:.0f} ms: {verdict(median(ms) < TARGET_MS)}",
        )
    )
    rows = [
        ["idle agent: requeue to start", n, num(median(ms)), num(percentile(ms, 99)), num(max(ms))],
        [
            "bare loop, as the agent spawns (Child): spawn to start",
            n,
            num(median(base)),
            num(percentile(base, 99)),
            num(max(base)),
        ],
        [
            "bare loop, subprocess.run: spawn to start",
            n,
            num(median(plain)),
            num(percentile(plain, 99)),
            num(max(plain)),
        ],
    ]
    section.detail = markdown(rows, ["pickup", "n", "p50 ms", "p99 ms", "max ms"])
    return section


if __name__ == "__main__":
    sized_main(__doc__, measure, "--trials", 50)
