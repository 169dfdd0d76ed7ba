"""The cost of reading a W&B script's metrics: agent CPU while an unmodified wandb script logs 100
rows a second (offline), with sweepd reading them and without.

With: the agent finds the run's transaction log and streams it through wandb's own reader into the
run's history. Without (the baseline, in the same run): the same script with ``WANDB_MODE=disabled``,
so there is nothing to read; the agent still supervises, renews and looks for the file. CPU is the
agent process's plus its reader's (the training process tree is the script's, not the agent's),
over a window of the run's steady state; the reader's start-up (once per attempt) is reported apart.

    python bench/wandb_read.py [--seconds 20] [--rate 100]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import redis
from common import (
    Row,
    Section,
    agent,
    bench_env,
    has,
    markdown,
    new_sweep,
    num,
    private_redis,
    ratio,
    show,
    stop,
    wait_for,
)

from sweepd.queue import keys

TARGET = 5.0  # % of one core the reading may add

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import wandb
    run = wandb.init()
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        wandb.log({"loss": 1.0 / (i + 1), "acc": i % 7})
        i += 1
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
    """
)


def readers(agent_proc: psutil.Process) -> list[psutil.Process]:
    """The agent's reader processes (``wandb leet inspect``) and theirs."""
    out: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        for child in agent_proc.children():
            with contextlib.suppress(psutil.Error):
                if "leet" in child.cmdline():
                    out += [child, *child.children(recursive=True)]
    return out


def cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def one(work: Path, url: str, rate: float, seconds: float, read: bool) -> tuple[float, float, int]:
    """(agent + reader CPU in % of one core over the window, reader start-up CPU s, rows stored)."""
    work.mkdir(parents=True)
    program = work / "bench_wandb.py"
    program.write_text(SCRIPT)
    config = {
        "method": "grid",
        "program": str(program),
        "command": [sys.executable, "${program}", str(rate), str(seconds)],
        "parameters": {"x": {"value": 1}},
    }
    sid = new_sweep(url, config)
    runs = work / ("read" if read else "unread")
    runs.mkdir()
    extra = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(runs)}
    if not read:
        extra["WANDB_MODE"] = "disabled"  # the same calls, nothing written: nothing to read
    env = bench_env(url, work / "home", **extra)
    r = redis.Redis.from_url(url)
    proc = agent(env, sid)
    try:
        me = psutil.Process(proc.pid)
        rid = wait_for(lambda: (r.zrange(keys.sweep_runs(sid), 0, 0) or [b""])[0].decode(), 60, "the run")
        wait_for(lambda: r.hget(keys.run(rid), "state") == b"running", 60, "the run to start")
        if read:
            wait_for(lambda: r.llen(keys.run_history(rid)) > 0, 60, "the first rows")
        else:
            time.sleep(3)  # as long as wandb takes to start
        startup = sum(cpu(readers(me)).values())
        time.sleep(1)
        window = max(2.0, seconds - 8)
        procs = [me, *readers(me)]
        before, t0 = cpu(procs), time.monotonic()
        time.sleep(window)
        after, t1 = cpu(procs), time.monotonic()
        used = sum(after[pid] - before[pid] for pid in after if pid in before)
        wait_for(lambda: r.hget(keys.run(rid), "state") == b"finished", seconds + 60, "the run to finish")
        rows = int(r.llen(keys.run_history(rid)))
    finally:
        stop([proc])
        r.close()
    return 100 * used / (t1 - t0), startup, rows


def measure(quick: bool = False, seconds: float | None = None, rate: float = 100.0) -> Section:
    section = Section("wandb_read")
    if not has("wandb") and not shutil.which("wandb"):
        section.rows.append(Row("W&B script metrics: skipped", "wandb is not installed"))
        return section
    seconds = seconds or (12 if quick else 30)
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="sweepd-bench-wandb-") as tmp:
        base, _, base_rows = one(Path(tmp) / "a", server.url, rate, seconds, read=False)
        ours, startup, rows = one(Path(tmp) / "b", server.url, rate, seconds, read=True)
    added = ours - base
    figure = f"reading a W&B script's metrics ({rate:g} rows/s, offline): agent CPU, % of one core"
    verdict = "met" if added <= TARGET else "NOT met"
    section.rows.append(
        Row(
            figure,
            num(ours, 2),
            f"{num(base, 2)} (the same script, wandb disabled: nothing read)",
            ratio(ours, base),
            f"adds ≤ {TARGET:g} % of a core: +{num(added, 2)}, {verdict}",
        )
    )
    section.detail = markdown(
        [
            ["read (wandb's reader streams the run into sweepd)", num(ours, 2), num(startup, 2), rows],
            ["not read (the same script, WANDB_MODE=disabled)", num(base, 2), "—", base_rows],
        ],
        ["agent", "CPU % of a core (steady state)", "reader start-up, CPU s", "rows in sweepd's history"],
    )
    section.detail += (
        f"\n\n{seconds:g} s runs at {rate:g} rows a second; the CPU window leaves out the first and last seconds. "
        "The reader's start-up (a `wandb` CLI start, once per attempt) is outside the window."
    )
    section.values["added"] = added
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, None if args.quick else args.seconds, args.rate))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
