"""A PBT exploit's new run starts from the parent's latest snapshot by reference (an object-store
root, here ``file://``): the decision moves no byte, the new run restores from the parent's objects,
and the parent's retention never deletes what a live reference names (pinned until the new run's
own first commit)."""

from __future__ import annotations

from pathlib import Path

import redis

from sweepd.agent.checkpoints import manifest as mf
from sweepd.agent.checkpoints.remote import Remote
from sweepd.agent.checkpoints.sync import Syncer
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
