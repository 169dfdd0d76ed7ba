"""A failover's cost: SIGKILL of a Sentinel-managed master to the first successful claim on the
new one, beside Sentinel's own ``down-after-milliseconds`` (how long it waits before it calls a
master down), set in the same run: the part of the gap sweepd cannot shorten. Measured at 1 s and at
docs/deploy-kubernetes.md's 5 s; then what a failover costs a fleet's runs (failover_runs.py).

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

import failover_runs
import redis
from common import ROOT, Row, Section, markdown, num, percentile, ratio, show

from sweepd.queue.config import validate
from sweepd.queue.connections import connect
from sweepd.queue.sentinel import FAILOVER_EXTRA_S
from sweepd.queue.store import Store

sys.path.insert(0, str(ROOT / "tests"))
from sentinels import Topology  # the tests' topology: one definition of it

DOWN_AFTER_MS = 1000
#: docs/deploy-kubernetes.md's Sentinel settings for the default heartbeat (10 s): measured here.
RECIPE_DOWN_AFTER_MS, RECIPE_FAILOVER_TIMEOUT_MS = 5000, 10000
GRID = {"method": "grid", "program": "p.py", "parameters": {"x": {"values": list(range(100))}}}


def trial(work: Path, down_after_ms: int = DOWN_AFTER_MS, failover_timeout_ms: int | None = None) -> float:
    """Seconds from the master's SIGKILL to the first claim the new master granted."""
    top = Topology(work, down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms).start()
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


def measure(quick: bool, trials: int | None = None, *, runs: bool = True) -> Section:
    """The gap at the tests' down-after (1 s) and at docs/deploy-kubernetes.md's (5 s, failover-timeout
    10 s), against the heartbeat it must fit in; then, with ``runs``, failover_runs.py's fleet."""
    n = trials or (3 if quick else 10)
    rows, details = [], []
    for down_ms, timeout_ms in ((DOWN_AFTER_MS, None), (RECIPE_DOWN_AFTER_MS, RECIPE_FAILOVER_TIMEOUT_MS)):
        gaps: list[float] = []
        for i in range(n):
            with tempfile.TemporaryDirectory(prefix=f"sweepd-bench-{i}-") as tmp:
                gaps.append(trial(Path(tmp), down_ms, timeout_ms))
        down = down_ms / 1000
        rows.append(
            Row(
                f"failover at down-after {down_ms} ms: master SIGKILLed to the first claim on the new one, "
                f"s p50 / max ({n} trials)",
                f"{num(percentile(gaps, 50), 2)} / {num(max(gaps), 2)}",
                f"{num(down, 2)} (Sentinel's down-after-milliseconds)",
                ratio(percentile(gaps, 50), down),
                f"max - down-after <= {FAILOVER_EXTRA_S} s (sentinel.FAILOVER_EXTRA_S): "
                + ("met" if max(gaps) - down <= FAILOVER_EXTRA_S else "missed"),
            )
        )
        details.append([str(down_ms), *(num(g, 3) for g in gaps)])
    detail = markdown(details, ["down-after ms", *(f"trial {i + 1}" for i in range(n))])
    section = Section("failover", rows, detail)
    if runs:
        fleet = failover_runs.measure(quick)
        section.rows += fleet.rows
        section.detail += "\n\n" + fleet.detail
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 10, quick 3")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-runs", action="store_true", help="only the gap, not the fleet (failover_runs.py)")
    args = parser.parse_args()
    show(measure(args.quick, args.trials, runs=not args.no_runs))


if __name__ == "__main__":
    main()
