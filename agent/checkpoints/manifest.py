"""What a snapshot is, and the choices made about it: which blobs to upload, which to delete (pure).

A snapshot is a manifest (``snapshots/<id>.json``) naming each file of the working copy by the
SHA-256 of its contents; the contents are blobs (``blobs/<sha[:2]>/<sha>``), written once and shared
by every snapshot of the run that has the same file. A manifest is written only after every blob it
names is in the store, and never changed: a partial upload is never a snapshot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Files of the working copy that are the agent's, not the run's: never part of a snapshot. The
#: agent writes them again for each attempt (launch.py's params file, wandb_env.py's W&B config).
PRIVATE_PREFIX = ".sweepd-"
AGENT_FILES = frozenset({"wandb-config.yaml"})
_ID = re.compile(r"^a(\d+)-\d+-[0-9a-f]+$")


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    snapshot: str
    run_id: str
    attempt: int
    files: Mapping[str, Entry]  # path relative to the working copy (``/``-separated) -> contents

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def blobs(self) -> set[str]:
        return {entry.sha256 for entry in self.files.values()}

    def same_files_as(self, files: Mapping[str, Entry]) -> bool:
        return dict(self.files) == dict(files)

    def dumps(self) -> bytes:
        files = {path: {"sha256": e.sha256, "size": e.size} for path, e in sorted(self.files.items())}
        body = {"snapshot": self.snapshot, "run": self.run_id, "attempt": self.attempt, "files": files}
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def loads(cls, raw: bytes) -> Manifest:
        data: dict[str, Any] = json.loads(raw)
        files = {path: Entry(str(e["sha256"]), int(e["size"])) for path, e in data["files"].items()}
        return cls(str(data["snapshot"]), str(data["run"]), int(data["attempt"]), files)


def snapshot_id(attempt: int, seq: int, salt: str) -> str:
    """``a<attempt>-<seq>-<salt>``: the attempt is read back by the clean-up (``attempt_of``)."""
    return f"a{attempt:06d}-{seq:06d}-{salt}"


def attempt_of(snapshot: str) -> int | None:
    match = _ID.match(snapshot)
    return int(match.group(1)) if match else None


def blob_path(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def manifest_path(snapshot: str) -> str:
    return f"snapshots/{snapshot}.json"


def is_private(relpath: str) -> bool:
    return relpath in AGENT_FILES or relpath.rsplit("/", 1)[-1].startswith(PRIVATE_PREFIX)


def to_upload(files: Mapping[str, Entry], present: set[str]) -> dict[str, str]:
    """The blobs to send: one file per content not already ``present`` in the store (sha -> path)."""
    out: dict[str, str] = {}
    for path, entry in sorted(files.items()):
        if entry.sha256 not in present and entry.sha256 not in out:
            out[entry.sha256] = path
    return out


def stale_manifests(names: Iterable[str], kept: set[str], attempt: int) -> list[str]:
    """Snapshots in the store that nothing will read: not kept, and made by this attempt or an
    earlier one (a later attempt's may be on its way to a commit: never touched)."""
    out = []
    for name in names:
        made_by = attempt_of(name)
        if name not in kept and made_by is not None and made_by <= attempt:
            out.append(name)
    return out


def unreferenced(blobs: Iterable[str], kept: Iterable[Manifest]) -> list[str]:
    """Blobs no kept snapshot names."""
    wanted: set[str] = set()
    for manifest in kept:
        wanted |= manifest.blobs()
    return sorted(set(blobs) - wanted)
