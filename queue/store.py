"""The typed client over sweepd's Redis data: every write goes through it (reads: reads.py).

``Store`` is the one object callers get; it is made of the parts it holds, which share one core
(core.py: the client, the Lua scripts behind the shared prelude, rq's job layout): ``reads``
(reads.py), ``operations`` (operations.py: the moves of runs and sweeps), ``starts`` (runs.py:
runs started by name), ``presence`` (presence.py: agents' records, heartbeats, the idle wait),
``snapshots`` (checkpoints.py: committed checkpoints) and ``pools`` (pools.py). Their public
methods are the Store's own, so a caller writes ``store.claim(...)`` whichever part does it. This
is the only module that imports rq: rq lays out each run's job hash and the queue list; sweepd's
scripts move run ids.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from . import keys
from .checkpoints import Checkpoints
from .core import PRELUDE as PRELUDE  # importable here still; the scripts' rules are in core.py
from .core import Core
from .core import script_source as script_source
from .ids import new_id as new_id  # store.new_id stays importable; the rule is in ids.py
from .jobs import FUNC_NAME
from .next_run import CreateResult as CreateResult
from .next_run import NextRuns
from .operations import HEARTBEAT as HEARTBEAT
from .operations import HISTORY_CAP as HISTORY_CAP
from .operations import LOG_CAP as LOG_CAP
from .operations import Operations
from .operations import Reaped as Reaped
from .operations import Renewal as Renewal
from .pools import Pools
from .population import Population
from .presence import Presence
from .reads import Reads
from .runs import RunStarts
from .schedules import Schedules


class Store:
    """Sweeps, runs and the queue in one Redis. Cheap to make; holds no state but its parts' caches
    (configs; each sweep's next search point)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self.core = core = Core(client, lambda sid, rid: _rq_job_fields(client, sid, rid))
        self._scripts = core.scripts  # by name: what tests look at
        self.reads = reads = Reads(client)
        self.operations = ops = Operations(core, reads)
        self.starts = starts = RunStarts(core)
        self.presence = presence = Presence(core, reads)
        self.snapshots = snapshots = Checkpoints(core)
        self.pools = pools = Pools(core, reads, presence)
        self.schedules = schedules = Schedules(core, reads)
        self.population = population = Population(core)
        # reads.py
        self.now_ms, self.call_timeout, self.failover_check = reads.now_ms, reads.call_timeout, reads.failover_check
        self.sweep, self.config, self.sweep_ids, self.events = reads.sweep, reads.config, reads.sweep_ids, reads.events
        self.preview, self.observations, self.run, self.runs = reads.preview, reads.observations, reads.run, reads.runs
        self.curves, self.curve_length, self.curve = reads.curves, reads.curve_length, reads.curve
        self.quick_marks, self.history, self.logs = reads.quick_marks, reads.history, reads.logs
        self.queued_ids, self.held_count, self.generation_done = (
            reads.queued_ids,
            reads.held_count,
            reads.generation_done,
        )
        self.is_complete, self.change_marker = reads.is_complete, reads.change_marker
        self.agents_seen, self.agents = reads.agents_seen, reads.agents
        self.rung_of, self.promotable = reads.rung_of, reads.promotable
        # operations.py
        self.create_sweep, self.control, self.claim, self.create = (
            ops.create_sweep,
            ops.control,
            ops.claim,
            ops.create,
        )
        self.complete, self.requeue, self.renew, self.mark_preempting = (
            ops.complete,
            ops.requeue,
            ops.renew,
            ops.mark_preempting,
        )
        self.reap, self.reap_due, self.operate = ops.reap, ops.reap_due, ops.operate
        self.log_metrics, self.append_log = ops.log_metrics, ops.append_log
        # runs.py, presence.py, checkpoints.py, pools.py
        self.sweep_of, self.begin, self.enqueue = starts.sweep_of, starts.begin, starts.enqueue
        self.agent_beat, self.idle_beat = presence.agent_beat, presence.idle_beat
        self.agent_gone, self.wait_for_work = presence.agent_gone, presence.wait_for_work
        self.commit_checkpoint, self.checkpoints = snapshots.commit_checkpoint, snapshots.checkpoints
        self.latest_checkpoint, self.latest_checkpoints = snapshots.latest_checkpoint, snapshots.latest_checkpoints
        self.set_pool, self.pool_settings, self.pool_claim = pools.set_pool, pools.pool_settings, pools.pool_claim
        self.pool_beat, self.pool_leases, self.pool_record = pools.pool_beat, pools.pool_leases, pools.pool_record
        self.pool_agent_gone, self.wait_for_pool = pools.pool_agent_gone, pools.wait_for_pool
        # schedules.py (ASHA), population.py (PBT)
        self.pause, self.promote_next, self.promote = schedules.pause, schedules.promote_next, schedules.promote
        self.pbt_of, self.last_decided, self.standing = population.pbt_of, population.last_decided, population.standing
        self.decide, self.decisions = population.decide, population.decisions
        self.last_step_and_value, self.value_at = population.last_step_and_value, population.value_at

        #: The search, then the write (next_run.py), for a caller that keeps no hint of its own.
        self.create_next = NextRuns(reads, ops).create_next


def _rq_job_fields(client: redis.Redis, sid: str, rid: str) -> list[Any]:
    """rq's own hash for the run's job, as field/value pairs (rq lays it out; a script writes it)."""
    job = Job.create(
        FUNC_NAME,
        kwargs={"run_id": rid},
        id=rid,
        origin=keys.rq_queue_name(sid),
        connection=client,
        serializer=JSONSerializer,
        timeout=-1,
        result_ttl=-1,
        description=f"sweepd run {rid} of sweep {sid}",
    )
    fields: list[Any] = []
    for name, value in job.to_dict().items():
        fields += [name, value.value if isinstance(value, Enum) else value]
    return fields
