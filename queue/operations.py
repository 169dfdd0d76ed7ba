"""The moves of runs and sweeps, each one Lua script (a part of ``Store``, store.py).

claim, create, complete, requeue, renew, preempt, reap, operate, control, log and create_sweep each
say which script they run; core.py registers them behind the shared prelude and runs each as one
EVALSHA. Everything that belongs to a move (its event, the sweep's ``target_reached``) is written by
that move's script.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import bounds, keys
from .core import Core
from .errors import UserError
from .ids import new_id
from .presence import up_ttl_ms
from .reads import SWEEP_STATES, Reads
from .records import Claim
from .runs import step_of
from .space import SweepConfig

HISTORY_CAP = bounds.HISTORY_ROWS  # metric rows kept per run (and bytes: bounds.HISTORY_BYTES)
LOG_CAP = 10_000  # output lines kept per attempt
HEARTBEAT = 10.0  # seconds: a reaper's heartbeat when it names none (the agent's default, options.py)


#: What renew tells the holder: keep going, stop the run, requeue it, or it is no longer ours:
#: "fenced" (another attempt or an operator took it) or "gone" (the run no longer exists in Redis,
#: which lost its data): both mean stop the training process now.
Renewal = Literal["ok", "stop", "requeue", "cancel", "fenced", "gone"]
_RENEWALS: dict[int, Renewal] = {1: "ok", 2: "stop", 3: "requeue", 4: "cancel", 0: "fenced", 5: "gone"}


@dataclass(frozen=True)
class Reaped:
    """What a reap did and saw: the runs it requeued, Redis's clock (ms), the earliest lease
    deadline left (ms on that clock; None: nothing held) and how many lapsed leases it spared."""

    requeued: list[str]
    now_ms: int
    earliest: int | None
    spared: int = 0  # lapsed leases given a heartbeat more: the store has just come back (reap.lua)


def _up(sid: str) -> list[str]:
    """The keys by which a sweep's store tells it came back from an outage (the prelude's came_back)."""
    return [keys.sweep_up(sid), keys.sweep_seen(sid)]


class Operations:
    """The moves (a part of ``Store``). No state: each call is one script."""

    def __init__(self, core: Core, reads: Reads) -> None:
        self.core, self.reads = core, reads

    # sweeps -------------------------------------------------------------------------------------

    def create_sweep(self, config: SweepConfig, *, name: str | None = None, seed: int | None = None) -> str:
        """Store a validated config as a new sweep (create_sweep.lua) and return its id."""
        now_ms = int(time.time() * 1000)
        record = {
            "name": name or config.name,
            "config": json.dumps(config.raw),
            "seed": seed if seed is not None else secrets.randbelow(2**31),
            "state": "running",
            "next_index": 0,
            "created_at": now_ms,
        }
        while True:
            sid = new_id()
            fields = {"id": sid, **record, "name": record["name"] or sid}
            flat = [item for pair in fields.items() for item in pair]
            made = self.core.run(
                "create_sweep", [keys.sweep(sid), keys.SWEEPS, keys.RQ_QUEUES], [sid, keys.rq_queue(sid), *flat]
            )
            if made:
                return sid

    def control(self, sid: str, state: str) -> str:
        """Pause, resume (running), stop or cancel a sweep (control.lua); returns the previous state."""
        if state not in SWEEP_STATES:
            raise UserError(f"sweep state {state!r} is not one of {', '.join(SWEEP_STATES)}")
        self.reads.sweep(sid)
        previous = self.core.run(
            "control",
            [keys.sweep(sid), keys.rq_queue(sid), keys.sweep_wake(sid), keys.sweep_agents(sid)],
            [state, keys.PREFIX + "run:", keys.RQ_JOB_PREFIX],
        )
        return str(previous.decode())

    # the run lifecycle ----------------------------------------------------------------------------

    def claim(self, sid: str, agent_id: str, lease_s: float) -> Claim | None:
        """Take the run at the head of the sweep's queue (claim.lua: one atomic step)."""
        token = uuid.uuid4().hex
        got = self.core.run(
            "claim",
            [keys.sweep(sid), keys.rq_queue(sid), keys.sweep_held(sid), keys.sweep_events(sid), keys.sweep_wake(sid)],
            [keys.PREFIX + "run:", keys.RQ_JOB_PREFIX, agent_id, token, int(lease_s * 1000)],
        )
        if not got:
            return None
        rid, attempt, recovery_ms = got[0].decode(), int(got[1]), int(got[2])
        return Claim(
            sid,
            rid,
            attempt,
            token,
            json.loads(got[3]),
            step_of((got[4] or b"").decode()),
            recovered_after=None if recovery_ms < 0 else recovery_ms / 1000,
        )

    def create(
        self,
        sid: str,
        index: int,
        params: dict[str, Any],
        agent_id: str,
        lease_s: float,
        run_cap: int,
        *,
        unless_queued: bool = False,
    ) -> Claim | str:
        """Create run ``index`` of the sweep's search with ``params`` (the caller asked the search:
        next_run.py), already held (create.lua). Only writes: the script takes the point only if
        nobody took it first. A Claim, or what the script said: "paused", "queued" (``unless_queued``:
        a run is queued, the queue goes first), "cap", "target", "moved:<next_index>" (another agent
        took that point) or "exists" (that run id was taken)."""
        rid, token = new_id(), uuid.uuid4().hex
        result: str = self.core.run(
            "create",
            [
                keys.sweep(sid),
                keys.sweep_runs(sid),
                keys.sweep_held(sid),
                keys.run(rid),
                keys.rq_job(rid),
                keys.sweep_seq(sid),
                *([keys.rq_queue(sid)] if unless_queued else []),
            ],
            [
                index,
                rid,
                json.dumps(params),
                agent_id,
                token,
                int(lease_s * 1000),
                run_cap,
                sid,
                *self.core.job_fields(sid, rid),
            ],
        ).decode()
        return Claim(sid, rid, 1, token, params) if result == "ok" else result

    def complete(self, claim: Claim, state: str, exit_code: int | None, reason: str) -> bool:
        """Record the attempt's end (complete.lua); False when the claim was fenced off."""
        return bool(
            self.core.run(
                "complete",
                [
                    keys.run(claim.run_id),
                    keys.sweep_held(claim.sweep_id),
                    keys.rq_job(claim.run_id),
                    keys.sweep_wake(claim.sweep_id),
                    keys.sweep_agents(claim.sweep_id),
                    keys.rq_queue(claim.sweep_id),
                ],
                [claim.run_id, claim.token, state, "" if exit_code is None else exit_code, reason],
            )
        )

    def requeue(
        self, claim: Claim, *, reason: str, front: bool = True, event: bool = False, quick_mark: bool = False
    ) -> bool:
        """The holder puts its run back on the queue (requeue.lua); False when it was fenced off
        (or the run was queued already). ``event`` writes the sweep's ``requeued`` event (run,
        attempt, reason) in the same step, so it is there exactly when the requeue is.
        ``quick_mark``: the run marked itself preempting and exited at once (``quick_marks`` + 1)."""
        sid, rid = claim.sweep_id, claim.run_id
        done = self.core.run(
            "requeue",
            [
                keys.run(rid),
                keys.sweep_held(sid),
                keys.rq_queue(sid),
                keys.rq_job(rid),
                keys.sweep_wake(sid),
                keys.RQ_QUEUES,
                keys.sweep_events(sid),
            ],
            [rid, claim.token, reason, "1" if front else "0", "1" if event else "0", "1" if quick_mark else "0"],
        )
        return int(done) == 1

    def renew(self, claim: Claim, lease_s: float, *, tell_gone: bool = False) -> Renewal:
        """Extend the claim's lease (renew.lua), and learn whether an operator wants the run stopped
        or requeued; "fenced" means it is no longer ours: stop the training process now.

        "gone" (the run's hash no longer exists: Redis lost its data) is told only to a caller that
        asks with ``tell_gone``; others get "fenced", which they already stop on, so a holder that
        does not know "gone" can never take it for a renewal."""
        code = self.core.run(
            "renew",
            [keys.run(claim.run_id), keys.sweep_held(claim.sweep_id), keys.sweep(claim.sweep_id), *_up(claim.sweep_id)],
            [claim.run_id, claim.token, int(lease_s * 1000)],
        )
        answer = _RENEWALS[int(code)]
        return "fenced" if answer == "gone" and not tell_gone else answer

    def mark_preempting(self, claim: Claim, reason: str) -> bool:
        """Mark the held run ``preempting`` (preempt.lua); False when it is no longer ours."""
        return bool(self.core.run("preempt", [keys.run(claim.run_id)], [claim.token, reason]))

    def reap(self, sid: str, heartbeat_s: float = HEARTBEAT) -> list[str]:
        """Requeue at the front every run of the sweep whose lease expired (reap.lua: exactly once,
        however many agents reap at the same moment). Returns their ids."""
        return self.reap_due(sid, heartbeat_s).requeued

    def reap_due(self, sid: str, heartbeat_s: float = HEARTBEAT) -> Reaped:
        """``reap``, with what an idle agent sleeps on: Redis's clock and the earliest lease left.
        ``heartbeat_s``, the reaper's: the grace of a lease that lapsed in an outage when its holder
        never renewed, and how long the reaper's own word that the store is up lasts (1.5 of it)."""
        got = self.core.run(
            "reap",
            [keys.sweep_held(sid), keys.rq_queue(sid), keys.sweep_wake(sid), keys.sweep_events(sid), *_up(sid)],
            [keys.PREFIX + "run:", keys.RQ_JOB_PREFIX, int(heartbeat_s * 1000), up_ttl_ms(heartbeat_s * 3)],
        )
        earliest = None if got[1] is None else int(float(got[1]))
        return Reaped([e.decode() for e in got[3:]], int(got[0]), earliest, int(got[2]))

    def operate(self, rid: str, action: Literal["stop", "requeue"]) -> str:
        """An operator's stop or requeue of one run (operate.lua). A held run is stopped or
        requeued by its holder at its next heartbeat, so it never runs twice at once."""
        sid = self.reads.run(rid).sweep_id
        result = self.core.run(
            "operate",
            [
                keys.run(rid),
                keys.rq_queue(sid),
                keys.rq_job(rid),
                keys.sweep_wake(sid),
                keys.sweep_held(sid),
                keys.sweep_agents(sid),
            ],
            [rid, action],
        )
        return str(result.decode())

    # what runs report -----------------------------------------------------------------------------

    def log_metrics(
        self, claim: Claim, rows: list[dict[str, Any]], summary: Mapping[str, Any] | None = None, cut: int = 0
    ) -> bool:
        """Append metric rows to the run's history and summary (log.lua, fenced by the token); the
        same step notes on the sweep when a row reaches the metric's target, so a refused log
        never does. ``summary``: values set in the summary alone, after the rows (no history row).
        ``cut``: what the caller cut at the bounds (counted on the run). False when fenced off."""
        if not rows and not summary and not cut:
            return True
        latest: dict[str, Any] = {}
        for row in rows:
            latest.update(row)
        latest.update(summary or {})
        fields: list[Any] = []
        for name, value in latest.items():
            fields += [name, bounds.dumps(value)]
        rid = claim.run_id
        metric = self.reads.config(claim.sweep_id).metric
        target = metric.target if metric else None
        done = self.core.run(
            "log",
            [
                keys.run(rid),
                keys.run_history(rid),
                keys.run_summary(rid),
                keys.run_curve(rid),
                keys.sweep(claim.sweep_id),
            ],
            [
                claim.token,
                HISTORY_CAP,
                bounds.HISTORY_BYTES,
                bounds.ROW_BYTES,
                4 * bounds.NAME_CHARS,  # bytes: a name's characters in UTF-8 (values: strict JSON)
                bounds.SUMMARY_FIELDS,
                cut,
                len(rows),
                *(bounds.dumps(row) for row in rows),
                metric.name if metric else "",
                metric.goal if metric else "",
                "" if target is None else repr(float(target)),
                *fields,
            ],
        )
        return bool(done)

    def append_log(self, rid: str, attempt: int, lines: list[str], keep: int = LOG_CAP) -> None:
        """Append output lines to an attempt's log, which keeps its newest ``keep`` (at most
        ``LOG_CAP``): the agent, the attempt's only writer, asks for fewer to bound its bytes."""
        if not lines:
            return
        key = keys.run_log(rid, attempt)
        with self.core.r.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *lines)
            pipe.ltrim(key, -max(1, min(keep, LOG_CAP)), -1)
            pipe.execute()
