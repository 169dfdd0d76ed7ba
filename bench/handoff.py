"""Preemption handoff latency: from SIGTERM to the agent until the run is at the head of its queue.

For a training process that exits at once on SIGTERM, over N trials (one agent per trial: a
preempted agent exits). The baseline is a bare supervisor measured the same way: a process that
starts the same program the same way (sweepd's ``Child``), and on SIGTERM only forwards the signal,
waits for the exit and LPUSHes the run id, one Redis write: the least any supervisor must do.
With ``--aws``, the same figure for a notice from a local AWS metadata stand-in (from the tests),
measured from the moment the stand-in served the notice (so the poll interval is not counted).

    python bench/handoff.py [--trials 50] [--aws]

Target: p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import redis
from common import (
    ROOT,
    Row,
    Section,
    bench_env,
    markdown,
    median,
    new_sweep,
    num,
    one_point,
    percentile,
    private_redis,
    ratio,
    show,
    stop,
    verdict,
    wait_for,
)

from sweepd.queue import keys

TARGET_MS = 50.0
SLEEPER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: os._exit(1))
open(os.environ["READY_FILE"], "w").close()
time.sleep(600)
"""


def head_is(r: redis.Redis, key: str, rid: bytes, timeout: float = 30) -> float:
    """Poll (every 0.2 ms, without spinning a core) until ``rid`` heads the list; when it did."""
    deadline = time.monotonic() + timeout
    while r.lindex(key, 0) != rid:
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not come back to the head of its queue")
        time.sleep(0.0002)
    return time.monotonic()


def agent_trial(r: redis.Redis, sid: str, env: dict[str, str], ready: Path, extra: list[str], aws: Any) -> float:
    """One handoff: start an agent, wait for its run to start, preempt it, time the requeue (s)."""
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweepd.agent", "agent", sid, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(ready.exists, 60, "the run to start")
        (rid,) = cast("list[bytes]", r.zrange(keys.sweep_runs(sid), 0, -1))
        time.sleep(0.05)  # the agent is back in its supervision loop
        if aws is None:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
        else:
            served = len(aws.seen("/latest/meta-data/spot/instance-action", 200))
            aws.set_notice("terminate")
        t1 = head_is(r, keys.rq_queue(sid), rid)
        if aws is not None:
            t0 = aws.seen("/latest/meta-data/spot/instance-action", 200)[served].at
            aws.clear_notice()
        proc.wait(60)
        return t1 - t0
    finally:
        stop([proc])


def bare_supervisor(url: str, key: str, rid: str, argv: list[str]) -> None:
    """The baseline's process: start the program, and on SIGTERM forward it, wait, LPUSH the id."""
    from sweepd.agent.daemon.process import Child

    r = redis.Redis.from_url(url)
    r.ping()  # connected before the clock starts, as an agent's client is
    wake_r, wake_w = os.pipe()  # the self-pipe, as the agent sleeps on
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGTERM, lambda *a: None)
    signal.set_wakeup_fd(wake_w)
    child = Child(argv, dict(os.environ), lambda lines: None)
    os.read(wake_r, 1)  # until a signal comes
    child.signal(signal.SIGTERM)
    child.wait(None)
    r.lpush(key, rid)
    child.end()  # as the attempt does: leftovers killed, pumps stopped
    child.close()


def bare_trial(r: redis.Redis, url: str, env: dict[str, str], ready: Path, sleeper: Path, n: int) -> float:
    ready.unlink(missing_ok=True)
    key, rid = f"bench:bare:{n}", f"bare{n}"
    cmd = [sys.executable, __file__, "--bare-supervisor", url, key, rid, sys.executable, str(sleeper)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_for(ready.exists, 60, "the bare supervisor's program to start")
        time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        t1 = head_is(r, key, rid.encode())
        proc.wait(60)
        return t1 - t0
    finally:
        stop([proc])


def measure(quick: bool = False, trials: int | None = None, aws: bool = False) -> Section:
    n = trials or (4 if quick else 50)
    section = Section("handoff")
    rows: list[tuple[str, list[float]]] = []
    with private_redis() as server:
        r = server.client()
        work = server.work
        (work / "sleeper.py").write_text(SLEEPER)
        ready = work / "ready"
        env = bench_env(server.url, work, READY_FILE=str(ready))
        kinds: list[tuple[str, list[str], bool]] = [("SIGTERM to the agent", ["--notices", "none"], False)]
        if aws:
            aws_flags = ["--notices", "aws", "--notice-interval", "0.5"]
            kinds.append(("AWS notice (from the stand-in's answer)", aws_flags, True))
        for label, extra, use_aws in kinds:
            sid = new_sweep(server.url, one_point(str(work / "sleeper.py")))
            if use_aws:
                sys.path.insert(0, str(ROOT / "tests"))
                from standins import AwsImds

                with AwsImds() as imds:
                    trial_env = {**env, "SWEEPD_AWS_METADATA_URL": imds.url}
                    times = [agent_trial(r, sid, trial_env, ready, extra, imds) for _ in range(n)]
            else:
                times = [agent_trial(r, sid, env, ready, extra, None) for _ in range(n)]
            rows.append((label, [t * 1000 for t in times]))
        base = [bare_trial(r, server.url, env, ready, work / "sleeper.py", i) * 1000 for i in range(n)]
        rows.append(("bare supervisor: forward SIGTERM, wait, LPUSH", base))
    ms = rows[0][1]
    section.values["p50_ms"], section.values["p99_ms"] = median(ms), percentile(ms, 99)
    section.rows.append(
        Row(
            f"preemption handoff: SIGTERM to run at the head of the queue, ms p50 / p99 ({n} trials)",
            f"{num(median(ms))} / {num(percentile(ms, 99))}",
            f"{num(median(base))} / {num(percentile(base, 99))} (bare supervisor)",
            ratio(percentile(ms, 99), percentile(base, 99)) + " (p99)",
            f"p99 < {TARGET_MS:.0f} ms: {verdict(percentile(ms, 99) < TARGET_MS)}",
        )
    )
    section.detail = markdown(
        [
            [label, len(v), num(median(v)), num(percentile(v, 99)), num(max(v)), "p99 < 50 ms" if i == 0 else ""]
            for i, (label, v) in enumerate(rows)
        ],
        ["handoff", "n", "p50 ms", "p99 ms", "max ms", "target"],
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--aws", action="store_true", help="also time a notice from an AWS metadata stand-in")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bare-supervisor", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_supervisor:
        url, key, rid, *argv = args.bare_supervisor
        bare_supervisor(url, key, rid, argv)
        return
    show(measure(args.quick, None if args.quick else args.trials, args.aws))


if __name__ == "__main__":
    main()
