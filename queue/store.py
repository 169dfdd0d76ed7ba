"""The typed client over sweepd's Redis data: every write goes through here.

Each step that must be atomic is one Lua script from ``scripts/`` (claim, create, complete, requeue,
renew) or one MULTI/EXEC transaction (create_sweep), and says so. This is the only module that
imports rq: rq lays out each run's job hash and the queue list, sweepd's scripts move run ids.
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from enum import Enum
from importlib import resources
from typing import Any, Literal, cast

import redis
from redis.commands.core import Script
from rq.job import Job
from rq.serializers import JSONSerializer

from . import keys, search
from .config import validate
from .errors import NotFound
from .jobs import FUNC_NAME
from .records import Claim, RunRecord, SweepRecord
from .space import SweepConfig

HISTORY_CAP = 10_000  # metric rows kept per run
LOG_CAP = 10_000  # output lines kept per attempt
EVENTS_CAP = 100  # preemption and requeue events kept per sweep
_ID_ALPHABET = string.ascii_lowercase + string.digits

CreateResult = Literal["ok", "exhausted", "paused", "cap", "target"]


def new_id(length: int = 8) -> str:
    """A random ID like W&B's: short, lowercase, safe in keys, rq job ids and paths."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _strs(items: Any) -> list[str]:
    """Decode a list reply (redis-py types replies loosely: they are bytes here)."""
    return [item.decode(errors="replace") for item in items]


def _script(r: redis.Redis, name: str) -> Script:
    return r.register_script(resources.files("sweepd.queue.scripts").joinpath(f"{name}.lua").read_text())


