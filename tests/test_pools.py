"""Pools against a real Redis: the order claim_pool.lua decides in one step (priority, a queued run
first, weighted fair share on held runs), the wake tokens that reach a pool's idle agents, and the
demand figure against hand-counted cases. The agents' side is in test_pool_agents.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from support import run_sweepd
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.pool_view import demand, left, pool_status
from sweepd.queue.pools import Quiet
from sweepd.queue.records import Claim
from sweepd.queue.store import Store


def grid(n: int, **extra: Any) -> dict[str, Any]:
    return {"method": "grid", "parameters": {"a": {"values": list(range(n))}}, **extra}


RANDOM = {"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}


def make(store: Store, config: dict[str, Any], pool: str = "p", priority: int = 0, weight: float = 1) -> str:
    sid = store.create_sweep(validate(config))
    store.set_pool(sid, pool=pool, priority=priority, weight=weight)
    return sid


def take(store: Store, pool: str = "p", agent: str = "ag") -> Claim | None:
    """What a pool agent does: the pool's step, then the search's create when it names a sweep."""
    for _ in range(8):
        got = store.pool_claim(pool, agent, 30)
        if isinstance(got, Quiet):
            return None
        if isinstance(got, Claim):
            return got
        made = store.create_next(got, agent, 30, unless_queued=True)
        if isinstance(made, Claim):
            return made
    raise AssertionError("the pool named a sweep that could not create")


def test_only_the_highest_priority_with_work_is_served(store: Store) -> None:
    high, low = make(store, grid(2), priority=10), make(store, grid(5), priority=1)
    first = [take(store) for _ in range(2)]
    assert {c.sweep_id for c in first if c} == {high}
    nxt = take(store)  # high's grid is used up (its runs still held): low's turn
    assert nxt is not None and nxt.sweep_id == low
    assert first[0] is not None
    assert store.requeue(first[0], reason="preempted")  # high has work again: it goes first
    again = take(store)
    assert again is not None and again.run_id == first[0].run_id and again.attempt == 2


def test_a_queued_run_goes_before_any_new_run_of_its_priority(store: Store) -> None:
    a, b = make(store, grid(9)), make(store, grid(9))
    held = [take(store) for _ in range(4)]  # 2 and 2
    mine = next(c for c in held if c and c.sweep_id == b)
    assert store.requeue(mine, reason="preempted")  # b now holds fewer, but a new run of a would tie
    got = take(store)
    assert got is not None and got.run_id == mine.run_id and got.recovered_after is not None
    assert {c.sweep_id for c in held if c} == {a, b}


def test_new_runs_follow_the_weights_on_held_runs(store: Store) -> None:
    a, b = make(store, grid(50), weight=3), make(store, grid(50), weight=1)
    claims = [take(store) for _ in range(8)]
    counts = {sid: sum(1 for c in claims if c and c.sweep_id == sid) for sid in (a, b)}
    assert counts == {a: 6, b: 2}
    ended = next(c for c in claims if c and c.sweep_id == b)
    assert store.complete(ended, "finished", 0, "exit-0")  # b holds 1 per weight, a 2: b's turn
    nxt = take(store)
    assert nxt is not None and nxt.sweep_id == b


def test_paused_stopped_and_used_up_sweeps_are_skipped(store: Store) -> None:
    a, b, c = make(store, grid(3)), make(store, grid(3)), make(store, grid(1, run_cap=1))
    store.control(a, "paused")
    store.control(b, "stopped")
    got = take(store)
    assert got is not None and got.sweep_id == c
    assert take(store) is None  # c's cap is reached: nothing has work
    store.control(a, "running")
    got = take(store)
    assert got is not None and got.sweep_id == a


def test_events_of_a_pooled_sweep_wake_the_pool(store: Store, r: redis.Redis) -> None:
    wake = keys.pool_wake("p")
    sid = store.create_sweep(validate(grid(4)))
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim) and r.llen(wake) == 0
    store.set_pool(sid, pool="p")  # joining wakes every idle agent of the pool
    assert r.llen(wake) >= 64
    r.delete(wake)
    assert store.requeue(claim, reason="preempted")  # a requeued run: one token, for the pool too
    assert r.llen(wake) == 1 and r.llen(keys.sweep_wake(sid)) == 1
    r.delete(wake)
    store.control(sid, "paused")
    store.control(sid, "running")  # resumed: every idle agent of the pool looks
    assert r.llen(wake) >= 64
    lone = store.create_sweep(validate(grid(4)))  # a sweep in no pool pushes to no pool
    r.delete(wake)
    store.control(lone, "running")
    assert r.llen(wake) == 0


def test_a_sweep_moves_between_pools_and_keeps_its_values(store: Store, r: redis.Redis) -> None:
    sid = make(store, grid(3), pool="one", priority=5, weight=2)
    assert store.set_pool(sid, pool="two") == "two"
    assert r.smembers(keys.pool("one")) == set() and r.smembers(keys.pool("two")) == {sid.encode()}
    assert store.pool_settings(sid) == (5, 2.0)
    assert store.set_pool(sid, priority=-3) == "two" and store.pool_settings(sid) == (-3, 2.0)


# demand ------------------------------------------------------------------------------------------


def test_demand_pure_cases() -> None:
    g = validate(grid(10))
    assert left(g, 4, 4, False) == 6  # 10 points, 4 taken
    assert left(validate(grid(10, run_cap=5)), 4, 4, False) == 1  # run_cap is the tighter bound
    assert left(validate(RANDOM), 7, 7, False) is None and left(g, 0, 0, True) == 0
    assert demand("running", 2, 3, 6) == 11
    assert demand("running", 0, 3, None) == 4  # unbounded: held + 1
    assert demand("paused", 2, 3, 6) == 3 and demand("stopped", 0, 0, None) == 0


def test_demand_of_a_pool_against_hand_counted_cases(store: Store) -> None:
    g = make(store, grid(6), priority=2)  # 6 points: 2 held, 1 of them requeued -> 1 held, 1 queued, 4 left
    capped = make(store, {**RANDOM, "run_cap": 4})  # run_cap 4, 1 run made and held: 3 left
    unbounded = make(store, RANDOM)  # random, no cap: held + 1
    held = {sid: [] for sid in (g, capped, unbounded)}
    for sid, n in ((g, 2), (capped, 1), (unbounded, 2)):
        for _ in range(n):
            claim = store.create_next(sid, "ag", 30)
            assert isinstance(claim, Claim)
            held[sid].append(claim)
    assert store.requeue(held[g][0], reason="preempted")
    got = pool_status(store, "p")
    rows = {row["sweep_id"]: row for row in got["sweeps"]}
    assert (rows[g]["held"], rows[g]["queued"], rows[g]["left"], rows[g]["demand"]) == (1, 1, 4, 6)
    assert (rows[capped]["held"], rows[capped]["left"], rows[capped]["demand"]) == (1, 3, 4)
    assert (rows[unbounded]["held"], rows[unbounded]["left"], rows[unbounded]["demand"]) == (2, None, 3)
    assert got["demand"] == 6 + 4 + 3 and got["sweeps"][0]["sweep_id"] == g  # highest priority first
    store.control(unbounded, "paused")  # hands out nothing: only its held runs
    assert pool_status(store, "p")["demand"] == 6 + 4 + 2


# the command line --------------------------------------------------------------------------------


def test_bad_values_are_one_line_exit_2_and_store_nothing(
    cli_env: dict[str, str], tmp_path: Any, r: redis.Redis
) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("program: t.py\nmethod: grid\nparameters:\n  a: {values: [1, 2]}\n")
    for bad in (
        ["--pool", "a b"],
        ["--pool", "p", "--priority", "high"],
        ["--pool", "p", "--priority", "1.5"],
        ["--pool", "p", "--weight", "0"],
        ["--pool", "p", "--weight", "-1"],
        ["--pool", "p", "--weight", "nan"],
        ["--priority", "3"],
    ):
        done = run_sweepd("sweep", "create", str(config), *bad, env=cli_env)
        assert done.returncode == 2, (bad, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert r.zcard(keys.SWEEPS) == 0 and not r.exists(keys.POOLS)
    done = run_sweepd(
        "sweep", "create", str(config), "--pool", "p", "--priority", "7", "--weight", "2.5", "-q", env=cli_env
    )
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    before = r.hgetall(keys.sweep(sid))
    for bad in (["--weight", "x"], ["--priority", ""], []):
        done = run_sweepd("sweep", "set", sid, *bad, env=cli_env)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert r.hgetall(keys.sweep(sid)) == before
    done = run_sweepd("sweep", "set", sid, "--priority", "-1", env=cli_env)
    assert done.returncode == 0 and "priority -1, weight 2.5" in done.stdout
    status = json.loads(run_sweepd("pool", "status", "p", "--json", env=cli_env).stdout)
    assert [(s["sweep_id"], s["priority"], s["weight"], s["demand"]) for s in status["sweeps"]] == [(sid, -1, 2.5, 2)]
    listed = run_sweepd("pool", "list", env=cli_env)
    assert listed.returncode == 0 and "p " in listed.stdout
    missing = run_sweepd("pool", "status", "nope", env=cli_env)
    assert missing.returncode == 2 and "no pool 'nope'" in missing.stderr


def test_an_agent_needs_a_sweep_or_a_pool(cli_env: dict[str, str]) -> None:
    for args in ([], ["abc", "--pool", "p"], ["--pool", "a:b"]):
        done = run_sweepd("agent", *args, env=cli_env)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    done = run_sweepd("agent", env={**cli_env, "SWEEPD_POOL": "a:b"})  # the variable as the flag
    assert done.returncode == 2 and "pool name 'a:b'" in done.stderr


@pytest.mark.parametrize("name", ["", "x" * 65])
def test_pool_names_follow_the_id_rules(store: Store, name: str) -> None:
    sid = store.create_sweep(validate(grid(2)))
    with pytest.raises(Exception, match="pool name"):
        store.set_pool(sid, pool=name)
