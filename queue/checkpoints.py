"""A run's committed checkpoint snapshots: the fenced commit (``checkpoint.lua``) and the reads.

The snapshot's bytes live in an object store (the agent's ``sweepd.agent.checkpoints``); Redis holds
only which snapshots are committed, newest first (``sweepd:run:<rid>:checkpoints``). ``Store``
(store.py) holds this part; core.py registers the script with the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import keys
from .core import Core
from .records import Claim, iso


@dataclass(frozen=True)
class Snapshot:
    """One committed snapshot as Redis knows it: what ``sweepd checkpoints`` lists and a resuming
    attempt downloads (the newest)."""

    snapshot: str
    attempt: int
    files: int
    size: int  # bytes
    committed_at: int  # ms, Redis clock
    run: str = ""  # the run whose objects hold it when not this one (an exploit's start, by reference)
    step: int | None = None  # the run's last logged step when its files were read (None: unknown)

    @classmethod
    def decode(cls, raw: str | bytes) -> Snapshot:
        data = json.loads(raw)
        return cls(
            str(data["snapshot"]),
            int(data["attempt"]),
            int(data["files"]),
            int(data["bytes"]),
            int(data.get("committed_at") or 0),
            str(data.get("run") or ""),
            int(data["step"]) if data.get("step") is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        """The contract's shape (``sweepd runs --json``'s ``checkpoint``, ``sweepd checkpoints --json``)."""
        out = {
            "snapshot": self.snapshot,
            "attempt": self.attempt,
            "files": self.files,
            "bytes": self.size,
            "committed_at": iso(self.committed_at),
        }
        return {**out, "run": self.run} if self.run else out


class Checkpoints:
    """The commit and the reads (a part of ``Store``)."""

    def __init__(self, core: Core) -> None:
        self.core, self.r = core, core.r

    def commit_checkpoint(
        self, claim: Claim, snapshot: str, files: int, size: int, keep: int, step: int | None = None
    ) -> list[Snapshot] | None:
        """Make ``snapshot`` (uploaded whole) the run's latest, fenced by the claim's token
        (checkpoint.lua). None when the claim is stale (nothing written); else the snapshots trimmed
        off beyond the ``keep`` newest, whose objects the caller deletes (never one another run's
        first snapshot references: pinned, it stays in the list). ``step``: the run's last logged
        step read before its files were (where a run started from this snapshot continues)."""
        fields: dict[str, Any] = {"snapshot": snapshot, "attempt": claim.attempt, "files": files, "bytes": size}
        record = json.dumps(fields if step is None else {**fields, "step": step})
        got = self.core.run(
            "checkpoint",
            [
                keys.run(claim.run_id),
                keys.sweep_held(claim.sweep_id),
                keys.run_checkpoints(claim.run_id),
                keys.sweep_pins(claim.sweep_id),
            ],
            [claim.run_id, claim.token, record, max(1, keep), snapshot],
        )
        if not isinstance(got, list):
            return None
        return [Snapshot.decode(item) for item in got[1:]]

    def checkpoints(self, rid: str) -> list[Snapshot]:
        """The run's committed snapshots, newest (the latest) first."""
        keys.check_id(rid, "run id")
        return [Snapshot.decode(item) for item in self.r.lrange(keys.run_checkpoints(rid), 0, -1)]

    def latest_checkpoint(self, rid: str) -> Snapshot | None:
        raw = self.r.lindex(keys.run_checkpoints(rid), 0)
        return Snapshot.decode(raw) if raw is not None else None

    def latest_checkpoints(self, rids: list[str]) -> dict[str, Snapshot | None]:
        """Each run's latest snapshot, in one round trip (``sweepd runs --json``)."""
        with self.r.pipeline(transaction=False) as pipe:
            for rid in rids:
                pipe.lindex(keys.run_checkpoints(rid), 0)
            raws = pipe.execute()
        return {rid: Snapshot.decode(raw) if raw is not None else None for rid, raw in zip(rids, raws, strict=True)}
