"""Dead-agent recovery: from SIGKILL of a whole agent tree (the machine vanished) to the run's next
start on another agent, for the default heartbeat and ``--heartbeat 1``, next to the bound in the
docs: lease (3 heartbeats) + one reap interval (1 heartbeat) = 4 heartbeats, plus the pickup.

    python bench/recovery.py [--trials 20] [--parallel 5] [--heartbeats 10,1]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import psutil
from common import agent, create_sweep, median, private_redis

SLEEPER = """
import os, time
name = os.environ["SWEEPD_RUN_ID"] + "." + os.environ["SWEEPD_ATTEMPT"]
with open(os.path.join(os.environ["MARKS"], name), "w") as fh:
    fh.write(repr(time.time()))
time.sleep(3600)
"""


def kill_tree(pid: int) -> None:
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(recursive=True)]:
        p.send_signal(signal.SIGKILL)


def round_of(env: dict[str, str], work: Path, n: int, heartbeat: float) -> list[float]:
    """n sweeps at once, each one run held by a victim agent with an idle rescuer beside it."""
    marks = Path(env["MARKS"])
    hb = ["--heartbeat", str(heartbeat)]
    sweeps = [create_sweep(env, work, str(work / "sleeper.py")) for _ in range(n)]
    victims = [agent(env, sid, *hb) for sid in sweeps]
    while len(list(marks.glob("*.1"))) < n:
        time.sleep(0.01)
    rescuers = [agent(env, sid, *hb) for sid in sweeps]
    time.sleep(1.0)  # let the rescuers settle into their idle loop
    before = set(marks.glob("*.2"))
    killed_at = time.time()
    for v in victims:
        kill_tree(v.pid)
    deadline = time.monotonic() + 10 * heartbeat + 30
    while len(set(marks.glob("*.2")) - before) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    starts = [float(p.read_text()) for p in set(marks.glob("*.2")) - before]
    for p in [*victims, *rescuers]:
        if p.poll() is None:
            kill_tree(p.pid)
        p.wait(10)
    for p in marks.iterdir():
        p.unlink()
    return [s - killed_at for s in starts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--heartbeats", default="10,1")
    args = parser.parse_args()
    rows = []
    with private_redis() as (url, work):
        (work / "sleeper.py").write_text(SLEEPER)
        (work / "marks").mkdir()
        env = {**os.environ, "SWEEPD_REDIS_URL": url, "SWEEPD_HOME": str(work), "MARKS": str(work / "marks")}
        for heartbeat in (float(h) for h in args.heartbeats.split(",")):
            times: list[float] = []
            while len(times) < args.trials:
                times += round_of(env, work, min(args.parallel, args.trials - len(times)), heartbeat)
            rows.append((heartbeat, len(times), median(times), max(times), 4 * heartbeat))
    print(f"| dead-agent recovery ({args.trials} trials each) | n | p50 s | max s | bound: 4 x heartbeat |")
    print("|---|---|---|---|---|")
    for heartbeat, n, p50, worst, bound in rows:
        print(f"| --heartbeat {heartbeat:g} | {n} | {p50:.2f} | {worst:.2f} | {bound:.0f} s + pickup |")


if __name__ == "__main__":
    main()
