"""What ``status`` and ``run`` print about a sweep, computed from its records: pure, no Redis."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import bounds
from .records import RunRecord
from .search import grid
from .space import SweepConfig
from .states import STATES, TERMINAL


def metric_value(config: SweepConfig, run: RunRecord) -> float | None:
    """The run's value of the sweep's metric (its summary, as W&B reads it), if it reported a finite
    one: NaN, the infinities and numbers past a float are never a run's value (bounds.py), so never
    the best run, and never given to the search."""
    if config.metric is None:
        return None
    return bounds.finite(run.summary.get(config.metric.name))


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


def _best_row(metric: str, run: RunRecord, value: float) -> dict[str, Any]:
    """A best run as ``status --json`` shows it (``best_run``, ``best_runs``): the names are a contract."""
    return {"id": run.id, "metric": metric, "value": value, "params": run.params}


def best_json(config: SweepConfig, runs: list[RunRecord]) -> dict[str, Any] | None:
    found = best_run(config, runs)
    if found is None or config.metric is None:
        return None
    return _best_row(config.metric.name, *found)


def best_runs(config: SweepConfig, runs: list[RunRecord], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` best runs by the sweep's metric for its goal, best first, shaped as ``best_json``
    (ties keep creation order, so the first is ``best_json``'s run). Empty without a metric."""
    metric = config.metric
    if metric is None:
        return []
    scored = [(run, value) for run in runs if (value := metric_value(config, run)) is not None]
    sign = 1.0 if metric.goal == "minimize" else -1.0
    scored.sort(key=lambda rv: sign * rv[1])
    return [_best_row(metric.name, run, value) for run, value in scored[:n]]


def total_runs(config: SweepConfig) -> int | None:
    """The most runs the search will make: ``run_cap``, a grid's size, or the smaller of the two.
    None when nothing bounds it (random or bayes without ``run_cap``): progress has no end to show."""
    bounds = [config.run_cap] if config.run_cap is not None else []
    if config.method == "grid":
        bounds.append(grid.size(config))
    return min(bounds) if bounds else None


def progress(config: SweepConfig, runs: list[RunRecord], now_ms: int) -> dict[str, Any]:
    """How far the sweep is: terminal runs out of ``total_runs``, and an ETA from the rate runs have
    ended at since work began (the first start; a search run is created at its first start).
    ``now_ms`` is on the clock the run times are on (Redis's). No total or no run ended: no ETA."""
    done = sum(run.state in TERMINAL for run in runs)
    total = total_runs(config)
    fraction = None if total is None else (min(1.0, done / total) if total else 1.0)
    starts = [run.started_at for run in runs if run.started_at is not None]
    starts += [run.created_at for run in runs if run.origin == "search" and run.created_at is not None]
    eta: float | None = None
    if total is not None and done >= total:
        eta = 0.0
    elif total is not None and done and starts and now_ms > min(starts):
        eta = round((total - done) * (now_ms - min(starts)) / done / 1000, 1)
    return {"done": done, "total": total, "fraction": fraction, "eta_seconds": eta}
