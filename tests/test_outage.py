"""A store that comes back from an outage (restart, failover, a freeze) costs the fleet time, not its
runs: a lease that lapsed while nobody of the sweep could write is not reaped until its holder has
had a heartbeat to renew or record its end (reap.lua, design.md "After an outage"); one that lapsed
with the store up is reaped at once, as always. The agents' side is below the scripts'.
"""

from __future__ import annotations

import redis

from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

GRID = {"method": "grid", "parameters": {"a": {"values": list(range(10))}}}
LEASE = 30.0  # seconds: a heartbeat of 10 s


def held(store: Store, sid: str) -> Claim:
    claim = store.create_next(sid, "ag", LEASE)
    assert isinstance(claim, Claim)
    assert store.renew(claim, LEASE) == "ok"  # the holder's heartbeat: lease_ms, the store is up
    return claim


def redis_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def silence(r: redis.Redis, sid: str, seconds: float) -> None:
    """As if nobody of the sweep could write for ``seconds``: the store's word that it is up has
    expired, and the last renewal or reap was that long ago."""
    r.delete(keys.sweep_up(sid))
    r.set(keys.sweep_seen(sid), redis_ms(r) - int(seconds * 1000))


def test_a_lease_that_lapsed_with_the_store_up_is_reaped_at_once(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 1})
    assert store.reap(sid) == [claim.run_id]


def test_a_lease_that_lapsed_in_an_outage_waits_a_heartbeat_and_its_holder_keeps_the_run(
    r: redis.Redis, store: Store
) -> None:
    sid = store.create_sweep(validate(GRID))
    claim, ended = held(store, sid), held(store, sid)
    silence(r, sid, 20)
    lapsed = redis_ms(r) - 5_000  # in the silence
    r.zadd(keys.sweep_held(sid), {claim.run_id: lapsed, ended.run_id: lapsed})
    got = store.reap_due(sid, heartbeat_s=1.0)
    assert got.requeued == [] and got.spared == 2
    # Each waits one heartbeat of its own holder (lease_ms / 3), from the store's return.
    assert got.earliest is not None and 9_000 <= got.earliest - got.now_ms <= 10_000
    assert store.reap(sid) == []  # every agent's reap sees the same
    assert store.renew(claim, LEASE) == "ok"  # a live holder keeps its run
    assert store.complete(ended, "finished", 0, "exit-0")  # and an ended one records its end
    assert store.run(ended.run_id).state == "finished"


def test_a_spared_lease_whose_holder_stays_silent_is_reaped_after_the_heartbeat(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    silence(r, sid, 20)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 5_000})
    assert store.reap_due(sid).spared == 1
    back = int(r.get(keys.sweep_up(sid)).split(b":")[1])  # type: ignore[union-attr]
    r.set(keys.sweep_up(sid), f"{redis_ms(r) - 20_000}:{back - 10_001}")  # a heartbeat has passed
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 1})
    assert store.reap(sid) == [claim.run_id]
    assert store.renew(claim, LEASE) == "fenced"


def test_a_lease_that_lapsed_before_the_silence_is_reaped_at_once(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    silence(r, sid, 20)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 25_000})  # its holder died before it
    assert store.reap(sid) == [claim.run_id]


def test_heartbeats_and_renewals_keep_the_store_up_and_a_silence_ends_it(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    assert not r.exists(keys.sweep_up(sid))
    claim = held(store, sid)  # no renewal or reap before: nothing to come back from
    assert r.get(keys.sweep_up(sid)).endswith(b":0")  # type: ignore[union-attr]
    assert 14_000 < r.pttl(keys.sweep_up(sid)) <= 15_000  # half the lease: 1.5 heartbeats
    r.pexpire(keys.sweep_up(sid), 100)
    store.idle_beat(sid, "ag", 3.0)  # an idle agent's heartbeat pushes it on (its own 1.5 heartbeats)
    assert 1_000 < r.pttl(keys.sweep_up(sid)) <= 1_500
    r.delete(keys.sweep_up(sid))
    store.idle_beat(sid, "ag", 3.0)
    assert not r.exists(keys.sweep_up(sid))  # a heartbeat never says the store came back: a script does
    assert store.renew(claim, LEASE) == "ok"
    assert int(r.get(keys.sweep_up(sid)).split(b":")[1]) > 0  # type: ignore[union-attr]
