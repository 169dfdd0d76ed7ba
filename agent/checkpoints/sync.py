"""One attempt's working copy of its run's checkpoints, and its snapshots.

Before the training process starts, ``restore`` makes the working copy exactly the run's latest
committed snapshot (empty when there is none: a fenced attempt's upload is never read; read from
another run's objects when the snapshot is a reference, a PBT exploit's start). ``sync``
uploads what changed (content by hash: a file unchanged since a snapshot the store has is not sent
again), writes the manifest once every blob is up, and commits it through Redis, fenced by the
attempt's token; then, while the lease is surely ours, deletes what no kept snapshot needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from sweepd.queue.checkpoints import Snapshot
from sweepd.queue.records import Claim

from . import manifest as mf
from .manifest import Entry, Manifest
from .remote import Remote, first_line, parallel

Outcome = Literal["committed", "unchanged", "fenced", "late", "failed"]
CHUNK = 1 << 20
LATE = "checkpoint not committed: its upload did not finish before the deadline; the previous snapshot stands"


class Commits(Protocol):
    """What a syncer needs of Redis (``sweepd.queue.store.Store``)."""

    def commit_checkpoint(
        self, claim: Claim, snapshot: str, files: int, size: int, keep: int, step: int | None = None
    ) -> list[Snapshot] | None: ...

    def last_step_and_value(self, rid: str, metric: str) -> tuple[int | None, Any]: ...

    def checkpoints(self, rid: str) -> list[Snapshot]: ...

    def latest_checkpoint(self, rid: str) -> Snapshot | None: ...


class Counts(Protocol):
    """Where transfers are counted (the agent's Prometheus metrics)."""

    def checkpoint_transfer(self, direction: str, size: int, seconds: float) -> None: ...

    def checkpoint_outcome(self, outcome: str) -> None: ...


Say = Callable[..., None]  # say(level, event, **fields)


@dataclass(frozen=True)
class Transfer:
    files: int
    bytes: int
    seconds: float


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Syncer:
    def __init__(
        self,
        remote: Remote,
        store: Commits,
        claim: Claim,
        workdir: Path,
        *,
        keep: int,
        say: Say,
        counts: Counts | None = None,
        holding: Callable[[], bool] = lambda: True,
    ) -> None:
        self.remote, self.store, self.claim, self.workdir = remote, store, claim, workdir
        self.keep, self.say, self.counts, self.holding = keep, say, counts, holding
        self.run_dir = remote.path(claim.sweep_id, claim.run_id)
        self.committed: Manifest | None = None
        self.present: set[str] = set()  # blobs this attempt knows are in the store
        self.last: Transfer | None = None  # the last upload made
        self.sending: tuple[int, float] | None = None  # (bytes, monotonic start) of the upload under way
        self._hashes: dict[str, tuple[int, int, int, str]] = {}  # path -> (size, mtime_ns, inode, sha256)
        self._manifests: dict[str, Manifest] = {}
        self._seq = 0
        self._salt = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # restoring ----------------------------------------------------------------------------------

    def restore(self, deadline: float | None = None) -> Transfer | None:
        """Make the working copy the latest committed snapshot (or empty). None when the deadline
        passed first; store errors are raised."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        latest = self.store.latest_checkpoint(self.claim.run_id)
        if latest is None:
            return Transfer(0, 0, 0.0)
        started = time.monotonic()
        holder = self.remote.path(self.claim.sweep_id, latest.run) if latest.run else self.run_dir
        manifest = self._manifest(latest.snapshot, holder)
        pairs = [(f"{holder}/{mf.blob_path(e.sha256)}", str(self.workdir / path)) for path, e in manifest.files.items()]
        if not self.remote.get_files(pairs, deadline):
            return None
        for path, entry in manifest.files.items():
            st = os.stat(self.workdir / path)
            self._hashes[path] = (st.st_size, st.st_mtime_ns, st.st_ino, entry.sha256)
        # Another run's snapshot (an exploit's start, by reference): none of its blobs are this run's,
        # so its first own snapshot sends them all and is then whole in this run's objects.
        self.committed, self.present = manifest, manifest.blobs() if holder == self.run_dir else set()
        done = Transfer(len(manifest.files), manifest.size, time.monotonic() - started)
        if self.counts is not None:
            self.counts.checkpoint_transfer("download", done.bytes, done.seconds)
        self.say(
            "info",
            "checkpoint restored",
            snapshot=latest.snapshot,
            files=done.files,
            bytes=done.bytes,
            seconds=round(done.seconds, 3),
        )
        return done

    # snapshots ----------------------------------------------------------------------------------

    def scan(self, stage: Path | None = None) -> dict[str, Entry]:
        """The working copy's files by content (hashed again only when a file changed). With
        ``stage``, each file is first hard-linked there, and hashed and sent from the link: a
        program that saves by writing a new file and renaming it over the old one (as it should)
        can go on saving while a snapshot is sent, and the snapshot stays the one hashed."""
        found: list[tuple[str, str, os.stat_result]] = []
        for folder, dirs, names in os.walk(self.workdir):
            dirs[:] = sorted(d for d in dirs if not d.startswith(mf.PRIVATE_PREFIX))
            for name in sorted(names):
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, self.workdir).replace(os.sep, "/")
                if mf.is_private(rel) or os.path.islink(full) or not os.path.isfile(full):
                    continue
                try:
                    if stage is not None:
                        full = self._link(full, stage / rel)
                    found.append((rel, full, os.stat(full)))
                except FileNotFoundError:  # removed while we looked: not part of this snapshot
                    continue

        def fresh(item: tuple[str, str, os.stat_result]) -> bool:
            known, st = self._hashes.get(item[0]), item[2]
            return known is None or known[:3] != (st.st_size, st.st_mtime_ns, st.st_ino)

        def digest(item: tuple[str, str, os.stat_result]) -> None:
            rel, full, st = item
            with contextlib.suppress(FileNotFoundError):
                self._hashes[rel] = (st.st_size, st.st_mtime_ns, st.st_ino, sha256_of(full))

        parallel(digest, [item for item in found if fresh(item)], None)  # hashlib lets go of the GIL
        return {
            rel: Entry(self._hashes[rel][3], st.st_size)
            for rel, _, st in found
            if rel in self._hashes and not fresh((rel, "", st))
        }

    @staticmethod
    def _link(source: str, target: Path) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            return source  # a filesystem without hard links: sent from where it is
        return str(target)

    def sync(self, deadline: float | None = None, keep: int | None = None) -> Outcome:
        """Snapshot the working copy and commit it (``deadline``: monotonic, for the whole of it)."""
        called = time.monotonic()
        left = None if deadline is None else deadline - called
        if not self._lock.acquire(timeout=-1 if left is None else max(0.0, left)):  # an earlier one still runs
            self._late(self.sending[0] if self.sending else 0, called)
            return self._counted("late")
        try:
            return self._counted(self._sync(deadline, self.keep if keep is None else keep))
        except Exception as exc:  # the store or Redis away: the previous snapshot stands
            self.say("warning", "checkpoint not committed: the store or Redis failed", error=first_line(exc))
            return self._counted("failed")
        finally:
            self._lock.release()

    def _counted(self, outcome: Outcome) -> Outcome:
        if self.counts is not None and outcome != "unchanged":
            self.counts.checkpoint_outcome(outcome)
        return outcome

    def _sync(self, deadline: float | None, keep: int) -> Outcome:
        stage = self.workdir / f"{mf.PRIVATE_PREFIX}stage-{self._salt}"
        shutil.rmtree(stage, ignore_errors=True)
        try:
            return self._snapshot(stage, deadline, keep)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _snapshot(self, stage: Path, deadline: float | None, keep: int) -> Outcome:
        started, self.sending = time.monotonic(), None
        step, _ = self.store.last_step_and_value(self.claim.run_id, "_step")  # before the files: never past them
        files = self.scan(stage)
        if (self.committed is None and not files) or (
            self.committed is not None and self.committed.same_files_as(files)
        ):
            return "unchanged"
        blobs = mf.to_upload(files, self.present)
        sent = sum(files[path].size for path in blobs.values())
        pairs = [(self._staged(stage, path), self._remote(mf.blob_path(sha))) for sha, path in blobs.items()]
        self.sending = (sent, started)
        if not self.remote.put_files(pairs, deadline):
            self._late(sent, started)
            return "late"
        self.present |= set(blobs)
        self._seq += 1
        snapshot = mf.snapshot_id(self.claim.attempt, self._seq, self._salt)
        manifest = Manifest(snapshot, self.claim.run_id, self.claim.attempt, files)
        data = manifest.dumps()
        self.remote.write(self._remote(mf.manifest_path(snapshot)), data)
        sent += len(data)
        if deadline is not None and time.monotonic() >= deadline:
            self._late(sent, started)
            return "late"
        dropped = self.store.commit_checkpoint(self.claim, snapshot, len(files), manifest.size, keep, step)
        seconds = time.monotonic() - started
        self.last = Transfer(len(blobs), sent, seconds)
        if self.counts is not None:
            self.counts.checkpoint_transfer("upload", sent, seconds)
        if dropped is None:
            self.say("warning", "checkpoint not committed: the run is no longer ours", snapshot=snapshot, bytes=sent)
            return "fenced"
        self.committed = self._manifests[snapshot] = manifest
        self.say(
            "info",
            "checkpoint committed",
            snapshot=snapshot,
            files=len(files),
            bytes=manifest.size,
            sent=sent,
            seconds=round(seconds, 3),
        )
        self._clean()
        return "committed"

    def _staged(self, stage: Path, rel: str) -> str:
        linked = stage / rel
        return str(linked) if linked.exists() else str(self.workdir / rel)

    def _late(self, sent: int, started: float) -> None:
        self.say("warning", LATE, bytes=sent, seconds=round(time.monotonic() - started, 3))

    # retention ----------------------------------------------------------------------------------

    def _clean(self) -> None:
        """Delete snapshots no longer kept, this and earlier attempts' uncommitted uploads, and blobs
        no kept snapshot names; only while the lease is surely ours (a later holder's uploads are
        then not yet begun), and a failure here costs nothing but space."""
        try:
            kept = {s.snapshot for s in self.store.checkpoints(self.claim.run_id) if not s.run}
            if not self.holding():
                return
            snapshots = self._remote("snapshots")
            names = [n.removesuffix(".json") for n in self.remote.names(snapshots) if n.endswith(".json")]
            stale = mf.stale_manifests(names, kept, self.claim.attempt)
            self.remote.delete([self._remote(mf.manifest_path(name)) for name in stale])
            for name in stale:
                self._manifests.pop(name, None)
            blobs = [n.rsplit("/", 1)[-1] for n in self.remote.names(self._remote("blobs"))]
            unused = mf.unreferenced(blobs, [self._manifest(name) for name in kept])
            self.remote.delete([self._remote(mf.blob_path(sha)) for sha in unused])
            self.present -= set(unused)
        except Exception as exc:
            self.say("warning", "old checkpoints not deleted yet", error=first_line(exc))

    # the periodic snapshot ----------------------------------------------------------------------

    def start(self, every: float) -> None:
        """Snapshot every ``every`` seconds on a thread of its own (0: only when asked)."""
        if every > 0:
            self._thread = threading.Thread(target=self._every, args=(every,), name="sweepd-sync", daemon=True)
            self._thread.start()

    def _every(self, every: float) -> None:
        while not self._stop.wait(every):
            self.sync()

    def stop(self) -> None:
        self._stop.set()

    # helpers ------------------------------------------------------------------------------------

    def _remote(self, relpath: str) -> str:
        return f"{self.run_dir}/{relpath}"

    def _manifest(self, snapshot: str, holder: str | None = None) -> Manifest:
        if snapshot not in self._manifests:
            path = f"{holder or self.run_dir}/{mf.manifest_path(snapshot)}"
            self._manifests[snapshot] = Manifest.loads(self.remote.read(path))
        return self._manifests[snapshot]
