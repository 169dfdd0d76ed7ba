"""Reaping, operators' commands and sweep states against a real Redis: atomic and idempotent."""

from __future__ import annotations

import threading

import redis

from support import race
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

GRID = {"method": "grid", "program": "p.py", "parameters": {"a": {"values": list(range(12))}}}


def held(store: Store, sid: str, n: int) -> list[Claim]:
    claims = [store.create_next(sid, f"agent-{i}", 30) for i in range(n)]
    assert all(isinstance(c, Claim) for c in claims)
    return claims  # type: ignore[return-value]


def test_many_reapers_requeue_each_expired_run_exactly_once(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claims = held(store, sid, 10)
    live = claims[0]
    r.zadd(keys.sweep_held(sid), {c.run_id: 1 for c in claims[1:]})  # nine leases expired long ago
    reaped: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def reaper(_: int) -> None:
        own = Store(redis.Redis(connection_pool=r.connection_pool))
        start.wait()
        got = own.reap(sid)
        with lock:
            reaped.extend(got)

    race(8, reaper)
    expected = {c.run_id for c in claims[1:]}
    assert sorted(reaped) == sorted(expected)  # each once, across all reapers
    assert set(store.queued_ids(sid)) == expected and len(store.queued_ids(sid)) == 9
    assert all(store.run(rid).requeues == 1 and store.run(rid).reason == "lease-expired" for rid in expected)
    assert store.renew(live, 30) == "ok" and store.held_count(sid) == 1
    assert store.renew(claims[1], 30) == "fenced"  # the old holder learns at its next heartbeat


def test_stopping_runs_by_hand(store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    running, queued = held(store, sid, 2)
    assert store.requeue(queued, reason="test")
    assert store.operate(queued.run_id, "stop") == "stopped"
    assert store.run(queued.run_id).state == "stopped" and store.queued_ids(sid) == []
    assert store.operate(queued.run_id, "stop") == "unchanged"  # idempotent
    assert store.operate(running.run_id, "stop") == "requested"
    assert store.run(running.run_id).state == "running"  # never moved from under its holder
    assert store.renew(running, 30) == "stop"
    assert store.operate(running.run_id, "stop") == "requested"
    assert store.complete(running, "stopped", -15, "operator-stop")
    assert store.operate(running.run_id, "stop") == "unchanged"


def test_requeueing_runs_by_hand(store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    running, done = held(store, sid, 2)
    assert store.complete(done, "failed", 1, "exit-1")
    assert store.operate(done.run_id, "requeue") == "requeued"  # re-run a failed grid point
    assert store.operate(done.run_id, "requeue") == "unchanged"
    assert store.operate(running.run_id, "requeue") == "requested"
    assert store.renew(running, 30) == "requeue"
    assert store.requeue(running, reason="operator-requeue")
    assert store.queued_ids(sid) == [running.run_id, done.run_id]
    again = store.claim(sid, "x", 30)
    assert again is not None and (again.run_id, again.attempt) == (running.run_id, 2)


def test_sweep_states(store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    (running,) = held(store, sid, 1)
    assert store.control(sid, "paused") == "running"
    assert store.control(sid, "paused") == "paused"  # idempotent
    assert store.create_next(sid, "a", 30) == "paused" and store.claim(sid, "a", 30) is None
    assert not store.is_complete(sid)  # paused: agents wait
    store.control(sid, "running")
    queued = store.create_next(sid, "a", 30)
    assert isinstance(queued, Claim) and store.requeue(queued, reason="test")
    store.control(sid, "stopped")
    assert store.claim(sid, "a", 30) is None and not store.is_complete(sid)  # a run is still held
    assert store.renew(running, 30) == "ok"  # stop lets running runs finish
    store.control(sid, "cancelled")
    assert store.run(queued.run_id).state == "stopped" and store.queued_ids(sid) == []
    assert store.renew(running, 30) == "cancel"
    assert store.complete(running, "stopped", -15, "sweep-cancelled")
    assert store.is_complete(sid)
