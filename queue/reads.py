"""Reading sweepd's records: what ``status``, ``runs``, ``logs`` and the agents' loop look at.

Plain reads, no script: each answer is a snapshot. ``Store`` (store.py) adds the writes.
"""

from __future__ import annotations

import math
from typing import Any

import redis

from . import bounds, keys, lineage, search, sentinel
from .config import validate
from .errors import NotFound
from .records import RunRecord, SweepRecord
from .search import asha, hyperband
from .space import SweepConfig
from .summary import metric_value

#: Sweep states. running: runs are handed out; paused: none are, agents wait; stopped: none are,
#: running runs finish; cancelled: running runs are stopped too.
SWEEP_STATES = ("running", "paused", "stopped", "cancelled")


def strs(items: Any) -> list[str]:
    """Decode a list reply (redis-py types replies loosely: they are bytes here)."""
    return [item.decode(errors="replace") for item in items]


class Reads:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._configs: dict[str, SweepConfig] = {}

    # the server ---------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Redis's clock (``TIME``), the one run times are written on: ages and ETAs use it."""
        seconds, micros = self.r.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def call_timeout(self) -> float:
        """The client's socket timeout (seconds): a blocking read must return before it."""
        return float(self.r.connection_pool.connection_kwargs.get("socket_timeout") or 10.0)

    def failover_check(self, heartbeat_s: float) -> str | None:
        """Behind Sentinel: one line when a failover could outlast what a held run survives at this
        heartbeat (``sentinel.failover_warning``), from the sentinels' own setting; else None."""
        found = sentinel.down_after_ms(self.r)
        return None if found is None else sentinel.failover_warning(*found, heartbeat_s)

    # sweeps -------------------------------------------------------------------------------------

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
        return strs(self.r.zrange(keys.SWEEPS, 0, -1))

    def events(self, sid: str, n: int = 10) -> list[dict[str, Any]]:
        """The sweep's newest events; one not shaped as the scripts write them (by hand) is left out."""
        events = (bounds.load(e) for e in self.r.lrange(keys.sweep_events(sid), 0, n - 1))
        return [e for e in events if isinstance(e, dict) and _is_event(e)]

    def preview(self, sid: str, n: int) -> list[dict[str, Any]]:
        """The next ``n`` points the sweep's search would create, creating nothing (each counts
        the ones before it as pending, as racing agents would). Fewer when the search runs out."""
        config, sweep = self.config(sid), self.sweep(sid)
        history = list(self.observations(sid)) if config.method == "bayes" else []
        out: list[dict[str, Any]] = []
        cap, made = search.cap(config), int(self.r.zcard(keys.sweep_runs(sid))) - sweep.pbt_runs
        for i in range(n):
            if cap is not None and made + i >= cap:
                break
            params = search.suggest(config, sweep.seed, sweep.next_index + i, history)
            if params is None:
                break
            out.append(params)
            history.append(search.Observation(params, None, "queued"))
        return out

    def observations(self, sid: str) -> list[search.Observation]:
        """Every run's point, metric value and state: what a model-based search learns from."""
        config = self.config(sid)
        return [search.Observation(run.params, metric_value(config, run), run.state) for run in self.runs(sid)]

    # runs ---------------------------------------------------------------------------------------

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
        ids = strs(self.r.zrange(keys.sweep_runs(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hgetall(keys.run(rid))
                pipe.hgetall(keys.run_summary(rid))
            raw = pipe.execute()
        records = [RunRecord.decode(raw[i], raw[i + 1]) for i in range(0, len(raw), 2) if raw[i]]
        return lineage.members(records) if self.config(sid).method == "pbt" else records

    def curves(self, sid: str, upto: int) -> dict[str, hyperband.RunCurve]:
        """Every run's state and its first ``upto`` values of the sweep's metric: what hyperband
        judges. One pipelined read for the whole sweep."""
        ids = strs(self.r.zrange(keys.sweep_runs(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hget(keys.run(rid), "state")
                pipe.lrange(keys.run_curve(rid), 0, upto - 1)
            raw = pipe.execute()
        return {
            rid: hyperband.RunCurve((raw[2 * i] or b"").decode(), [_curve_value(v) for v in raw[2 * i + 1]])
            for i, rid in enumerate(ids)
        }

    def rung_of(self, rid: str) -> int | None:
        """The ASHA rung a run was last paused at (None: never paused)."""
        value: Any = self.r.hget(keys.run(rid), "rung")
        return int(value) if value not in (None, b"") else None

    def curve_length(self, rid: str) -> int:
        """How many values of the sweep's metric the run has logged (hyperband's iterations)."""
        return int(self.r.llen(keys.run_curve(rid)))

    def curve(self, rid: str) -> list[float]:
        """The run's values of the sweep's metric, in logging order."""
        return [_curve_value(v) for v in self.r.lrange(keys.run_curve(rid), 0, -1)]

    def quick_marks(self, rid: str) -> int:
        """How many attempts in a row the run marked itself preempting and exited at once."""
        raw = self.r.hget(keys.run(rid), "quick_marks")
        try:
            return int(raw) if raw else 0
        except ValueError:
            return 0

    def history(self, rid: str) -> list[dict[str, Any]]:
        rows = (bounds.load(row) for row in self.r.lrange(keys.run_history(rid), 0, -1))
        return [row for row in rows if isinstance(row, dict)]

    def logs(self, rid: str, attempt: int | None = None) -> list[str]:
        record = self.run(rid)
        # Only the newest attempts' output is kept (bounds.KEPT_ATTEMPTS; claim.lua deletes older).
        first = max(1, record.attempt - bounds.KEPT_ATTEMPTS + 1)
        attempts = [attempt] if attempt else range(first, record.attempt + 1)
        out: list[str] = []
        for a in attempts:
            out += strs(self.r.lrange(keys.run_log(rid, a), 0, -1))
        return out

    # the queue and completion -------------------------------------------------------------------

    def queued_ids(self, sid: str) -> list[str]:
        return strs(self.r.lrange(keys.rq_queue(sid), 0, -1))

    def held_count(self, sid: str) -> int:
        return int(self.r.zcard(keys.sweep_held(sid)))

    def generation_done(self, sid: str, sweep: SweepRecord | None = None) -> bool:
        """True when the search will make no new run: exhausted, capped, target reached, not running.
        ``sweep``: the record, when the caller has just read it."""
        sweep, config = sweep or self.sweep(sid), self.config(sid)
        if sweep.state != "running" or sweep.target_reached:
            return True
        cap = search.cap(config)
        if cap is not None and self.r.zcard(keys.sweep_runs(sid)) - sweep.pbt_runs >= cap:
            return True
        return search.exhausted(config, sweep.next_index)

    def is_complete(self, sid: str) -> bool:
        """No run held anywhere (it may come back) and nothing more to do: for a running sweep,
        nothing queued and nothing left to generate; a stopped or cancelled sweep hands out nothing
        more; a paused one is never complete (it may resume)."""
        sweep = self.sweep(sid)
        if sweep.state == "paused" or self.held_count(sid):
            return False
        if sweep.state in ("stopped", "cancelled"):
            return True
        done = self.r.llen(keys.rq_queue(sid)) == 0 and self.generation_done(sid, sweep)
        return done and self.promotable(sid) is None  # a paused run ASHA can still promote is work

    def promotable(self, sid: str) -> tuple[str, int] | None:
        """The paused run ASHA promotes next and its rung (search/asha.py), or None (also without asha)."""
        config = self.config(sid)
        et, metric = config.early_terminate, config.metric
        if et is None or et.type != "asha" or metric is None:
            return None
        ids = strs(self.r.zrange(keys.sweep_runs(sid), 0, -1))
        with self.r.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hmget(keys.run(rid), ["state", "rung"])
                pipe.lrange(keys.run_curve(rid), 0, int(et.max_iter or 0) - 1)
            raw = pipe.execute()
        runs = {}
        for i, rid in enumerate(ids):
            state, rung = raw[2 * i]
            runs[rid] = asha.RunRung(
                (state or b"").decode(), int(rung) if rung else None, [float(v) for v in raw[2 * i + 1]]
            )
        return asha.to_promote(et, metric.goal, runs)

    # change markers -----------------------------------------------------------------------------

    def change_marker(self, sid: str) -> str:
        """A cheap fingerprint of what a dashboard shows of the sweep: it differs whenever a run is
        created, claimed, ends, is requeued or logs a row, the queue or the sweep's state moves, or
        an event or an agent appears. Two round trips, ``8 + 4 * held`` commands, whatever the size
        of the sweep: a live view polls this and re-reads the sweep only when it changes."""
        keys.check_id(sid, "sweep id")
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.sweep(sid), ["state", "next_index", "target_reached"])
            pipe.zcard(keys.sweep_runs(sid))
            pipe.zrange(keys.sweep_held(sid), 0, -1)
            pipe.llen(keys.rq_queue(sid))
            pipe.lrange(keys.rq_queue(sid), 0, 0)
            pipe.lindex(keys.sweep_events(sid), 0)
            pipe.zcard(keys.sweep_agents(sid))
            pipe.llen(keys.sweep_events(sid))
            top = pipe.execute()
        held = strs(top[2])
        with self.r.pipeline(transaction=False) as pipe:
            for rid in held:
                pipe.hmget(keys.run(rid), ["state", "attempt", "stop_requested", "requeue_requested"])
                pipe.llen(keys.run_history(rid))
                pipe.hget(keys.run_summary(rid), "_step")
                pipe.llen(keys.run_curve(rid))
            per_run = pipe.execute() if held else []
        return repr((top, per_run))

    # agents -------------------------------------------------------------------------------------

    def agents_seen(self, sid: str) -> list[tuple[str, int]]:
        """Every agent the sweep has seen, live or silent, with its last heartbeat (ms)."""
        seen: Any = self.r.zrange(keys.sweep_agents(sid), 0, -1, withscores=True)
        return [(aid.decode(), int(score)) for aid, score in seen]

    def agents(self, sid: str) -> list[dict[str, str]]:
        """The sweep's agents whose hash has not expired (alive), most recent heartbeat first.
        ``heartbeat_at`` is the sweep's ``:agents`` score: an idle agent's heartbeat refreshes that
        and its record's TTL, and rewrites the record only when a field changes (presence.py)."""
        seen = self.agents_seen(sid)[::-1]
        with self.r.pipeline(transaction=False) as pipe:
            for aid, _ in seen:
                pipe.hgetall(keys.agent(aid))
            raw = pipe.execute()
        return [
            {"id": aid, **{k.decode(): v.decode() for k, v in h.items()}, "heartbeat_at": str(beat)}
            for (aid, beat), h in zip(seen, raw, strict=True)
            if h
        ]


def _curve_value(raw: bytes | str) -> float:
    """A curve's stored value; what is no finite number (written by hand) reads as NaN, which
    hyperband skips as it skips a run's NaN (W&B's filter_invalid)."""
    value = bounds.number(raw)
    return math.nan if value is None else value


def _is_event(event: dict[str, Any]) -> bool:
    at = event.get("at")
    return (
        isinstance(at, int)
        and not isinstance(at, bool)
        and isinstance(event.get("event"), str)
        and isinstance(event.get("run_id"), str)
    )
