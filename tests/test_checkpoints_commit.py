"""The snapshot protocol without an agent: the manifest's choices (pure), the fenced commit
(checkpoint.lua, a real Redis), and a syncer on a ``file://`` store: restore, dedupe, retention,
a stale holder's upload never committed and never read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from sweepd.agent.checkpoints import manifest as mf
from sweepd.agent.checkpoints.remote import Remote, is_url
from sweepd.agent.checkpoints.sync import Syncer
from sweepd.agent.daemon import wandb_env
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

ONE = {"method": "grid", "program": "train.py", "parameters": {"a": {"values": [1]}}}


def entry(sha: str, size: int = 1) -> mf.Entry:
    return mf.Entry(sha, size)


def test_the_manifest_choices() -> None:
    files = {"a": entry("x"), "b": entry("x"), "c": entry("y"), "d": entry("z")}
    assert mf.to_upload(files, present={"z"}) == {"x": "a", "y": "c"}  # one upload per content
    made = mf.Manifest("a000002-000001-ab", "r", 2, files)
    assert mf.Manifest.loads(made.dumps()) == made and made.size == 4
    assert mf.attempt_of(mf.snapshot_id(7, 3, "beef")) == 7 and mf.attempt_of("junk") is None
    names = [mf.snapshot_id(1, 1, "a"), mf.snapshot_id(2, 1, "b"), mf.snapshot_id(3, 1, "c"), "junk"]
    assert mf.stale_manifests(names, kept={names[1]}, attempt=2) == [names[0]]  # a later attempt's: untouched
    assert mf.unreferenced(["x", "y", "q"], [made]) == ["q"]
    assert mf.is_private(".sweepd-params.json") and mf.is_private("d/.sweepd-part-1")
    assert mf.is_private(wandb_env.PARAM_FILE) and not mf.is_private("model.pt")
    assert is_url("s3://b/p") and is_url("file:///tmp/x") and not is_url("/shared/ckpt") and not is_url("rel/dir")


def test_only_the_current_holder_commits_and_retention_trims(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(ONE))
    claim = store.create_next(sid, "a", 30)
    assert isinstance(claim, Claim)
    assert store.commit_checkpoint(claim, "s1", 2, 10, keep=2) == []
    assert store.commit_checkpoint(claim, "s1", 2, 10, keep=2) == []  # a retried commit writes nothing again
    assert store.commit_checkpoint(claim, "s2", 2, 10, keep=2) == []
    dropped = store.commit_checkpoint(claim, "s3", 2, 10, keep=2)
    assert [d.snapshot for d in dropped or []] == ["s1"]
    assert [s.snapshot for s in store.checkpoints(claim.run_id)] == ["s3", "s2"]
    r.zadd(keys.sweep_held(sid), {claim.run_id: 0})  # its lease lapsed
    assert store.reap(sid) == [claim.run_id]
    newer = store.claim(sid, "b", 30)
    assert newer is not None
    assert store.commit_checkpoint(claim, "stale", 1, 1, keep=2) is None  # fenced: nothing written
    latest = store.latest_checkpoint(claim.run_id)
    assert latest is not None and latest.snapshot == "s3" and latest.attempt == 1 and latest.committed_at > 0
    assert [d.snapshot for d in store.commit_checkpoint(newer, "s4", 1, 1, keep=2) or []] == ["s2"]
    assert [s.snapshot for s in store.latest_checkpoints([claim.run_id]).values() if s] == ["s4"]


def say(*_: object, **__: object) -> None:
    pass


def test_a_syncer_restores_dedupes_keeps_k_and_never_reads_a_stale_upload(
    r: redis.Redis, store: Store, tmp_path: Path
) -> None:
    remote = Remote((tmp_path / "store").as_uri())
    remote.probe()
    sid = store.create_sweep(validate(ONE))
    first = store.create_next(sid, "a", 30)
    assert isinstance(first, Claim)
    work = tmp_path / "a"
    a = Syncer(remote, store, first, work, keep=2, say=say)
    assert a.restore() is not None and list(work.iterdir()) == []  # a first attempt starts empty
    (work / "big.bin").write_bytes(b"b" * 100_000)
    (work / "sub").mkdir()
    for step in range(3):
        (work / "sub" / "step").write_text(str(step))
        assert a.sync() == "committed"
        assert a.last is not None
        assert a.last.bytes < 100_000 if step else a.last.bytes > 100_000  # the big file went once
    assert a.sync() == "unchanged"
    run_dir = tmp_path / "store" / sid / first.run_id
    assert len(list((run_dir / "snapshots").iterdir())) == 2  # keep 2: the oldest manifest deleted
    assert len(list((run_dir / "blobs").rglob("*"))) - len(list((run_dir / "blobs").iterdir())) == 3
    r.zadd(keys.sweep_held(sid), {first.run_id: 0})
    store.reap(sid)
    second = store.claim(sid, "b", 30)
    assert second is not None
    (work / "sub" / "step").write_text("stale")
    assert a.sync() == "fenced"  # the old holder uploads, but cannot commit
    b = Syncer(remote, store, second, tmp_path / "b", keep=2, say=say)
    assert b.restore() is not None
    assert (tmp_path / "b" / "sub" / "step").read_text() == "2"  # the committed one, never the stale upload
    assert (tmp_path / "b" / "big.bin").read_bytes() == b"b" * 100_000
    (tmp_path / "b" / "sub" / "step").write_text("3")
    assert b.sync() == "committed"
    names = sorted(p.stem for p in (run_dir / "snapshots").iterdir())
    assert all(mf.attempt_of(n) == 2 or n in {s.snapshot for s in store.checkpoints(first.run_id)} for n in names)


def test_a_script_run_by_hand_takes_the_same_root(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """``init()`` without an agent, an object-store root: its checkpoint directory is a working copy
    restored from the run's latest committed snapshot, and its end is snapshotted and committed."""
    script = (
        "import os, sys\n"
        "from sweepd.agent import run\n"
        "r = run.init(id='byhand', resume='allow')\n"
        "p = os.path.join(r.checkpoint_dir, 'n')\n"
        "n = int(open(p).read()) if os.path.exists(p) else 0\n"
        "print(n)\n"
        "open(p, 'w').write(str(n + 1))\n"
        "sys.exit(1)\n"
    )
    env = {
        **cli_env,
        "SWEEPD_CHECKPOINT_ROOT": (tmp_path / "store").as_uri(),
        "SWEEPD_CHECKPOINT_SYNC": "0",
    }
    seen = []
    for cache in ("one", "two", "three"):  # three machines, no shared disk
        env["SWEEPD_CHECKPOINT_CACHE"] = str(tmp_path / cache)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        seen.append(int(done.stdout))
    assert seen == [0, 1, 2]


