"""The writes and reads behind PBT (``method: pbt``): a member's standing at an interval's step
(pbt_standing.lua) and its decision, with its next generation made in the same step
(pbt_decide.lua). ``Store`` (store.py) holds this part; core.py registers the scripts with the
others; the decision itself is pure (search/pbt.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import keys
from .core import Core
from .reads import strs
from .records import Claim


@dataclass(frozen=True)
class NextRun:
    """The member's next generation: a new run, queued at the front by pbt_decide.lua."""

    run_id: str
    params: dict[str, Any]
    pbt: dict[str, Any]  # member, generation, parent
    first_step: int | None  # the copied checkpoint's step: its history continues from there
    reference: str = ""  # object-store root: the run whose latest snapshot it starts from (no copy)


class Population:
    """PBT's moves and reads (a part of ``Store``): the scripts and rq's job fields are the core's."""

    def __init__(self, core: Core) -> None:
        self.core, self.r = core, core.r

    def pbt_of(self, sid: str, rid: str) -> dict[str, Any]:
        """The run's member, generation and parent (a first-generation run's member is its place
        among the sweep's runs that no exploit made)."""
        raw: Any = self.r.hget(keys.run(rid), "pbt")
        if raw:
            return dict(json.loads(raw))
        ids = strs(self.r.zrange(keys.sweep_runs(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for other in ids:
                pipe.hget(keys.run(other), "pbt")
            made = pipe.execute()
        first = [other for other, record in zip(ids, made, strict=True) if not record]
        return {"member": first.index(rid) if rid in first else -1, "generation": 0, "parent": None}

    def last_decided(self, sid: str, member: int) -> int | None:
        """The highest step a decision was written for ``member`` (None: none yet)."""
        raw: Any = self.r.hget(keys.sweep_pbt(sid), f"last:{member}")
        return int(raw) if raw is not None else None

    def standing(
        self, claim: Claim, member: int, step: int, value: float, population: int
    ) -> dict[int, tuple[float, str]] | None:
        """Note the member's value at ``step`` (the first one given stands) and return every member's
        that reached it: member -> (value, run id). None when the run is no longer ours."""
        got = self.core.run(
            "pbt_standing",
            [keys.run(claim.run_id), keys.sweep_pbt(claim.sweep_id)],
            [claim.token, member, step, json.dumps({"value": value, "run": claim.run_id}), population],
        )
        if not got:
            return None
        found = {m: json.loads(raw) for m, raw in enumerate(got) if raw}
        return {m: (float(v["value"]), str(v["run"])) for m, v in found.items()}

    def decide(self, claim: Claim, member: int, step: int, decision: dict[str, Any], nxt: NextRun | None) -> str:
        """Write the member's decision at ``step`` once, making ``nxt`` queued at the front in the
        same step (pbt_decide.lua): 'ok', 'decided:<the decision that stands>', 'closed', 'fenced'."""
        sid = claim.sweep_id
        new = nxt.run_id if nxt is not None else ""
        got = self.core.run(
            "pbt_decide",
            [
                keys.run(claim.run_id),
                keys.sweep_pbt(sid),
                keys.sweep(sid),
                keys.sweep_runs(sid),
                keys.sweep_seq(sid),
                keys.rq_queue(sid),
                keys.run(new or claim.run_id),
                keys.run_summary(new or claim.run_id),
                keys.rq_job(new or claim.run_id),
                keys.sweep_wake(sid),
                keys.RQ_QUEUES,
                keys.run_checkpoints(new or claim.run_id),
                keys.run_checkpoints(nxt.reference if nxt is not None and nxt.reference else claim.run_id),
                keys.sweep_pins(sid),
            ],
            [
                claim.token,
                member,
                step,
                json.dumps(decision),
                new,
                sid,
                json.dumps(nxt.params if nxt else {}),
                json.dumps(nxt.pbt if nxt else {}),
                "" if nxt is None or nxt.first_step is None else nxt.first_step,
                nxt.reference if nxt is not None else "",
                *(self.core.job_fields(sid, new) if nxt else []),
            ],
        )
        return str(got.decode())

    def decisions(self, sid: str) -> dict[str, Any]:
        """Every decision written: ``<member>:<step>`` -> it (what tests and ``status`` read)."""
        raw: Any = self.r.hgetall(keys.sweep_pbt(sid))
        return {k.decode()[2:]: json.loads(v) for k, v in raw.items() if k.startswith(b"d:")}

    def last_step_and_value(self, rid: str, metric: str) -> tuple[int | None, Any]:
        """The run's last logged step and its last value of ``metric`` (its summary)."""
        step, value = self.r.hmget(keys.run_summary(rid), ["_step", metric])
        return (int(step) if step is not None else None), (json.loads(value) if value is not None else None)

    def value_at(self, rid: str, metric: str, step: int, last: int) -> Any:
        """The run's value of ``metric`` at the first row logged at ``step`` or past it, read from
        the tail of its history (rows ``step``..``last``, at most 1,000); None when there is none."""
        rows: Any = self.r.lrange(keys.run_history(rid), -min(1000, max(1, last - step + 1)), -1)
        for raw in rows:
            row = json.loads(raw)
            if isinstance(row.get("_step"), int) and row["_step"] >= step and metric in row:
                return row[metric]
        return None
