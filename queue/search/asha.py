"""Promotion-based ASHA (``early_terminate: {type: asha}``), pure: curves in, decisions out.

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020), algorithm 2:

- Rungs are iteration counts ``int(min_iter * eta**k)`` below ``max_iter``; a run stops at each rung
  it reaches (``paused``) and finishes at ``max_iter``. One iteration is one logging of the sweep's
  metric (its curve, as hyperband counts), non-finite values dropped.
- When an agent asks for work, the highest rung first: a run in the top ``int(n / eta)`` of the n
  runs that reached rung k (by their value at that rung), paused at k (so not yet promoted), goes on
  to the next rung; else the search makes a new run. Ties break by run id, so every agent agrees.
- A run reached rung k when it was paused there (its ``rung`` is k or more), not merely when its
  curve is long enough: a run logs on through its grace, past the rung, and those values must not
  make it a member of a rung it never stopped at.

A run's ``rung`` (in its hash) is the index of the rung it was last paused at (None: never).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..space import EarlyTerminate, Goal

PAUSED = "paused"


@dataclass(frozen=True)
class RunRung:
    """One run as ASHA sees it: its state, the rung it was last paused at, its metric's curve."""

    state: str
    rung: int | None
    values: Sequence[float]


def rungs(et: EarlyTerminate) -> list[int]:
    """The iteration counts a run pauses at, ascending, all below max_iter (which ends it)."""
    if et.min_iter is None or et.max_iter is None or not et.eta > 1:
        raise ValueError("asha needs min_iter, eta > 1 and max_iter")
    found: list[int] = []
    band = float(et.min_iter)
    while int(band) < et.max_iter:
        if not found or int(band) > found[-1]:
            found.append(int(band))
        band *= et.eta
    return found


def stop_at(et: EarlyTerminate, rung: int | None) -> int:
    """The curve length at which a run last paused at ``rung`` stops next (max_iter: it finishes)."""
    marks = rungs(et)
    k = 0 if rung is None else rung + 1
    return marks[k] if k < len(marks) else int(et.max_iter or 0)


def rung_index(et: EarlyTerminate, length: int) -> int | None:
    """The index of the highest rung a curve of ``length`` values reached (None: none yet)."""
    reached = [k for k, band in enumerate(rungs(et)) if band <= length]
    return reached[-1] if reached else None


def valid(values: Sequence[float], goal: Goal) -> list[float]:
    """The curve's finite numbers, signed so that lower is better."""
    sign = -1.0 if goal == "maximize" else 1.0
    return [
        sign * float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]


def to_promote(et: EarlyTerminate, goal: Goal, runs: Mapping[str, RunRung]) -> tuple[str, int] | None:
    """The run to promote now and the rung it was paused at, or None: make a new run instead."""
    curves = {rid: valid(run.values, goal) for rid, run in runs.items()}
    marks = rungs(et)
    for k in reversed(range(len(marks))):
        band = marks[k]
        reached = sorted(
            (values[band - 1], rid)
            for rid, values in curves.items()
            if _paused_at_or_past(runs[rid], k) and len(values) >= band
        )
        top = reached[: int(len(reached) / et.eta)]
        for _, rid in top:
            run = runs[rid]
            if run.state == PAUSED and run.rung == k:
                return rid, k
    return None


def _paused_at_or_past(run: RunRung, k: int) -> bool:
    return run.rung is not None and run.rung >= k
