"""Typed views of the hashes sweepd keeps for sweeps and runs (see keys.py), decoded from Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import bounds
from .states import State


def _s(raw: dict[Any, Any], name: str, default: str = "") -> str:
    value = raw.get(name.encode())
    return value.decode(errors="replace") if value is not None else default


def _int(raw: dict[Any, Any], name: str) -> int | None:
    value = raw.get(name.encode())
    try:
        return int(value) if value not in (None, b"") else None
    except ValueError:  # not written by sweepd: read as absent, never an error
        return None


def _params(text: str) -> dict[str, Any]:
    value = bounds.load(text, {})
    return value if isinstance(value, dict) else {}


def iso(ms: int | None) -> str | None:
    """A Redis-clock millisecond timestamp as ISO 8601 UTC, for people and JSON."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):  # no time sweepd writes
        return None


@dataclass(frozen=True)
class Claim:
    """What an agent (or a script run by hand) holds: one attempt of one run, fenced by its token.
    ``last_step`` is the last step the run logged before this attempt (None: it never logged), where
    the attempt's history continues from. ``recovered_after``: seconds from the run's interruption
    (preemption, or its holder's last renewal) to this claim; None when it was not interrupted."""

    sweep_id: str
    run_id: str
    attempt: int
    token: str
    params: dict[str, Any]
    last_step: int | None = None
    recovered_after: float | None = None


@dataclass(frozen=True)
class SweepRecord:
    id: str
    name: str
    state: str
    seed: int
    next_index: int
    created_at: int | None
    target_reached: bool
    config: dict[str, Any]
    pbt_runs: int = 0  # runs PBT's exploits made (not the search's)

    @classmethod
    def decode(cls, raw: dict[Any, Any]) -> SweepRecord:
        return cls(
            id=_s(raw, "id"),
            name=_s(raw, "name"),
            state=_s(raw, "state"),
            seed=_int(raw, "seed") or 0,
            next_index=_int(raw, "next_index") or 0,
            created_at=_int(raw, "created_at"),
            target_reached=_s(raw, "target_reached") == "1",
            config=json.loads(_s(raw, "config", "{}")),
            pbt_runs=_int(raw, "pbt_runs") or 0,
        )


@dataclass(frozen=True)
class RunRecord:
    id: str
    sweep_id: str
    state: State
    params: dict[str, Any]
    attempt: int
    agent_id: str | None
    exit_code: int | None
    reason: str | None
    index: int | None
    origin: str
    created_at: int | None
    started_at: int | None
    ended_at: int | None
    summary: dict[str, Any] = field(default_factory=dict)
    requeues: int = 0
    #: What the bounds cut or dropped of the run's data (bounds.py): metrics, values, rows, lines.
    cut: int = 0
    rung: int | None = None  # ASHA: the rung it was last paused at
    pbt: dict[str, Any] | None = None  # PBT: {"member", "generation", "parent"}

    @classmethod
    def decode(cls, raw: dict[Any, Any], summary: dict[Any, Any]) -> RunRecord:
        return cls(
            id=_s(raw, "id"),
            sweep_id=_s(raw, "sweep_id"),
            state=_s(raw, "state"),  # type: ignore[arg-type]  # written only by the scripts
            params=_params(_s(raw, "params", "{}")),
            attempt=_int(raw, "attempt") or 0,
            agent_id=_s(raw, "agent_id") or None,
            exit_code=_int(raw, "exit_code"),
            reason=_s(raw, "reason") or None,
            index=_int(raw, "index"),
            origin=_s(raw, "origin"),
            created_at=_int(raw, "created_at"),
            started_at=_int(raw, "started_at"),
            ended_at=_int(raw, "ended_at"),
            summary={k.decode(errors="replace"): bounds.load(v) for k, v in summary.items()},
            requeues=_int(raw, "requeues") or 0,
            cut=_int(raw, "cut") or 0,
            rung=_int(raw, "rung"),
            pbt=json.loads(_s(raw, "pbt")) if raw.get(b"pbt") else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape of a run (``sweepd runs --json``): names here are a contract."""
        return {
            "id": self.id,
            "sweep_id": self.sweep_id,
            "state": self.state,
            "attempt": self.attempt,
            "params": self.params,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "agent_id": self.agent_id,
            "reason": self.reason,
            "requeues": self.requeues,
            "index": self.index,
            "origin": self.origin,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "cut": self.cut,
            "rung": self.rung,
            "pbt": self.pbt,
        }
