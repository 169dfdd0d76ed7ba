"""A PBT exploit's new run starts from the parent's latest snapshot by reference (an object-store
root, here ``file://``): the decision moves no byte, the new run restores from the parent's objects,
and the parent's retention never deletes what a live reference names (pinned until the new run's
own first commit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis

from sweepd.agent.checkpoints import manifest as mf
from sweepd.agent.checkpoints.remote import Remote
from sweepd.agent.checkpoints.sync import Syncer
from sweepd.agent.daemon.launch import PARAMS_NAME
from sweepd.agent.daemon.member import has_checkpoint
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.population import NextRun
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

TWO = {"method": "grid", "program": "train.py", "parameters": {"a": {"values": [1, 2]}}}
BIG = b"w" * 200_000


def say(*_: object, **__: object) -> None:
    pass


def stored(remote: Remote) -> tuple[int, int]:
    """(objects, bytes) in the store."""
    remote.fs.invalidate_cache()
    found = remote.fs.find(remote.base, detail=True)
    return len(found), sum(int(info["size"]) for info in found.values())


def exists(remote: Remote, *parts: str) -> bool:
    remote.fs.invalidate_cache()
    return bool(remote.fs.exists(remote.path(*parts)))


def save(sync: Syncer, step: str) -> str:
    (sync.workdir / "step").write_text(step)
    assert sync.sync() == "committed" and sync.committed is not None
    return sync.committed.snapshot


def exploit(store: Store, decider: Claim, step: int, child: str, parent: str) -> None:
    pbt = {"member": 1, "generation": 1, "parent": parent}
    nxt = NextRun(child, {"a": 1}, pbt, step, reference=parent)
    assert store.decide(decider, 1, step, {"exploit": True, "parent": parent}, nxt) == "ok"


def child_syncer(store: Store, remote: Remote, sid: str, rid: str, work: Path) -> Syncer:
    claim = store.claim(sid, f"agent-{rid}", 30)
    assert claim is not None and claim.run_id == rid  # queued at the front
    sync = Syncer(remote, store, claim, work, keep=1, say=say)
    assert sync.restore() is not None
    return sync


def test_an_exploit_references_the_parents_snapshot_and_retention_keeps_it_while_referenced(
    r: redis.Redis, store: Store, tmp_path: Path
) -> None:
    exploit_by_reference(r, store, Remote((tmp_path / "store").as_uri()), tmp_path)


def exploit_by_reference(r: redis.Redis, store: Store, remote: Remote, tmp_path: Path) -> None:
    """The whole life of a reference, against ``remote`` (``file://`` here, S3 in test_checkpoints_s3)."""
    remote.probe()
    sid = store.create_sweep(validate(TWO))
    top, low = store.create_next(sid, "a", 30), store.create_next(sid, "b", 30)
    assert isinstance(top, Claim) and isinstance(low, Claim)
    parent = Syncer(remote, store, top, tmp_path / "top", keep=1, say=say)
    assert parent.restore() is not None
    (parent.workdir / "weights.bin").write_bytes(BIG)
    first = save(parent, "5")

    before = stored(remote)
    assert before[1] > len(BIG)  # the measure sees the parent's objects
    exploit(store, low, 5, "child1", top.run_id)
    assert stored(remote) == before  # the exploit itself: no object written, no byte moved
    assert not exists(remote, sid, "child1")
    [ref] = store.checkpoints("child1")
    assert (ref.snapshot, ref.run) == (first, top.run_id) and ref.as_json()["run"] == top.run_id

    for step in ("6", "7", "8"):  # the parent goes on, keeping 1: the referenced snapshot stays
        save(parent, step)
    assert [s.snapshot for s in store.checkpoints(top.run_id)][1:] == [first]
    assert exists(remote, sid, top.run_id, mf.manifest_path(first))

    child = child_syncer(store, remote, sid, "child1", tmp_path / "c1")
    assert (child.workdir / "step").read_text() == "5" and (child.workdir / "weights.bin").read_bytes() == BIG
    assert child.sync() == "unchanged"  # nothing of its own yet: it still stands on the reference

    exploit(store, low, 10, "child2", "child1")  # a reference to a reference: the same objects, pinned
    [ref2] = store.checkpoints("child2")
    assert (ref2.snapshot, ref2.run) == (first, top.run_id)

    own = save(child, "9")  # its first own snapshot: whole in its objects, the reference unpinned
    assert child.last is not None and child.last.bytes > len(BIG)  # every blob sent: nothing shared across runs
    assert [s.snapshot for s in store.checkpoints("child1")] == [own]
    assert set(r.hkeys(keys.sweep_pins(sid))) == {b"child2"}
    save(parent, "9")
    assert first in [s.snapshot for s in store.checkpoints(top.run_id)]  # child2 still names it

    second = child_syncer(store, remote, sid, "child2", tmp_path / "c2")
    assert (second.workdir / "weights.bin").read_bytes() == BIG
    save(second, "11")
    assert r.hlen(keys.sweep_pins(sid)) == 0
    save(parent, "10")  # nothing references it now: the parent's next retention pass deletes it
    assert first not in [s.snapshot for s in store.checkpoints(top.run_id)]
    assert not exists(remote, sid, top.run_id, mf.manifest_path(first))

    again = Syncer(remote, store, child.claim, tmp_path / "c1-again", keep=1, say=say)
    assert again.restore() is not None  # the child's own objects: the parent's clean-up took nothing of it
    assert (again.workdir / "step").read_text() == "9" and (again.workdir / "weights.bin").read_bytes() == BIG


def test_a_snapshot_records_the_step_logged_before_its_files_and_an_exploit_continues_from_it(
    store: Store, tmp_path: Path
) -> None:
    """The parent's last logged step runs ahead of its latest committed snapshot (a background sync
    every few minutes): the child continues from the step its snapshot's files were at."""
    remote = Remote((tmp_path / "store").as_uri())
    sid = store.create_sweep(validate(TWO))
    top, low = store.create_next(sid, "a", 30), store.create_next(sid, "b", 30)
    assert isinstance(top, Claim) and isinstance(low, Claim)
    parent = Syncer(remote, store, top, tmp_path / "top", keep=1, say=say)
    assert parent.restore() is not None
    assert store.log_metrics(top, [{"Q": 0.1, "_step": 4}])
    save(parent, "4")
    assert store.log_metrics(top, [{"Q": 0.2, "_step": step} for step in range(5, 12)])  # not yet synced
    [latest] = store.checkpoints(top.run_id)
    assert latest.step == 4 and "step" not in latest.as_json()  # the contract's shape is unchanged
    last, _ = store.last_step_and_value(top.run_id, "_step")
    assert last == 11
    exploit(store, low, 10, "child", top.run_id)  # the agent's first step for it: 10
    assert store.last_step_and_value("child", "_step")[0] == 4  # the snapshot's, where its files stood


@dataclass(frozen=True)
class Root:
    checkpoint_url: str | None
    checkpoints: Path
    keep_checkpoints: int = 1


def test_a_top_member_without_a_checkpoint_has_nothing_to_give(store: Store, tmp_path: Path) -> None:
    """member.has_checkpoint: no exploit from a parent with no weights yet (Ray Tune's PBT skips it too)."""
    sid = store.create_sweep(validate(TWO))
    top = store.create_next(sid, "a", 30)
    assert isinstance(top, Claim)
    plain = Root(None, tmp_path / "plain")
    assert not has_checkpoint(plain, store, sid, top.run_id)  # no directory
    (tmp_path / "plain" / sid / top.run_id).mkdir(parents=True)
    (tmp_path / "plain" / sid / top.run_id / PARAMS_NAME).write_text("{}")
    assert not has_checkpoint(plain, store, sid, top.run_id)  # only the parameters the agent wrote
    (tmp_path / "plain" / sid / top.run_id / "theta.json").write_text("{}")
    assert has_checkpoint(plain, store, sid, top.run_id)
    url = (tmp_path / "store").as_uri()
    assert not has_checkpoint(Root(url, tmp_path / "cache"), store, sid, top.run_id)  # nothing committed
    parent = Syncer(Remote(url), store, top, tmp_path / "top", keep=1, say=say)
    assert parent.restore() is not None
    save(parent, "1")
    assert has_checkpoint(Root(url, tmp_path / "cache"), store, sid, top.run_id)
