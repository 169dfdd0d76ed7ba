"""The writes and reads behind sweepd's own schedulers: ASHA's pause and promotion (pause.lua,
promote.lua). ``Store`` (store.py) holds this part; core.py registers the scripts with the others;
the decisions are pure (search/asha.py)."""

from __future__ import annotations

import json
import uuid

from . import keys
from .core import Core
from .reads import Reads
from .records import Claim
from .runs import step_of

_PROMOTE_TRIES = 8  # each failed try means another agent promoted a run meanwhile: look again


class Schedules:
    """ASHA's moves (a part of ``Store``): the scripts are the core's, what to promote the reads'."""

    def __init__(self, core: Core, reads: Reads) -> None:
        self.core, self.reads = core, reads

    def pause(self, claim: Claim, rung: int, reason: str = "asha") -> bool:
        """Park the held run at ``rung`` (pause.lua, fenced by the token); False when no longer ours."""
        sid, rid = claim.sweep_id, claim.run_id
        done = self.core.run(
            "pause",
            [
                keys.run(rid),
                keys.sweep_held(sid),
                keys.rq_job(rid),
                keys.sweep_wake(sid),
                keys.sweep_agents(sid),
                keys.rq_queue(sid),
            ],
            [rid, claim.token, rung, reason],
        )
        return int(done) == 1

    def promote_next(self, sid: str, agent_id: str, lease_s: float) -> Claim | None:
        """Hold the paused run ASHA promotes now (promote.lua), or None: nothing to promote."""
        for _ in range(_PROMOTE_TRIES):
            chosen = self.reads.promotable(sid)
            if chosen is None:
                return None
            claim = self.promote(sid, *chosen, agent_id, lease_s)
            if claim is not None:
                return claim
        return None

    def promote(self, sid: str, rid: str, rung: int, agent_id: str, lease_s: float) -> Claim | None:
        """Hold run ``rid`` for its next rung if it is still paused at ``rung`` (promote.lua)."""
        token = uuid.uuid4().hex
        got = self.core.run(
            "promote",
            [keys.sweep(sid), keys.run(rid), keys.sweep_held(sid), keys.rq_job(rid), keys.run_summary(rid)],
            [rid, rung, agent_id, token, int(lease_s * 1000)],
        )
        if not got:
            return None
        return Claim(sid, rid, int(got[0]), token, json.loads(got[1]), step_of((got[2] or b"").decode()))
