"""The atomic steps against a real Redis: claim, create, complete, requeue, renew."""

from __future__ import annotations

import itertools
import json
import threading
import zlib

import redis
from rq import Queue

from support import race
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

GRID = {
    "method": "grid",
    "program": "train.py",
    "parameters": {
        "a": {"values": [1, 2, 3, 4]},
        "b": {"values": ["x", "y"]},
        "c": {"values": [0.1, 0.2, 0.3]},
    },
}


def make(store: Store, raw: dict[str, object]) -> str:
    return store.create_sweep(validate(raw))


def test_threads_racing_on_a_grid_create_every_point_exactly_once(r: redis.Redis, store: Store) -> None:
    sid = make(store, GRID)
    made: list[Claim] = []
    lock = threading.Lock()

    def agent(n: int) -> None:
        own = Store(redis.Redis(connection_pool=r.connection_pool))
        while True:
            got = own.create_next(sid, f"agent-{n}", 30)
            if not isinstance(got, Claim):
                return
            with lock:
                made.append(got)

    race(8, agent)
    points = [(c.params["a"], c.params["b"], c.params["c"]) for c in made]
    assert len(points) == 24
    assert sorted(points) == sorted(itertools.product([1, 2, 3, 4], ["x", "y"], [0.1, 0.2, 0.3]))
    assert store.create_next(sid, "late", 30) == "exhausted"
    assert store.held_count(sid) == 24


def test_run_cap_holds_with_threads_racing(r: redis.Redis, store: Store) -> None:
    sid = make(store, {"method": "random", "run_cap": 7, "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    results: list[object] = []

    def agent(_: int) -> None:
        own = Store(redis.Redis(connection_pool=r.connection_pool))
        while isinstance(got := own.create_next(sid, "a", 30), Claim):
            results.append(got)
        results.append(got)

    race(6, agent)
    assert sum(isinstance(x, Claim) for x in results) == 7
    assert r.zcard(keys.sweep_runs(sid)) == 7
    assert store.generation_done(sid)


def test_random_points_are_reproducible_from_the_stored_seed(store: Store) -> None:
    raw = {"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}, "n": {"min": 1, "max": 9}}}
    first = [store.create_next(make_seeded(store, raw, 42), "a", 30) for _ in range(1)]
    second = [store.create_next(make_seeded(store, raw, 42), "a", 30) for _ in range(1)]
    assert [c.params for c in first] == [c.params for c in second]  # type: ignore[union-attr]


def make_seeded(store: Store, raw: dict[str, object], seed: int) -> str:
    return store.create_sweep(validate(raw), seed=seed)


def test_requeue_puts_the_run_at_the_front_of_the_rq_queue(r: redis.Redis, store: Store) -> None:
    sid = make(store, GRID)
    a = store.create_next(sid, "ag", 30)
    b = store.create_next(sid, "ag", 30)
    assert isinstance(a, Claim) and isinstance(b, Claim)
    assert store.requeue(a, reason="test", front=False)
    assert store.requeue(b, reason="test", front=True)
    queue = Queue(keys.rq_queue_name(sid), connection=r)
    assert queue.job_ids == [b.run_id, a.run_id]  # rq sees the queue, head first
    assert not store.requeue(b, reason="again")  # already queued: nothing changes
    assert store.operate(b.run_id, "requeue") == "unchanged"
    again = store.claim(sid, "other", 30)
    assert again is not None and again.run_id == b.run_id and again.attempt == 2
    assert again.params == b.params and again.token != b.token


def test_the_rq_job_is_json_and_names_only_the_refusing_function(r: redis.Redis, store: Store) -> None:
    sid = make(store, GRID)
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim)
    data = r.hget(keys.rq_job(claim.run_id), "data")
    assert data is not None
    func_name, _instance, _args, kwargs = json.loads(zlib.decompress(data))
    assert func_name == "sweepd.queue.jobs.agent_only" and kwargs == {"run_id": claim.run_id}


def test_a_stale_token_cannot_complete_renew_requeue_or_log(r: redis.Redis, store: Store) -> None:
    sid = make(store, GRID)
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim)
    r.zadd(keys.sweep_held(sid), {claim.run_id: 0})  # its lease expired
    assert store.reap(sid) == [claim.run_id]
    newer = store.claim(sid, "other", 30)
    assert newer is not None
    assert not store.complete(claim, "finished", 0, "exit-0")
    assert store.renew(claim, 30) == "fenced"
    assert not store.requeue(claim, reason="stale")
    assert not store.log_metrics(claim, [{"loss": 1.0}])
    assert store.complete(newer, "finished", 0, "exit-0")
    assert store.run(claim.run_id).state == "finished"


def test_complete_records_state_exit_code_and_releases_the_hold(store: Store) -> None:
    sid = make(store, GRID)
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim)
    assert store.complete(claim, "failed", 3, "exit-3")
    run = store.run(claim.run_id)
    assert (run.state, run.exit_code, run.attempt) == ("failed", 3, 1)
    assert store.held_count(sid) == 0


def test_a_queued_run_goes_before_a_new_one_when_the_search_is_asked_first(store: Store) -> None:
    """The agent asks the search first after a run it made (no claim.lua on an empty queue):
    create.lua must then refuse while a run is queued."""
    sid = make(store, GRID)
    first = store.create_next(sid, "a", 30)
    assert isinstance(first, Claim)
    assert store.requeue(first, reason="signal")
    assert store.create_next(sid, "b", 30, unless_queued=True) == "queued"
    claim = store.claim(sid, "b", 30)
    assert claim is not None and claim.run_id == first.run_id
    made = store.create_next(sid, "b", 30, unless_queued=True)
    assert isinstance(made, Claim) and made.params != first.params


def test_a_stale_next_point_costs_a_retry_never_a_repeat(r: redis.Redis, store: Store) -> None:
    """Each Store remembers the next search point it expects; another agent moving it on is
    answered 'moved:<next_index>', and the point taken is the one after."""
    sid = make(store, GRID)
    other = Store(redis.Redis(connection_pool=r.connection_pool))
    taken = [store.create_next(sid, "a", 30), other.create_next(sid, "b", 30), store.create_next(sid, "a", 30)]
    assert all(isinstance(c, Claim) for c in taken)
    assert [store.run(c.run_id).index for c in taken if isinstance(c, Claim)] == [0, 1, 2]
