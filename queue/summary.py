"""What ``status`` and ``run`` print about a sweep, computed from its records: pure, no Redis."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .records import RunRecord
from .space import SweepConfig
from .states import STATES


def metric_value(config: SweepConfig, run: RunRecord) -> float | None:
    """The run's value of the sweep's metric (its summary, as W&B reads it), if it reported one."""
    if config.metric is None:
        return None
    value = run.summary.get(config.metric.name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def best_run(config: SweepConfig, runs: list[RunRecord]) -> tuple[RunRecord, float] | None:
    """The run with the best metric value for the sweep's goal (finished or not), if any."""
    best: tuple[RunRecord, float] | None = None
    for run in runs:
        value = metric_value(config, run)
        if value is not None and (best is None or config.metric.better(value, best[1])):  # type: ignore[union-attr]
            best = (run, value)
    return best


def counts(runs: list[RunRecord]) -> dict[str, int]:
    """Runs by state, every state present (zeros included) so scripts can rely on the keys."""
    c = Counter(run.state for run in runs)
    return {state: c.get(state, 0) for state in STATES}


def best_json(config: SweepConfig, runs: list[RunRecord]) -> dict[str, Any] | None:
    found = best_run(config, runs)
    if found is None or config.metric is None:
        return None
    run, value = found
    return {"id": run.id, "metric": config.metric.name, "value": value, "params": run.params}
