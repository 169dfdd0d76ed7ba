"""What a pool holds and wants: per sweep its priority, weight, held and queued runs, and the pool's
``demand``, the number of runs it could use at once right now (what an autoscaler scales on).

``demand`` of a sweep = queued runs + held runs + the runs its search can still create: a grid's
points left, ``run_cap`` left (the smaller of the two when both bound it); an unbounded random or
bayes sweep counts one more than it holds (so a fleet grows one agent at a time while each new one
finds work). A sweep that hands out nothing (paused, stopped, cancelled) counts only its held runs;
one whose metric reached its target creates no more. The pool's ``demand`` is the sum. Plain reads
(a snapshot): the pure part is ``left`` and ``demand``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import keys, search
from .errors import NotFound
from .pools import check_pool
from .reads import Reads, strs
from .records import iso
from .space import SweepConfig
from .views import with_slots


def left(config: SweepConfig, next_index: int, runs_made: int, target_reached: bool) -> int | None:
    """How many more runs the search can create (None: no end)."""
    if target_reached:
        return 0
    bounds: list[int] = []
    if config.method == "grid":
        bounds.append(max(0, search.grid.size(config) - next_index))
    if config.run_cap is not None:
        bounds.append(max(0, config.run_cap - runs_made))
    return min(bounds) if bounds else None


def demand(state: str, queued: int, held: int, can_create: int | None) -> int:
    """The runs a sweep could use at once: see the module's docstring."""
    if state != "running":
        return held
    return queued + held + (1 if can_create is None else can_create)


@dataclass(frozen=True)
class SweepRow:
    sweep_id: str
    name: str
    state: str
    priority: int
    weight: float
    held: int
    queued: int
    left: int | None  # runs the search can still create (None: no end)
    demand: int


def pool_status(reads: Reads, name: str) -> dict[str, Any]:
    """``sweepd pool status NAME --json``: the pool's sweeps (highest priority first) and demand."""
    check_pool(name)
    r = reads.r
    sids = sorted(strs(r.smembers(keys.pool(name))))
    if not sids and not r.sismember(keys.POOLS, name):
        raise NotFound(f"no pool {name!r} in this Redis")
    rows: list[SweepRow] = []
    for sid in sids:
        try:
            record, config = reads.sweep(sid), reads.config(sid)
        except NotFound:  # deleted by hand: not the pool's any more
            continue
        with r.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.sweep(sid), ["priority", "weight"])
            pipe.llen(keys.rq_queue(sid))
            pipe.zcard(keys.sweep_held(sid))
            pipe.zcard(keys.sweep_runs(sid))
            (priority, weight), queued, held, made = pipe.execute()
        can = left(config, record.next_index, made, record.target_reached)
        rows.append(
            SweepRow(
                sid,
                record.name,
                record.state,
                int(priority or 0),
                float(weight or 1),
                held,
                queued,
                can if record.state == "running" else 0,
                demand(record.state, queued, held, can),
            )
        )
    rows.sort(key=lambda row: (-row.priority, row.sweep_id))
    agents = strs(r.zrange(keys.pool_agents(name), 0, -1))
    alive = int(r.exists(*(keys.agent(a) for a in agents))) if agents else 0
    return {
        "pool": name,
        "demand": sum(row.demand for row in rows),
        "held": sum(row.held for row in rows),
        "queued": sum(row.queued for row in rows),
        "agents": alive,
        "sweeps": [asdict(row) for row in rows],
    }


def pool_names(reads: Reads) -> list[str]:
    return sorted(strs(reads.r.smembers(keys.POOLS)))


def pool_agent_rows(reads: Reads, names: list[str]) -> list[dict[str, Any]]:
    """``sweepd agents``' rows of the pools' agents: live ones (their record has not expired) and
    silent ones, each with its ``pool`` (its ``sweep_id`` is empty)."""
    rows: list[dict[str, Any]] = []
    for name in names:
        got: Any = reads.r.zrange(keys.pool_agents(name), 0, -1, withscores=True)
        seen = [(aid.decode(), int(score)) for aid, score in got]
        with reads.r.pipeline(transaction=False) as pipe:
            for aid, _ in seen:
                pipe.hgetall(keys.agent(aid))
            raw = pipe.execute()
        for (aid, beat), record in zip(seen, raw, strict=True):
            row: dict[str, Any] = {"id": aid, "sweep_id": "", "pool": name, "last_heartbeat": iso(beat)}
            if record:
                fields = {k.decode(): v.decode() for k, v in record.items()}
                row = {**with_slots(fields), **row, "heartbeat_at": str(beat), "alive": True}
            else:
                row["alive"] = False
            rows.append(row)
    return rows
