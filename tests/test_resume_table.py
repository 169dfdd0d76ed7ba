"""The resume table (W&B's, from the seed), as pure logic and through the two scripts that apply it
atomically: ``resume.lua`` (a script starting its own run) and ``enqueue.lua`` (``sweepd enqueue``)."""

from __future__ import annotations

import uuid

import pytest
import redis

from sweepd.queue import keys, resume
from sweepd.queue.config import validate
from sweepd.queue.errors import NotFound, RunExists, RunHeld, RunMissing, UserError
from sweepd.queue.runs import MANUAL_CONFIG, MANUAL_SWEEP, Started
from sweepd.queue.store import Store

# mode -> (ID exists, ID does not exist); "error" is the table's error.
TABLE = {
    "must": ("resume", "error"),
    "allow": ("resume", "create"),
    "never": ("error", "create"),
    "auto": ("resume", "create"),
}
CELLS = [(mode, exists) for mode in TABLE for exists in (True, False)]


def expected(mode: str, exists: bool) -> str:
    return TABLE[mode][0 if exists else 1]


@pytest.mark.parametrize(("mode", "exists"), CELLS)
def test_every_cell_of_the_table(mode: resume.Mode, exists: bool) -> None:
    want = expected(mode, exists)
    if want == "error":
        error = RunExists if exists else RunMissing
        with pytest.raises(error, match="run 'r1'"):
            resume.decide(mode, exists, "r1")
    else:
        assert resume.decide(mode, exists, "r1") == want


def test_modes_are_checked_with_a_clear_message() -> None:
    assert resume.parse_mode(" Allow ") == "allow" and resume.parse_mode(None) is None
    with pytest.raises(UserError, match="'sometimes' is not one of must, allow, never, auto"):
        resume.parse_mode("sometimes")
    with pytest.raises(UserError, match="--resume: 'auto' is not one of must, allow, never"):
        resume.parse_mode("auto", where="--resume", allowed=("must", "allow", "never"))


def test_the_manual_sweep_s_config_validates_like_any_other() -> None:
    config = validate(dict(MANUAL_CONFIG))
    assert config.method == "grid" and config.program is None


def _sweep(store: Store) -> str:
    return store.create_sweep(validate({"method": "grid", "parameters": {"x": {"values": [1, 2]}}}))


def _begin(store: Store, rid: str, sid: str, mode: resume.Mode, holder: str = "me") -> Started:
    return store.begin(rid, sid, resume.TABLE[mode], {"x": 1}, holder, uuid.uuid4().hex, 30.0, spelled=mode)


@pytest.mark.parametrize(("mode", "exists"), CELLS)
def test_every_cell_through_resume_lua(store: Store, r: redis.Redis, mode: resume.Mode, exists: bool) -> None:
    sid = _sweep(store)
    if exists:
        first = store.begin("r1", sid, resume.TABLE["allow"], {"x": 2}, "a", uuid.uuid4().hex, 30.0, spelled="")
        store.log_metrics(first.claim, [{"loss": 1.0, "_step": 0}, {"loss": 0.5, "_step": 1}])
        assert store.complete(first.claim, "failed", 1, "exit-1")
    want = expected(mode, exists)
    before = {k: r.type(k) for k in r.keys("*")}
    if want == "error":
        with pytest.raises(RunExists if exists else RunMissing):
            _begin(store, "r1", sid, mode)
        assert {k: r.type(k) for k in r.keys("*")} == before  # nothing stored
        return
    started = store.begin("r1", sid, resume.TABLE[mode], {"x": 1}, "me", "tok", 30.0, spelled=mode)
    run = store.run("r1")
    assert run.state == "running" and run.agent_id == "me" and store.held_count(sid) == 1
    if want == "resume":
        assert not started.created and started.claim.attempt == 2 and started.claim.last_step == 1
        assert started.claim.params == {"x": 2} and run.params == {"x": 2}  # a resumed run keeps its params
        assert run.summary["loss"] == 0.5  # the run's summary, not the attempt's
    else:
        assert started.created and started.claim.attempt == 1 and started.claim.last_step is None
        assert run.origin == "manual" and run.params == {"x": 1}


