"""Run every benchmark and print one markdown table: figure, sweepd, baseline, ratio, target.

Each figure stands next to a baseline measured in the same run (a bare loop, a bare supervisor, the
documented bound, rq, Optuna), because absolute times on a shared machine drift and ratios much
less. The table, the machine it ran on and each script's detailed tables are also written to
``bench/results.md`` (or ``--out``); a ``--quick`` run's to ``bench/results/quick.md`` (not kept in
git), so it never overwrites the full run's figures.

    python bench/run.py            # everything, under ten minutes on 2 cores
    python bench/run.py --quick    # fewer trials and smaller N, about a minute
    python bench/run.py --only dispatch,pickup

Each script also runs on its own (``python bench/<name>.py --help``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import baselines
import checkpoints
import dispatch
import failover
import handoff
import idle
import pickup
import pools
import recovery
import scale
import search
import slots
import ui
import wandb_read
import watchdog
from common import BENCH, Row, Section, git_revision, machine, private_redis, progress, redis_version, table

ORDER = (
    "dispatch",
    "slots",
    "pickup",
    "handoff",
    "recovery",
    "idle",
    "pools",
    "scale",
    "search",
    "watchdog",
    "failover",
    "wandb_read",
    "ui",
    "checkpoints",
    "baselines",
)
COMMANDS = {
    "dispatch": "python bench/dispatch.py",
    "slots": "python bench/slots.py",
    "pickup": "python bench/pickup.py",
    "handoff": "python bench/handoff.py",
    "recovery": "python bench/recovery.py",
    "idle": "python bench/idle.py",
    "pools": "python bench/pools.py",
    "scale": "python bench/scale.py",
    "search": "python bench/search.py",
    "watchdog": "python bench/watchdog.py",
    "failover": "python bench/failover.py",
    "wandb_read": "python bench/wandb_read.py",
    "ui": "python bench/ui.py",
    "checkpoints": "python bench/checkpoints.py",
    "baselines": "python bench/baselines.py",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and smaller N: about a minute")
    parser.add_argument("--only", help=f"a comma-separated subset of {','.join(ORDER)}")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the tables (default: bench/results.md; --quick: bench/results/quick.md)",
    )
    args = parser.parse_args()
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    quick = args.quick
    out_path: Path = args.out or (BENCH / "results" / "quick.md" if quick else BENCH / "results.md")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with private_redis() as server:
        server_name = redis_version(server.url)
    where = machine(server_name)
    started = time.monotonic()
    done: dict[str, Section] = {}
    runners: dict[str, Callable[[], Section]] = {
        "dispatch": lambda: dispatch.measure(quick),
        "slots": lambda: slots.measure(quick),
        "pickup": lambda: pickup.measure(quick),
        "handoff": lambda: handoff.measure(quick),
        "recovery": lambda: recovery.measure(quick),
        "idle": lambda: idle.measure(quick),
        "pools": lambda: pools.measure(quick),
        "scale": lambda: scale.measure(quick),
        "search": lambda: search.measure(quick),
        "watchdog": lambda: watchdog.measure(quick),
        "failover": lambda: failover.measure(quick),
        "wandb_read": lambda: wandb_read.measure(quick),
        "ui": lambda: ui.measure(quick),
        "checkpoints": lambda: checkpoints.measure(quick),
        "baselines": lambda: baselines.measure(
            quick, handoff_ms=done["handoff"].values.get("p50_ms") if "handoff" in done else None
        ),
    }
    for name in names:
        progress(f"{name}: running ({time.monotonic() - started:.0f} s so far)")
        t0 = time.monotonic()
        try:
            section = runners[name]()
        except Exception as exc:  # one failed benchmark must not lose the others' figures
            section = Section(name, [Row(f"{name}: failed", f"{type(exc).__name__}: {exc}")])
        section.seconds = time.monotonic() - t0
        done[name] = section
        progress(f"{name}: {section.seconds:.0f} s")
    total = time.monotonic() - started
    rows = [row for name in names for row in done[name].rows]
    mode = "python bench/run.py --quick" if quick else "python bench/run.py"
    head = (
        f"Measured with `{mode}` in {total / 60:.1f} min on: {where}. sweepd {git_revision()}.\n"
        "Ratio: sweepd's figure over the baseline's, both measured in this run."
    )
    out = [head, "", table(rows), "", "## Details", ""]
    for name in names:
        section = done[name]
        out += [f"### {name} (`{COMMANDS[name]}`, {section.seconds:.0f} s)", "", section.detail, ""]
    text = "\n".join(out).rstrip() + "\n"
    out_path.write_text("# sweepd benchmarks\n\n" + text)
    print(head)
    print()
    print(table(rows))
    progress(f"all done in {total:.0f} s; tables written to {out_path}")
    sys.exit(0)


if __name__ == "__main__":
    main()
