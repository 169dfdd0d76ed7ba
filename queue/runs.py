"""Starting runs by name, the writes behind ``init()`` without an agent and ``sweepd enqueue``.

Both apply the resume table (resume.py) in one Lua script each: ``resume.lua`` starts a run and
holds it for the calling process, as ``claim.lua`` holds one for an agent; ``enqueue.lua`` puts one
on a sweep's queue for the agents. ``Store`` (store.py) holds this part; core.py
registers the scripts with the others.

Runs started by hand with no sweep named go to the Redis's ``manual`` sweep, made on first use by
``resume.lua`` itself. Its config is a one-point grid that validates like any other
(``MANUAL_CONFIG``); it is created ``stopped``, so agents hand out nothing from it: its runs start
only by hand. A run in it keeps whatever params its script gave.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from . import bounds, keys
from .core import Core
from .errors import NotFound, RunHeld, UserError
from .records import Claim
from .resume import Rule, refusal

MANUAL_SWEEP = "manual"
MANUAL_CONFIG: dict[str, Any] = {
    "name": "manual",
    "description": "Runs started by hand: init() outside an agent, with no sweep named.",
    "method": "grid",
    "parameters": {"origin": {"value": "manual"}},
}


@dataclass(frozen=True)
class Started:
    """A run ``begin`` started and holds: ``created`` when the table made a new one."""

    claim: Claim
    created: bool


@dataclass(frozen=True)
class Enqueued:
    """What ``enqueue`` did: a new run, a known run requeued, or a queued run moved."""

    result: Literal["created", "queued", "moved"]
    attempts: int  # the run's starts so far; its next start is attempt + 1
    last_step: int | None  # where a resumed run's history continues from


class RunStarts:
    """The run-starting writes (a part of ``Store``): the scripts and rq's job fields are the core's."""

    def __init__(self, core: Core) -> None:
        self.core, self.r = core, core.r

    def sweep_of(self, rid: str) -> str | None:
        """The sweep a run belongs to, or None when there is no such run (a run never moves)."""
        value: bytes | None = self.r.hget(keys.run(keys.check_id(rid, "run id")), "sweep_id")  # type: ignore[assignment]
        return value.decode() if value is not None else None

    def begin(
        self,
        rid: str,
        sid: str,
        rule: Rule,
        params: dict[str, Any],
        holder: str,
        token: str,
        lease_s: float,
        *,
        spelled: str,
    ) -> Started:
        """Start run ``rid`` of sweep ``sid`` for the calling process under ``rule`` and hold it
        (resume.lua). Raises the table's refusal, ``RunHeld`` while another process holds it."""
        manual = ""
        if sid == MANUAL_SWEEP:
            now_ms = int(time.time() * 1000)
            manual = json.dumps(
                {
                    "id": sid,
                    "name": MANUAL_CONFIG["name"],
                    "config": json.dumps(MANUAL_CONFIG),
                    "seed": "0",
                    "state": "stopped",
                    "next_index": "0",
                    "created_at": str(now_ms),
                }
            )
        got = self.core.run(
            "resume",
            [
                keys.run(rid),
                keys.run_summary(rid),
                keys.sweep(sid),
                keys.sweep_runs(sid),
                keys.sweep_held(sid),
                keys.rq_queue(sid),
                keys.rq_job(rid),
                keys.sweep_seq(sid),
                keys.SWEEPS,
                keys.RQ_QUEUES,
                keys.sweep_up(sid),
                keys.sweep_seen(sid),
            ],
            [
                rid,
                sid,
                rule.if_exists,
                rule.if_missing,
                json.dumps(params),
                holder,
                token,
                int(lease_s * 1000),
                manual,
                *self.core.job_fields(sid, rid),
            ],
        )
        status, rest = got[0].decode(), [g.decode() if isinstance(g, bytes) else str(g) for g in got[1:]]
        if status == "created":
            return Started(Claim(sid, rid, 1, token, params), True)
        if status == "resumed":
            stored = json.loads(self.r.hget(keys.run(rid), "params") or b"{}")
            return Started(Claim(sid, rid, int(rest[0]), token, stored, step_of(rest[1])), False)
        if status == "held":
            raise RunHeld(
                f"run {rid!r} is running under {rest[0] or 'another process'} (its lease runs "
                f"{int(rest[1]) / 1000:.0f} s more): a second process cannot run it at the same time; "
                f"wait for it to end, or stop it with `sweepd stop {rid}`"
            )
        raise _refused(status, rest, rid, sid, spelled)

    def enqueue(
        self, sid: str, rid: str, rule: Rule, params: dict[str, Any] | None, *, front: bool, spelled: str
    ) -> Enqueued:
        """Put run ``rid`` on sweep ``sid``'s queue under ``rule`` (enqueue.lua); ``params`` None keeps
        a known run's. Raises the table's refusal, or ``RunHeld`` for a run an agent holds."""
        got = self.core.run(
            "enqueue",
            [
                keys.run(rid),
                keys.run_summary(rid),
                keys.sweep(sid),
                keys.sweep_runs(sid),
                keys.rq_queue(sid),
                keys.rq_job(rid),
                keys.sweep_seq(sid),
                keys.sweep_wake(sid),
                keys.RQ_QUEUES,
            ],
            [
                rid,
                sid,
                rule.if_exists,
                rule.if_missing,
                "" if params is None else json.dumps(params),
                "1" if front else "0",
                *self.core.job_fields(sid, rid),
            ],
        )
        status, rest = got[0].decode(), [g.decode() for g in got[1:]]
        if status == "created":
            return Enqueued("created", 0, None)
        if status in ("queued", "moved"):
            return Enqueued(status, int(rest[0]), step_of(rest[1]))
        if status == "held":
            raise RunHeld(
                f"run {rid!r} is running (held by {rest[0] or 'an agent'}): it is never moved from under "
                f"its holder; `sweepd requeue {rid}` asks the holder to requeue it"
            )
        raise _refused(status, rest, rid, sid, spelled)


def step_of(text: str) -> int | None:
    """The summary's ``_step`` (JSON) as an int; None when the run never logged, or what is stored
    is no step (bounds.step: whatever is stored, never an error)."""
    return bounds.step(text or None)


def _refused(status: str, rest: list[str], rid: str, sid: str, spelled: str) -> UserError:
    if status in ("exists", "missing"):
        return refusal(status, rid, spelled)  # type: ignore[arg-type]
    if status == "other-sweep":
        return UserError(f"run {rid!r} belongs to sweep {rest[0]!r}, not {sid!r}")
    if status == "no-sweep":
        return NotFound(f"no sweep {sid!r} in this Redis")
    if status == "cancelled":
        return UserError(f"sweep {sid!r} is cancelled and takes no runs (`sweepd sweep resume {sid}` first)")
    raise RuntimeError(f"unexpected answer from a script: {status!r}")
