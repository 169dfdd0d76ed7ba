"""Preemption handoff latency: from SIGTERM to the agent until the run is at the head of its queue.

For a training process that exits at once on SIGTERM, over N trials (one agent per trial: a
preempted agent exits), next to the same figure for a notice from a local AWS metadata stand-in,
measured from the moment the stand-in served the notice (so the poll interval is not counted).

    python bench/handoff.py [--trials 50]

Prints a markdown table; needs only what the tests need (a redis-server binary sweepd can find).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from standins import AwsImds  # noqa: E402
from support import free_port, start_redis  # noqa: E402
from sweepd.queue import keys  # noqa: E402

SLEEPER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: os._exit(1))
open(os.environ["READY_FILE"], "w").close()
time.sleep(600)
"""


def trial(r: redis.Redis, sid: str, env: dict[str, str], ready: Path, extra: list[str], aws: AwsImds | None) -> float:
    """One handoff: start an agent, wait for its run to start, preempt it, time the requeue."""
    ready.unlink(missing_ok=True)
    agent = subprocess.Popen(
        [sys.executable, "-m", "sweepd.agent", "agent", sid, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not start")
        time.sleep(0.005)
    (rid,) = r.zrange(keys.sweep_runs(sid), 0, -1)
    head = keys.rq_queue(sid)
    if aws is None:
        t0 = time.monotonic()
        agent.send_signal(signal.SIGTERM)
    else:
        served = len(aws.seen("/latest/meta-data/spot/instance-action", 200))
        aws.set_notice("terminate")
    while r.lindex(head, 0) != rid:
        pass
    t1 = time.monotonic()
    if aws is not None:
        t0 = aws.seen("/latest/meta-data/spot/instance-action", 200)[served].at
        aws.clear_notice()
    agent.wait(60)
    return t1 - t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        server = start_redis(work, port)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            r = redis.Redis.from_url(url)
            (work / "sleeper.py").write_text(SLEEPER)
            ready = work / "ready"
            config = work / "sweep.yaml"
            config.write_text(f"method: grid\nprogram: {work / 'sleeper.py'}\nparameters:\n  x: {{value: 1}}\n")
            env = {**os.environ, "SWEEPD_REDIS_URL": url, "READY_FILE": str(ready), "SWEEPD_HOME": str(work)}
            rows = []
            for label, extra, use_aws in (
                ("SIGTERM to the agent", ["--notices", "none"], False),
                ("AWS notice (from the stand-in's answer)", ["--notices", "aws", "--notice-interval", "0.5"], True),
            ):
                sid = subprocess.run(
                    [sys.executable, "-m", "sweepd.agent", "sweep", "create", str(config), "--quiet"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                with AwsImds() as aws:
                    trial_env = {**env, "SWEEPD_AWS_METADATA_URL": aws.url}
                    times = [
                        trial(r, sid, trial_env, ready, extra, aws if use_aws else None) for _ in range(args.trials)
                    ]
                ms = [t * 1000 for t in times]
                rows.append((label, len(ms), statistics.median(ms), percentile(ms, 99), max(ms)))
        finally:
            server.terminate()
            server.wait(10)
    print(f"| handoff ({args.trials} trials each) | n | p50 ms | p99 ms | max ms | target |")
    print("|---|---|---|---|---|---|")
    for label, n, p50, p99, worst in rows:
        target = "p99 < 50 ms" if label.startswith("SIGTERM") else ""
        print(f"| {label} | {n} | {p50:.1f} | {p99:.1f} | {worst:.1f} | {target} |")


if __name__ == "__main__":
    main()
