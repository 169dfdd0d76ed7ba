"""Read models: what ``status`` (and its ``--watch``) and ``agents`` show, assembled from plain reads.

They live here, beside the reads they are made of, so that the command line and any other reader
(a dashboard) shape a sweep's status the same way and none of them reaches Redis itself. The JSON
fields are a contract for scripts: add, never rename or drop.
"""

from __future__ import annotations

import json
from typing import Any

from . import lineage, summary
from .reads import Reads
from .records import RunRecord, iso
from .space import SweepConfig
from .states import HELD


def status_json(reads: Reads, sid: str, now_ms: int | None = None) -> dict[str, Any]:
    """The sweep's status as JSON. Completion is read first: once it holds, the runs read after it
    are the final ones."""
    return status_and_runs(reads, sid, now_ms)[0]


def status_and_runs(reads: Reads, sid: str, now_ms: int | None = None) -> tuple[dict[str, Any], list[RunRecord]]:
    """``status_json`` and the runs it was made from: a reader that shows both (the dashboard) reads
    the sweep's runs once."""
    complete = reads.is_complete(sid)
    record, config = reads.sweep(sid), reads.config(sid)
    now_ms = reads.now_ms() if now_ms is None else now_ms
    runs = reads.runs(sid)
    queued = reads.queued_ids(sid)
    agents = [with_slots(agent) for agent in reads.agents(sid)]
    by_id = {run.id: run for run in runs}
    return {
        "id": sid,
        "name": record.name,
        "method": config.method,
        "state": "finished" if complete and record.state == "running" else record.state,
        "complete": complete,
        "runs": len(runs),
        "run_cap": config.run_cap,
        "counts": summary.counts(runs),
        "queue_depth": len(queued),
        "queue_head": queued[0] if queued else None,
        "agents_alive": len(agents),
        "agents": agents,
        "metric": {"name": config.metric.name, "goal": config.metric.goal} if config.metric else None,
        "best_run": summary.best_json(config, runs),
        "recent_events": reads.events(sid),
        "created_at": iso(record.created_at),
        # added for --watch
        "progress": summary.progress(config, runs, now_ms),
        "best_runs": summary.best_runs(config, runs, 5),
        "queue_next": [
            {"id": rid, "attempt": run.attempt, "requeues": run.requeues, "reason": run.reason}
            for rid in queued[:3]
            if (run := by_id.get(rid)) is not None
        ],
        "held_runs": [
            {"id": run.id, "agent_id": run.agent_id, "state": run.state, "attempt": run.attempt}
            for run in runs
            if run.state in HELD
        ],
        "observed_at": iso(now_ms),
        # added for PBT: the best run and its ancestors, newest first (null for other methods)
        "lineage": _lineage(config, runs),
    }, runs


def _lineage(config: SweepConfig, runs: list[RunRecord]) -> list[dict[str, Any]] | None:
    best = summary.best_run(config, runs) if config.method == "pbt" else None
    return lineage.lineage(runs, best[0].id) if best is not None else None


def agent_rows(reads: Reads, sweep_ids: list[str]) -> list[dict[str, Any]]:
    """Every agent a sweep has seen: live ones (their record has not expired) and silent ones."""
    rows: list[dict[str, Any]] = []
    live_ids = set()
    for sid in sweep_ids:
        for agent in reads.agents(sid):
            live_ids.add(agent["id"])
            beat = int(agent.get("heartbeat_at", "0") or 0)
            rows.append({**with_slots(agent), "sweep_id": sid, "alive": True, "last_heartbeat": iso(beat)})
        for aid, beat in reads.agents_seen(sid):
            if aid not in live_ids:
                rows.append({"id": aid, "sweep_id": sid, "alive": False, "last_heartbeat": iso(beat)})
    return rows


def with_slots(agent: dict[str, Any]) -> dict[str, Any]:
    """An agent's heartbeat fields, its ``slots`` (a GPU agent's: ``[{slot, gpus, run_id}]``, stored
    as JSON text) decoded; an agent without slots has none."""
    text = agent.get("slots")
    if not isinstance(text, str):
        return agent
    try:
        slots = json.loads(text)
    except ValueError:
        slots = []
    return {**agent, "slots": slots if isinstance(slots, list) else []}
