"""The Lua scripts against a real Redis: every one runs behind the shared prelude."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
import redis

from sweepd.queue import keys, runs
from sweepd.queue.config import validate
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
        assert source == script_source(name) == lua(PRELUDE) + "\n" + lua(name)
        assert r.script_load(source) == store._scripts[name].sha, name  # Redis compiles it
    with pytest.raises(ValueError):
        script_source(PRELUDE)


def test_the_shared_steps_are_written_once_in_the_prelude() -> None:
    shared = ("redis.call('TIME')", "0, 63)", "0, 99)", "cjson.encode", "'status', 'queued'")
    for name in NAMES:
        for text in shared:
            assert text not in lua(name), (name, text)
    assert all(text in lua(PRELUDE) for text in shared)


def test_every_script_runs_behind_the_prelude(r: redis.Redis, store: Store) -> None:
    """One pass through the lifecycle that calls every script and each prelude function."""
    ran: list[str] = []
    run_script = store._run_script

    def recording(name: str, keys_: list[str], args: list[Any]) -> Any:
        ran.append(name)
        return run_script(name, keys_, args)

    store._run_script = recording  # type: ignore[method-assign]
    sid = store.create_sweep(validate(GRID))
    a, b = held(store, sid), held(store, sid)  # create: now_ms
    assert store.renew(a, 30) == "ok"
    assert store.log_metrics(a, [{"loss": 1.0}])
    assert store.mark_preempting(a, "signal")
    assert store.requeue(a, reason="signal")  # requeue_run (held), wake
    again = store.claim(sid, "ag2", 30)  # claim: add_event (resumed)
    assert again is not None and again.run_id == a.run_id
    assert store.complete(again, "failed", 1, "exit-1")  # complete: wake
    assert store.operate(a.run_id, "requeue") == "requeued"  # requeue_run (terminal)
    r.zadd(keys.sweep_held(sid), {b.run_id: 1})
    assert store.reap(sid) == [b.run_id]  # requeue_run (held), add_event, wake
    assert store.enqueue(sid, "new1", Rule("refuse", "create"), {"a": 0}, front=False, spelled="x").result == "created"
    started = store.begin("hand1", runs.MANUAL_SWEEP, Rule("resume", "create"), {}, "me", "t1", 30, spelled="x")
    assert started.created
    assert store.control(sid, "paused") == "running"  # wake(key, 8)
    assert set(ran) == set(NAMES)
    assert r.llen(keys.sweep_wake(sid)) <= 64
    kinds = [(e["event"], e["run_id"]) for e in events(r, sid)]
    assert kinds == [("requeued", b.run_id), ("resumed", a.run_id)]
