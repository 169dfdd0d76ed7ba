"""The pool-wide keys that keep an idle pool agent's cost flat in the number of sweeps: the index of
lease deadlines (``sweepd:pool:<pool>:held``, what pool_leases.lua reads) and the pool's ``:gen``
(a look that found no work is not repeated until it changes)."""

from __future__ import annotations

import time

import redis
from test_pools import grid, make, take

from sweepd.queue import keys
from sweepd.queue.pools import Quiet
from sweepd.queue.records import Claim
from sweepd.queue.store import Store


def index(r: redis.Redis, pool: str = "p") -> dict[str, float]:
    return {k.decode(): v for k, v in r.zrange(keys.pool_held(pool), 0, -1, withscores=True)}


def truth(r: redis.Redis, *sids: str) -> dict[str, float]:
    """Each sweep's earliest lease, read from its own held set."""
    out = {}
    for sid in sids:
        first = r.zrange(keys.sweep_held(sid), 0, 0, withscores=True)
        if first:
            out[sid] = first[0][1]
    return out


def test_the_index_follows_every_script_that_writes_a_held_set(store: Store, r: redis.Redis) -> None:
    a, b = make(store, grid(4)), make(store, grid(4))
    claims = [take(store) for _ in range(4)]  # claim_pool names the sweeps, create.lua holds
    assert all(isinstance(c, Claim) for c in claims) and index(r) == truth(r, a, b) and len(index(r)) == 2
    first = claims[0]
    assert first is not None
    store.renew(first, 60)  # renew.lua: its deadline moves on
    assert index(r) == truth(r, a, b)
    store.requeue(first, reason="preempted")  # requeue.lua
    assert index(r) == truth(r, a, b)
    again = take(store)  # claim_pool.lua: the prelude's claim_head
    assert again is not None and again.run_id == first.run_id and index(r) == truth(r, a, b)
    for c in [again, *claims[1:]]:
        assert c is not None and store.complete(c, "finished", 0, "exit-0")  # complete.lua
    assert index(r) == {} == truth(r, a, b)
    c = store.claim(a, "ag2", 30) or take(store)
    assert c is not None
    r.zadd(keys.sweep_held(c.sweep_id), {c.run_id: 1})  # a lapsed lease (its index entry is later)
    leases = store.pool_leases("p", 30, 20)
    assert leases.lapsed == [] and leases.earliest is not None  # the index is what is read
    assert store.reap(c.sweep_id) == [c.run_id]  # reap.lua
    assert index(r) == {} == truth(r, a, b)


def test_a_lapsed_lease_is_found_through_the_index(store: Store, r: redis.Redis) -> None:
    a, b = make(store, grid(2)), make(store, grid(2))
    held = [take(store) for _ in range(2)]
    assert all(held)
    lapsing = held[0]
    assert lapsing is not None
    store.renew(lapsing, 0.01)  # its lease ends now: the index holds that deadline
    deadline = time.monotonic() + 5
    while not (leases := store.pool_leases("p", 30, 20)).lapsed and time.monotonic() < deadline:
        time.sleep(0.001)
    assert leases.lapsed == [lapsing.sweep_id] and leases.earliest is not None  # the other's lease
    assert {a, b} == set(index(r))


def test_a_sweep_leaving_a_pool_leaves_its_index(store: Store, r: redis.Redis) -> None:
    a = make(store, grid(3))
    assert take(store) is not None and set(index(r)) == {a}
    store.set_pool(a, pool="q")
    assert index(r, "p") == {} and set(index(r, "q")) == {a}


def test_a_quiet_look_reads_nothing_until_the_pool_changes(store: Store, r: redis.Redis) -> None:
    a = make(store, grid(1))
    c = take(store)
    assert c is not None
    quiet = store.pool_claim("p", "ag", 30)
    assert isinstance(quiet, Quiet)
    r.hset(keys.sweep(a), "points", "5")  # a hand edit gives work, but the pool did not change
    assert store.pool_claim("p", "ag", 30, since=quiet.gen) == quiet
    assert store.pool_claim("p", "ag", 30) == a  # a full look sees it
    r.hset(keys.sweep(a), "points", "1")
    assert store.requeue(c, reason="preempted")  # a token: the pool changed
    got = store.pool_claim("p", "ag", 30, since=quiet.gen)
    assert isinstance(got, Claim) and got.run_id == c.run_id
    after = store.pool_claim("p", "ag", 30)
    assert isinstance(after, Quiet) and after.gen != quiet.gen
    b = make(store, grid(1))  # a sweep joining: pool_set
    assert store.pool_claim("p", "ag", 30, since=after.gen) == b
