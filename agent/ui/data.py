"""What the dashboard's page is sent, shaped from sweepd's read models: pure, no Redis, no server.

A sweep's page gets one snapshot: the status (``status --json``'s fields, views.status_json), the
parameter columns, and the runs as compact rows. The runs go as rows of plain values, not as
``runs --json`` records, because a 10,000-run sweep's page must load in well under two seconds:
what the table, the parallel-coordinates plot and the metric chart need, and nothing else.
"""

from __future__ import annotations

import math
from typing import Any

from sweepd.queue import bounds
from sweepd.queue.records import RunRecord
from sweepd.queue.space import SweepConfig
from sweepd.queue.summary import metric_value

from ..cli.parts.table import columns, flatten

#: The fields of each run row, in order (the page reads rows by these names).
RUN_FIELDS = (
    "id",
    "state",
    "attempt",
    "requeues",
    "host",
    "agent_id",
    "value",
    "created_at",
    "ended_at",
    "params",
    "rung",  # ASHA's rung (null without asha), after params: the page reads rows by these names
)
#: The status fields a sweep's page shows; the rest of ``status --json`` (its run lists) the rows carry.
STATUS_FIELDS = (
    "id",
    "name",
    "method",
    "state",
    "complete",
    "runs",
    "run_cap",
    "counts",
    "queue_depth",
    "queue_head",
    "queue_next",
    "agents_alive",
    "agents",
    "metric",
    "best_run",
    "recent_events",
    "created_at",
    "progress",
    "held_runs",
    "observed_at",
    "lineage",
)


def host_of(agent_id: str | None, agents: dict[str, dict[str, Any]]) -> str | None:
    """The machine a run ran on: its live agent's ``host``, else the host part of an agent id
    (``host-pid-hex``, ids.host_part); None for a run nobody claimed."""
    if not agent_id:
        return None
    live = agents.get(agent_id)
    if live is not None and live.get("host"):
        return str(live["host"])
    parts = agent_id.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() else agent_id


def plain(value: Any) -> Any:
    """A parameter value as the page compares it: numbers and text as they are, a non-finite
    number as None (JSON has no NaN), anything else (a list, a mapping) as its text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value if bounds.finite(value) is not None else None
    return str(value)


def param_names(config: SweepConfig, runs: list[RunRecord]) -> list[str]:
    """The parameter columns (the config's order, then any other a run has): the runs table's rule."""
    return [c.name for c in columns(config, runs) if c.kind == "param"]


def run_rows(
    config: SweepConfig, runs: list[RunRecord], names: list[str], agents: dict[str, dict[str, Any]]
) -> list[list[Any]]:
    """One row per run (``RUN_FIELDS``), creation order; ``params`` is a list in ``names``' order."""
    rows: list[list[Any]] = []
    for run in runs:
        flat = flatten(run.params)
        value = metric_value(config, run)
        rows.append(
            [
                run.id,
                run.state,
                run.attempt,
                run.requeues,
                host_of(run.agent_id, agents),
                run.agent_id,
                value if value is None or math.isfinite(value) else None,
                run.created_at,
                run.ended_at,
                [plain(flat.get(name)) for name in names],
                run.rung,
            ]
        )
    return rows


def best_so_far(values: list[float | None], goal: str) -> list[float | None]:
    """The best value seen up to each run (creation order), for the metric chart's best-so-far line."""
    out: list[float | None] = []
    best: float | None = None
    for v in values:
        if v is not None and (best is None or (v < best if goal == "minimize" else v > best)):
            best = v
        out.append(best)
    return out


def sweep_snapshot(status: dict[str, Any], config: SweepConfig, runs: list[RunRecord]) -> dict[str, Any]:
    """Everything a sweep's page draws: its status, the parameter names and the run rows."""
    agents = {str(a["id"]): a for a in status.get("agents", [])}
    names = param_names(config, runs)
    rows = run_rows(config, runs, names, agents)
    goal = config.metric.goal if config.metric else "minimize"
    return {
        "status": {k: status.get(k) for k in STATUS_FIELDS},
        "params": names,
        "log_params": [p.name for p in config.params if p.distribution and "log" in p.distribution],
        "fields": list(RUN_FIELDS),
        "runs": rows,
        "best_so_far": best_so_far([row[6] for row in rows], goal),
    }


def sweep_list_row(status: dict[str, Any]) -> dict[str, Any]:
    """One line of the sweep list: state, counts by state, best run, agents alive."""
    return {
        k: status.get(k)
        for k in ("id", "name", "method", "state", "runs", "counts", "best_run", "agents_alive", "metric", "created_at")
    }


def history_json(rid: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's logged rows for its curves: the numeric metric names and the rows themselves, each
    non-finite number as None (the chart leaves a gap there)."""
    metrics: dict[str, None] = {}
    clean: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = value if bounds.finite(value) is not None else None
                if key != "_step":
                    metrics[key] = None
        clean.append(out)
    return {"run_id": rid, "metrics": sorted(metrics, key=lambda k: (k.startswith("_"), k)), "rows": clean}