def test_a_root_whose_backend_is_not_installed_names_the_extra() -> None:
    import importlib.util

    import pytest

    from sweepd.queue.errors import UserError

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(UserError, match=r'gs://.*pip install "sweepd\[gcs\]"'):
        Remote("gs://bucket/prefix")


def test_transfers_are_counted_in_the_agents_metrics(store: Store, tmp_path: Path) -> None:
    from sweepd.agent.daemon.metrics import Metrics

    sid = store.create_sweep(validate(ONE))
    claim = store.create_next(sid, "a", 30)
    assert isinstance(claim, Claim)
    metrics = Metrics(sid)
    sync = Syncer(Remote((tmp_path / "s").as_uri()), store, claim, tmp_path / "w", keep=2, say=say, counts=metrics)
    sync.restore()
    (tmp_path / "w" / "f").write_bytes(b"x" * 5000)
    assert sync.sync() == "committed"

    def value(name: str, **labels: str) -> float:
        got = metrics.registry.get_sample_value(name, {"sweep": sid, **labels})
        return got or 0.0

    assert value("sweepd_checkpoint_bytes_total", direction="upload") > 5000
    assert value("sweepd_checkpoint_seconds_total", direction="upload") > 0
    assert value("sweepd_checkpoint_snapshots_total", outcome="committed") == 1
