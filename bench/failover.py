"""A failover's cost: SIGKILL of a Sentinel-managed master to the first successful claim on the
new one, beside Sentinel's own ``down-after-milliseconds`` (how long it waits before it calls a
master down), set in the same run: the part of the gap sweepd cannot shorten.

Each trial starts a fresh topology (one master, one replica, three sentinels: the tests' own,
tests/sentinels.py), holds a Store on its ``redis+sentinel://`` URL, kills the master and calls
``create_next`` (a claim of a new run, replicated) every 10 ms until one succeeds.

    python bench/failover.py [--trials 10] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis
from common import ROOT, Row, Section, markdown, num, percentile, ratio, show

from sweepd.queue.config import validate
from sweepd.queue.connections import connect
from sweepd.queue.store import Store

sys.path.insert(0, str(ROOT / "tests"))
from sentinels import Topology  # the tests' topology: one definition of it

DOWN_AFTER_MS = 1000
GRID = {"method": "grid", "program": "p.py", "parameters": {"x": {"values": list(range(100))}}}


def trial(work: Path) -> float:
    """Seconds from the master's SIGKILL to the first claim the new master granted."""
    top = Topology(work, down_after_ms=DOWN_AFTER_MS).start()
    try:
        store = Store(connect(top.url, timeout=1.0))
        sid = store.create_sweep(validate(GRID, source="bench"))
        store.create_next(sid, "bench", 30.0)  # scripts loaded, pool warm
        t0 = time.monotonic()
        top.kill_master(wait=False)
        while True:
            try:
                if not isinstance(store.create_next(sid, "bench", 30.0), str):
                    return time.monotonic() - t0
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            time.sleep(0.01)
    finally:
        top.close()


def measure(quick: bool, trials: int | None = None) -> Section:
    n = trials or (3 if quick else 10)
    gaps: list[float] = []
    for i in range(n):
        with tempfile.TemporaryDirectory(prefix=f"sweepd-bench-{i}-") as tmp:
            gaps.append(trial(Path(tmp)))
    down = DOWN_AFTER_MS / 1000
    rows = [
        Row(
            f"failover: master SIGKILLed to the first claim on the new one, s p50 / max ({n} trials)",
            f"{num(percentile(gaps, 50), 2)} / {num(max(gaps), 2)}",
            f"{num(down, 2)} (Sentinel's down-after-milliseconds)",
            ratio(percentile(gaps, 50), down),
        )
    ]
    detail = markdown([[str(i + 1), num(g, 3)] for i, g in enumerate(gaps)], ["trial", "seconds"])
    return Section("failover", rows, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 10, quick 3")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, args.trials))


if __name__ == "__main__":
    main()