class Store:
    """Sweeps, runs and the queue in one Redis. Cheap to make; holds no state but config caches."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._claim = _script(client, "claim")
        self._create = _script(client, "create")
        self._complete = _script(client, "complete")
        self._requeue = _script(client, "requeue")
        self._renew = _script(client, "renew")
        self._preempt = _script(client, "preempt")
        self._configs: dict[str, SweepConfig] = {}

    # sweeps -------------------------------------------------------------------------------------

    def create_sweep(self, config: SweepConfig, *, name: str | None = None, seed: int | None = None) -> str:
        """Store a validated config as a new sweep (one MULTI/EXEC) and return its id."""
        sid = new_id()
        while self.r.exists(keys.sweep(sid)):
            sid = new_id()
        now_ms = int(time.time() * 1000)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.sweep(sid),
                mapping={
                    "id": sid,
                    "name": name or config.name or sid,
                    "config": json.dumps(config.raw),
                    "seed": seed if seed is not None else secrets.randbelow(2**31),
                    "state": "running",
                    "next_index": 0,
                    "created_at": now_ms,
                },
            )
            pipe.zadd(keys.SWEEPS, {sid: now_ms / 1000})
            pipe.sadd(keys.RQ_QUEUES, keys.rq_queue(sid))
            pipe.execute()
        return sid

    def sweep(self, sid: str) -> SweepRecord:
        raw = self.r.hgetall(keys.sweep(keys.check_id(sid, "sweep id")))
        if not raw:
            raise NotFound(f"no sweep {sid!r} in this Redis")
        return SweepRecord.decode(raw)

    def config(self, sid: str) -> SweepConfig:
        """The sweep's config, validated again from what is stored (cached: configs never change)."""
        if sid not in self._configs:
            self._configs[sid] = validate(self.sweep(sid).config, source=f"sweep {sid}")
        return self._configs[sid]

    def sweep_ids(self) -> list[str]:
        return _strs(self.r.zrange(keys.SWEEPS, 0, -1))

    # the run lifecycle ------------------------------------------------------------------------------

    def claim(self, sid: str, agent_id: str, lease_s: float) -> Claim | None:
        """Take the run at the head of the sweep's queue (claim.lua: one atomic step)."""
        token = uuid.uuid4().hex
        got = self._claim(
            keys=[keys.sweep(sid), keys.rq_queue(sid), keys.sweep_held(sid)],
            args=[keys.PREFIX + "run:", keys.RQ_JOB_PREFIX, agent_id, token, int(lease_s * 1000)],
        )
        if not got:
            return None
        rid, attempt = got[0].decode(), int(got[1])
        params = json.loads(self.r.hget(keys.run(rid), "params") or b"{}")
        return Claim(sid, rid, attempt, token, params)

    def create_next(self, sid: str, agent_id: str, lease_s: float) -> Claim | CreateResult:
        """Create the sweep's next run from its search algorithm, already held (create.lua).

        Agents race here: the script takes a search point only if nobody took it first, so every
        grid point is created exactly once; the loser computes the next point and tries again.
        """
        config = self.config(sid)
        while True:
            sweep = self.sweep(sid)
            params = search.suggest(config, sweep.seed, sweep.next_index)
            if params is None:
                return "exhausted"
            rid, token = new_id(), uuid.uuid4().hex
            result = self._create(
                keys=[
                    keys.sweep(sid),
                    keys.sweep_runs(sid),
                    keys.sweep_held(sid),
                    keys.run(rid),
                    keys.rq_job(rid),
                    keys.sweep_seq(sid),
                ],
                args=[
                    sweep.next_index,
                    rid,
                    json.dumps(params),
                    agent_id,
                    token,
                    int(lease_s * 1000),
                    config.run_cap or 0,
                    sid,
                    *self._rq_job_fields(sid, rid),
                ],
            ).decode()
            if result == "ok":
                return Claim(sid, rid, 1, token, params)
            if result == "paused" or result == "cap" or result == "target":
                return cast(CreateResult, result)
            # 'moved' or 'exists': another agent took that point (or that id); look again.

    def complete(self, claim: Claim, state: str, exit_code: int | None, reason: str) -> bool:
        """Record the attempt's end (complete.lua); False when the claim was fenced off."""
        return bool(
            self._complete(
                keys=[
                    keys.run(claim.run_id),
                    keys.sweep_held(claim.sweep_id),
                    keys.rq_job(claim.run_id),
                    keys.sweep_wake(claim.sweep_id),
                ],
                args=[claim.run_id, claim.token, state, "" if exit_code is None else exit_code, reason],
            )
        )

    def requeue(self, sid: str, rid: str, *, token: str = "", reason: str, front: bool = True) -> int:
        """Put a run back on the queue (requeue.lua): 1 requeued, 2 already queued, 0 refused."""
        return int(
            self._requeue(
                keys=[
                    keys.run(rid),
                    keys.sweep_held(sid),
                    keys.rq_queue(sid),
                    keys.rq_job(rid),
                    keys.sweep_wake(sid),
                    keys.RQ_QUEUES,
                ],
                args=[rid, token, reason, "1" if front else "0"],
            )
        )

    def renew(self, claim: Claim, lease_s: float) -> bool:
        """Extend the claim's lease (renew.lua); False means it is no longer ours: stop the run."""
        return bool(
            self._renew(
                keys=[keys.run(claim.run_id), keys.sweep_held(claim.sweep_id)],
                args=[claim.run_id, claim.token, int(lease_s * 1000)],
            )
        )

    def mark_preempting(self, claim: Claim, reason: str) -> bool:
        """Mark the held run ``preempting`` (preempt.lua); False when it is no longer ours."""
        return bool(self._preempt(keys=[keys.run(claim.run_id)], args=[claim.token, reason]))

    def add_event(self, sid: str, event: dict[str, Any]) -> None:
        """Note a preemption or requeue for ``status`` (the newest 100 are kept)."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.sweep_events(sid), json.dumps({"at": int(time.time() * 1000), **event}))
            pipe.ltrim(keys.sweep_events(sid), 0, EVENTS_CAP - 1)
            pipe.execute()

    def events(self, sid: str, n: int = 10) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.r.lrange(keys.sweep_events(sid), 0, n - 1)]

    def _rq_job_fields(self, sid: str, rid: str) -> list[Any]:
        """rq's own hash for the run's job, as field/value pairs (rq lays it out; a script writes it)."""
        job = Job.create(
            FUNC_NAME,
            kwargs={"run_id": rid},
            id=rid,
            origin=keys.rq_queue_name(sid),
            connection=self.r,
            serializer=JSONSerializer,
            timeout=-1,
            result_ttl=-1,
            description=f"sweepd run {rid} of sweep {sid}",
        )
        fields: list[Any] = []
        for name, value in job.to_dict().items():
            fields += [name, value.value if isinstance(value, Enum) else value]
        return fields

    # what runs report -----------------------------------------------------------------------------

    def log_metrics(self, sid: str, rid: str, row: dict[str, Any]) -> None:
        """Append a metric row to the run's history and summary; note when the target is reached."""
        encoded: dict[Any, Any] = {k: json.dumps(v) for k, v in row.items()}
        with self.r.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.run_history(rid), json.dumps(row))
            pipe.ltrim(keys.run_history(rid), -HISTORY_CAP, -1)
            if encoded:
                pipe.hset(keys.run_summary(rid), mapping=encoded)
            pipe.execute()
        metric = self.config(sid).metric
        value = row.get(metric.name) if metric else None
        if metric and isinstance(value, (int, float)) and metric.reached(float(value)):
            self.r.hset(keys.sweep(sid), "target_reached", "1")

    def append_log(self, rid: str, attempt: int, lines: list[str]) -> None:
        if not lines:
            return
        key = keys.run_log(rid, attempt)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *lines)
            pipe.ltrim(key, -LOG_CAP, -1)
            pipe.execute()

    # reading --------------------------------------------------------------------------------------

    def run(self, rid: str) -> RunRecord:
        keys.check_id(rid, "run id")
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.run(rid))
            pipe.hgetall(keys.run_summary(rid))
            raw, summary = pipe.execute()
        if not raw:
            raise NotFound(f"no run {rid!r} in this Redis")
        return RunRecord.decode(raw, summary)

    def runs(self, sid: str) -> list[RunRecord]:
        """The sweep's runs in creation order."""
        self.sweep(sid)
        ids = _strs(self.r.zrange(keys.sweep_runs(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hgetall(keys.run(rid))
                pipe.hgetall(keys.run_summary(rid))
            raw = pipe.execute()
        return [RunRecord.decode(raw[i], raw[i + 1]) for i in range(0, len(raw), 2) if raw[i]]

    def logs(self, rid: str, attempt: int | None = None) -> list[str]:
        record = self.run(rid)
        attempts = [attempt] if attempt else range(1, record.attempt + 1)
        out: list[str] = []
        for a in attempts:
            out += _strs(self.r.lrange(keys.run_log(rid, a), 0, -1))
        return out

    def queued_ids(self, sid: str) -> list[str]:
        return _strs(self.r.lrange(keys.rq_queue(sid), 0, -1))

    def held_count(self, sid: str) -> int:
        return int(self.r.zcard(keys.sweep_held(sid)))

    def generation_done(self, sid: str) -> bool:
        """True when the search will make no new run: exhausted, capped, target reached, not running."""
        sweep, config = self.sweep(sid), self.config(sid)
        if sweep.state != "running" or sweep.target_reached:
            return True
        if config.run_cap is not None and self.r.zcard(keys.sweep_runs(sid)) >= config.run_cap:
            return True
        return search.exhausted(config, sweep.next_index)

    def is_complete(self, sid: str) -> bool:
        """Nothing queued, nothing left to generate, and no run held anywhere (it may come back)."""
        return self.r.llen(keys.rq_queue(sid)) == 0 and self.held_count(sid) == 0 and self.generation_done(sid)

    def wait_for_work(self, sid: str, timeout_s: float) -> None:
        """Block until something may have changed for the sweep (a requeue, a run's end) or timeout."""
        self.r.blpop([keys.sweep_wake(sid)], timeout=timeout_s)

    # agents ---------------------------------------------------------------------------------------

    def agent_beat(self, sid: str, aid: str, info: dict[str, Any], ttl_s: float) -> None:
        """Say this agent is alive (its hash expires when it goes silent)."""
        now_ms = int(time.time() * 1000)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.agent(aid), mapping={**{k: str(v) for k, v in info.items()}, "heartbeat_at": now_ms})
            pipe.expire(keys.agent(aid), max(1, int(ttl_s + 0.999)))
            pipe.zadd(keys.sweep_agents(sid), {aid: now_ms})
            pipe.execute()

    def agent_gone(self, sid: str, aid: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(keys.agent(aid))
            pipe.zrem(keys.sweep_agents(sid), aid)
            pipe.execute()

    def agents(self, sid: str) -> list[dict[str, str]]:
        """The sweep's agents whose hash has not expired (alive), most recent heartbeat first."""
        ids = _strs(self.r.zrevrange(keys.sweep_agents(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for aid in ids:
                pipe.hgetall(keys.agent(aid))
            raw = pipe.execute()
        return [
            {"id": aid, **{k.decode(): v.decode() for k, v in h.items()}} for aid, h in zip(ids, raw, strict=False) if h
        ]
