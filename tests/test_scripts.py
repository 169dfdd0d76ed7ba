"""The Lua scripts against a real Redis: every one runs behind the shared prelude, and what belongs
to a move (the requeue's event, the sweep's target_reached) is written by that move's own script."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
import redis

from sweepd.queue import keys, runs
from sweepd.queue.bounds import KEPT_ATTEMPTS
from sweepd.queue.config import validate
from sweepd.queue.population import NextRun
from sweepd.queue.records import Claim
from sweepd.queue.resume import Rule
from sweepd.queue.store import PRELUDE, Store, script_source

SCRIPTS = resources.files("sweepd.queue.scripts")
NAMES = sorted(p.name[: -len(".lua")] for p in SCRIPTS.iterdir() if p.name.endswith(".lua") and p.name != "prelude.lua")
GRID = {"method": "grid", "parameters": {"a": {"values": list(range(10))}}}


def lua(name: str) -> str:
    return SCRIPTS.joinpath(f"{name}.lua").read_text()


def held(store: Store, sid: str) -> Claim:
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim)
    return claim


def redis_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def events(r: redis.Redis, sid: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in r.lrange(keys.sweep_events(sid), 0, -1)]


# the prelude ------------------------------------------------------------------------------------


def test_every_script_is_registered_as_the_prelude_then_itself_and_compiles(r: redis.Redis, store: Store) -> None:
    assert set(store._scripts) == set(NAMES)  # no script in the folder is left unloaded
    for name in NAMES:
        source = store._scripts[name].script
        # the bounds the prelude uses come from queue/bounds.py, written once
        assert source == script_source(name) == f"local KEPT_ATTEMPTS = {KEPT_ATTEMPTS}\n{lua(PRELUDE)}\n{lua(name)}"
        assert r.script_load(source) == store._scripts[name].sha, name  # Redis compiles it
    with pytest.raises(ValueError):
        script_source(PRELUDE)


def test_the_shared_steps_are_written_once_in_the_prelude() -> None:
    shared = ("redis.call('TIME')", "n + 63)", "0, 99)", "cjson.encode", "'status', 'queued'")
    for name in NAMES:
        for text in shared:
            assert text not in lua(name), (name, text)
    assert all(text in lua(PRELUDE) for text in shared)


def test_every_script_runs_behind_the_prelude(r: redis.Redis, store: Store) -> None:
    """One pass through the lifecycle that calls every script and each prelude function."""
    ran: list[str] = []
    run_script = store.core.run

    def recording(name: str, keys_: list[str], args: list[Any]) -> Any:
        ran.append(name)
        return run_script(name, keys_, args)

    store.core.run = recording  # type: ignore[method-assign]
    sid = store.create_sweep(validate(GRID))
    a, b = held(store, sid), held(store, sid)  # create: now_ms
    assert store.renew(a, 30) == "ok"
    assert store.commit_checkpoint(a, "s1", 1, 1, keep=2) == []  # checkpoint: now_ms
    assert store.log_metrics(a, [{"loss": 1.0}])
    assert store.mark_preempting(a, "signal")
    assert store.requeue(a, reason="signal", event=True)  # requeue_run (held), wake, add_event
    again = store.claim(sid, "ag2", 30)  # claim: add_event (resumed)
    assert again is not None and again.run_id == a.run_id
    assert store.complete(again, "failed", 1, "exit-1")  # complete: wake
    c = held(store, sid)
    assert store.pause(c, 0) and store.run(c.run_id).state == "paused"  # pause: wake, wake_if_done
    assert store.promote(sid, c.run_id, 1, "ag3", 30) is None  # not paused at that rung
    promoted = store.promote(sid, c.run_id, 0, "ag3", 30)
    assert store.promote(sid, c.run_id, 0, "ag4", 30) is None  # promoted once, however many agents race
    assert promoted is not None and promoted.attempt == 2 and store.complete(promoted, "finished", 0, "exit-0")
    assert store.operate(a.run_id, "requeue") == "requeued"  # requeue_run (terminal)
    r.zadd(keys.sweep_held(sid), {b.run_id: 1})
    assert store.reap(sid) == [b.run_id]  # requeue_run (held), add_event, wake
    assert store.enqueue(sid, "new1", Rule("refuse", "create"), {"a": 0}, front=False, spelled="x").result == "created"
    started = store.begin("hand1", runs.MANUAL_SWEEP, Rule("resume", "create"), {}, "me", "t1", 30, spelled="x")
    assert started.created
    assert store.set_pool(sid, pool="p", priority=1) == "p"  # pool_set: wake_all_list
    assert isinstance(store.pool_claim("p", "ag3", 30), Claim)  # claim_pool: claim_head (a queued run)
    assert store.pool_leases("p", 30, 20).earliest is not None  # pool_leases
    d = held(store, sid)
    assert store.standing(d, 0, 10, 0.5, 2) == {0: (0.5, d.run_id)}  # pbt_standing
    nxt = NextRun("pbtnext1", {"a": 1}, {"member": 0, "generation": 1, "parent": d.run_id}, 10)
    assert store.decide(d, 0, 10, {"exploit": True}, nxt) == "ok"  # pbt_decide: push_run, wake
    assert store.decide(d, 0, 10, {"exploit": False}, None) == 'decided:{"exploit": true}'
    assert store.run("pbtnext1").state == "queued" and store.sweep(sid).pbt_runs == 1
    assert store.control(sid, "paused") == "running"  # wake_all
    assert set(ran) == set(NAMES)
    assert r.llen(keys.sweep_wake(sid)) <= 128  # wake_all: one per agent seen (at least 64), + 64
    kinds = [(e["event"], e["run_id"]) for e in events(r, sid)]
    assert kinds == [("resumed", b.run_id), ("requeued", b.run_id), ("resumed", a.run_id), ("requeued", a.run_id)]


# requeue's event ----------------------------------------------------------------------------------


def test_requeue_with_event_writes_one_requeued_event_in_the_same_step(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    before = redis_ms(r)
    assert store.requeue(claim, reason="aws-notice", event=True)
    got = events(r, sid)
    assert len(got) == 1
    event = got[0]
    assert {k: v for k, v in event.items() if k != "at"} == {
        "event": "requeued",
        "run_id": claim.run_id,
        "attempt": 1,
        "reason": "aws-notice",
    }
    assert before <= event["at"] <= redis_ms(r)  # Redis-clock ms
    # the same TIME as the requeue itself (a run not preempting is interrupted at the requeue)
    assert int(r.hget(keys.run(claim.run_id), "interrupted_at") or 0) == event["at"]
    assert not store.requeue(claim, reason="aws-notice", event=True)  # queued already: no second event
    assert len(events(r, sid)) == 1


def test_requeue_carries_the_attempt_of_the_run(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    store.requeue(held(store, sid), reason="retry")
    second = store.claim(sid, "ag", 30)
    assert second is not None and second.attempt == 2
    assert store.requeue(second, reason="signal", front=False, event=True)
    requeued = [(e["attempt"], e["reason"]) for e in events(r, sid) if e["event"] == "requeued"]
    assert requeued == [(2, "signal")]  # the retry's requeue (event False) wrote none


def test_requeue_without_event_writes_none(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    assert store.requeue(held(store, sid), reason="retry")
    assert store.requeue(held(store, sid), reason="retry", event=False)
    assert r.llen(keys.sweep_events(sid)) == 0


def test_a_fenced_requeue_writes_no_event(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    r.zadd(keys.sweep_held(sid), {claim.run_id: 1})
    assert store.reap(sid) == [claim.run_id]
    newer = store.claim(sid, "other", 30)
    assert newer is not None
    r.delete(keys.sweep_events(sid))
    assert not store.requeue(claim, reason="signal", event=True)  # stale token
    assert r.llen(keys.sweep_events(sid)) == 0


def test_the_requeued_events_stay_capped_at_100(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate({"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}))
    claims = [held(store, sid) for _ in range(105)]
    for claim in claims:
        assert store.requeue(claim, reason="retry", event=True)
    assert [e["run_id"] for e in events(r, sid)] == [c.run_id for c in reversed(claims[5:])]  # newest first


# log's target_reached -------------------------------------------------------------------------------


def sweep_with_target(store: Store, goal: str, target: float) -> str:
    return store.create_sweep(
        validate({**GRID, "metric": {"name": "loss", "goal": goal, "target": target}}),
    )


def reached(r: redis.Redis, sid: str) -> bool:
    return r.hget(keys.sweep(sid), "target_reached") == b"1"


@pytest.mark.parametrize(
    ("goal", "target", "short", "hit"),
    [
        ("minimize", 0.5, 0.51, 0.5),  # the target itself counts (space.Metric.reached)
        ("minimize", 0.0, 1, 0),  # ints are numbers
        ("maximize", 0.5, 0.49, 0.5),
        ("maximize", 1.0, False, True),  # booleans as 0 and 1, as Python's check took them
    ],
)
def test_a_log_reaching_the_target_sets_target_reached(
    r: redis.Redis, store: Store, goal: str, target: float, short: object, hit: object
) -> None:
    sid = sweep_with_target(store, goal, target)
    claim = held(store, sid)
    assert store.log_metrics(claim, [{"loss": short}, {"loss": "n/a"}, {"loss": None}, {"other": hit}])
    assert not reached(r, sid)
    assert store.log_metrics(claim, [{"loss": short}, {"loss": hit}])
    assert reached(r, sid)
    assert store.sweep(sid).target_reached
    assert store.create_next(sid, "ag", 30) == "target"


def test_a_refused_log_does_not_set_target_reached(r: redis.Redis, store: Store) -> None:
    sid = sweep_with_target(store, "minimize", 0.5)
    claim = held(store, sid)
    r.zadd(keys.sweep_held(sid), {claim.run_id: 1})
    assert store.reap(sid) == [claim.run_id]
    newer = store.claim(sid, "other", 30)
    assert newer is not None
    assert not store.log_metrics(claim, [{"loss": 0.1}])  # stale token: nothing written
    assert not reached(r, sid)
    assert r.llen(keys.run_history(claim.run_id)) == 0
    assert store.log_metrics(newer, [{"loss": 0.9}])
    assert not reached(r, sid)


def test_without_a_target_a_log_never_sets_it(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate({**GRID, "metric": {"name": "loss", "goal": "minimize"}}))
    claim = held(store, sid)
    assert store.log_metrics(claim, [{"loss": -1e300}])
    assert not reached(r, sid)
    assert r.lrange(keys.run_curve(claim.run_id), 0, -1) == [b"-1e+300"]  # the curve as before


def test_summary_values_set_alone_reach_the_summary_but_not_the_history(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    assert store.log_metrics(claim, [{"loss": 1.0, "_step": 0}], summary={"best": 0.5})
    assert store.log_metrics(claim, [], summary={"best": 0.25})  # W&B's run.summary["best"] = ...
    assert r.llen(keys.run_history(claim.run_id)) == 1
    assert store.run(claim.run_id).summary == {"loss": 1.0, "_step": 0, "best": 0.25}


# Wake-up tokens: an idle agent looks at the queue only when one comes --------------------------------


def test_a_claim_that_leaves_runs_queued_passes_a_token_on(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    a, b = held(store, sid), held(store, sid)
    assert store.requeue(a, reason="signal") and store.requeue(b, reason="signal")
    r.delete(keys.sweep_wake(sid))
    assert store.claim(sid, "ag", 30) is not None  # one left queued: the next idle agent is woken
    assert r.llen(keys.sweep_wake(sid)) == 1
    assert store.claim(sid, "ag", 30) is not None  # none left: no token
    assert r.llen(keys.sweep_wake(sid)) == 1


def test_the_last_held_run_ending_wakes_every_agent_the_sweep_has_seen(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    for i in range(100):
        store.agent_beat(sid, f"ag{i}", {"host": "h"}, ttl_s=30)
    a, b = held(store, sid), held(store, sid)
    r.delete(keys.sweep_wake(sid))
    assert store.complete(a, "finished", 0, "exit-0")  # b still held: nobody needs waking
    assert r.llen(keys.sweep_wake(sid)) == 0
    assert store.complete(b, "finished", 0, "exit-0")  # nothing held or queued: each idle agent looks
    assert r.llen(keys.sweep_wake(sid)) == 100
    for _ in range(5):  # a wake with 64 tokens waiting adds none; wake_all always adds its own
        store.control(sid, "running")
    assert r.llen(keys.sweep_wake(sid)) == 164


def test_an_idle_beat_reads_the_earliest_lease_and_a_reap_the_next_one(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    store.agent_beat(sid, "ag", {"host": "h"}, ttl_s=30)
    assert store.idle_beat(sid, "ag", 30).earliest is None
    a = held(store, sid)
    beat = store.idle_beat(sid, "ag", 30, clock=True)
    assert beat.recorded and beat.now_ms is not None and beat.earliest is not None
    assert 0 < beat.earliest - beat.now_ms <= 30_000
    r.zadd(keys.sweep_held(sid), {a.run_id: 1})  # its lease lapsed
    b = held(store, sid)
    got = store.reap_due(sid)
    assert got.requeued == [a.run_id] and got.earliest == int(r.zscore(keys.sweep_held(sid), b.run_id) or 0)
    assert not store.idle_beat(sid, "gone", 30).recorded  # no record: the agent writes it again
    ttl = r.pttl(keys.agent("ag"))
    assert store.idle_beat(sid, "ag", 30, record=False).recorded  # every other beat: not looked at
    assert r.pttl(keys.agent("ag")) <= ttl and not r.exists(keys.agent("gone"))  # nor pushed on, nor made