def test_a_second_process_is_refused_while_the_first_holds_the_run(store: Store) -> None:
    sid = _sweep(store)
    first = store.begin("r1", sid, resume.TABLE["allow"], {}, "first-host-1", "t1", 30.0, spelled="")
    with pytest.raises(RunHeld, match="run 'r1' is running under first-host-1"):
        _begin(store, "r1", sid, "allow", "second")
    assert store.renew(first.claim, 30.0) == "ok"  # the first is untouched


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_fenced(store: Store, r: redis.Redis) -> None:
    sid = _sweep(store)
    first = store.begin("r1", sid, resume.TABLE["allow"], {}, "first", "t1", 30.0, spelled="")
    r.zadd(keys.sweep_held(sid), {"r1": 0})  # its lease ran out long ago
    second = store.begin("r1", sid, resume.TABLE["must"], {}, "second", "t2", 30.0, spelled="")
    assert second.claim.attempt == 2 and store.run("r1").requeues == 1
    assert store.renew(first.claim, 30.0) == "fenced"


def test_a_queued_run_is_taken_off_its_queue(store: Store) -> None:
    sid = _sweep(store)
    store.enqueue(sid, "r1", resume.TABLE["never"], {"x": 1}, front=False, spelled="")
    assert store.queued_ids(sid) == ["r1"]
    started = store.begin("r1", sid, resume.TABLE["must"], {}, "me", "t", 30.0, spelled="")
    assert started.claim.attempt == 1 and store.queued_ids(sid) == [] and store.held_count(sid) == 1


def test_runs_without_a_sweep_go_to_the_manual_sweep_and_keep_to_their_own(store: Store) -> None:
    started = _begin(store, "r1", MANUAL_SWEEP, "never")
    sweep = store.sweep(MANUAL_SWEEP)
    assert sweep.state == "stopped" and store.config(MANUAL_SWEEP).name == "manual"
    assert MANUAL_SWEEP in store.sweep_ids() and not store.is_complete(MANUAL_SWEEP)  # r1 is held
    assert started.claim.sweep_id == MANUAL_SWEEP
    other = _sweep(store)
    with pytest.raises(UserError, match="run 'r1' belongs to sweep 'manual'"):
        _begin(store, "r1", other, "allow")
    with pytest.raises(NotFound):
        _begin(store, "r2", "nosuchsweep", "allow")


@pytest.mark.parametrize(("mode", "exists"), [c for c in CELLS if c[0] != "auto"])
def test_every_cell_through_enqueue_lua(store: Store, r: redis.Redis, mode: resume.Mode, exists: bool) -> None:
    sid = _sweep(store)
    if exists:
        first = store.begin("r1", sid, resume.TABLE["allow"], {"x": 2}, "a", "t", 30.0, spelled="")
        store.log_metrics(first.claim, [{"loss": 1.0, "_step": 4}])
        assert store.complete(first.claim, "failed", 1, "exit-1")
    want = expected(mode, exists)
    before = {k: r.type(k) for k in r.keys("*")}
    if want == "error":
        with pytest.raises(RunExists if exists else RunMissing):
            store.enqueue(sid, "r1", resume.TABLE[mode], {"x": 1}, front=False, spelled=mode)
        assert {k: r.type(k) for k in r.keys("*")} == before
        return
    done = store.enqueue(sid, "r1", resume.TABLE[mode], None if exists else {"x": 1}, front=True, spelled=mode)
    assert store.queued_ids(sid) == ["r1"] and store.run("r1").state == "queued"
    claim = store.claim(sid, "agent", 30.0)
    assert claim is not None and claim.run_id == "r1"
    if want == "resume":
        assert (done.result, done.attempts, done.last_step) == ("queued", 1, 4)
        assert (claim.attempt, claim.last_step, claim.params) == (2, 4, {"x": 2})  # params kept
    else:
        assert (done.result, claim.attempt, claim.last_step, claim.params) == ("created", 1, None, {"x": 1})


def test_enqueue_never_moves_a_held_run_and_moves_a_queued_one(store: Store) -> None:
    sid = _sweep(store)
    store.begin("held", sid, resume.TABLE["allow"], {}, "agent-7", "t", 30.0, spelled="")
    with pytest.raises(RunHeld, match="held by agent-7"):
        store.enqueue(sid, "held", resume.TABLE["must"], None, front=True, spelled="")
    for rid in ("a", "b"):
        store.enqueue(sid, rid, resume.TABLE["never"], {"x": 1}, front=False, spelled="")
    done = store.enqueue(sid, "b", resume.TABLE["must"], {"x": 2}, front=True, spelled="")
    assert done.result == "moved" and store.queued_ids(sid) == ["b", "a"] and store.run("b").params == {"x": 2}
