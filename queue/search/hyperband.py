"""Hyperband early termination (``early_terminate: {type: hyperband}``), pure: curves in, run ids out.

This is W&B's rule (wandb/sweeps ``src/sweeps/hyperband_stopping.py``, the current code, which reads
``strict``), decision for decision, so a config brought from W&B stops the same runs:

- Brackets are iteration counts. ``max_iter`` + ``s``: ``int(max_iter / eta**i)`` for i = 1..s, stopping
  at the first below 1, sorted. ``min_iter``: ``int(min_iter * eta**i)`` for i = 0, 1, ... (the first
  bracket is ``min_iter`` itself, as W&B's docs show: min_iter 3, eta 3 gives 3, 9, 27, 81, ...).
- One iteration is one logging of the metric; non-finite values are dropped first, as W&B's
  ``metric_history(filter_invalid=True)`` does, so they do not count as iterations.
- The cut-off at bracket b is ``sorted(v)[int((1 / eta) * len(v))]`` where v holds, for every run that
  logged at least b values (any state: finished, failed, stopped and queued runs count), its b-th value.
  ``(1 / eta) * n`` and not ``n / eta``: they differ for some n when eta is not an integer (eta 1.1,
  n 33 gives 29 against 30), and W&B multiplies.
- Only ``running`` runs are judged, each at the last bracket it reached: it is stopped when its value
  there (``strict``) or its best value so far (not strict; over everything it logged, including values
  after that bracket) is worse than the cut-off. A tie survives. ``goal: maximize`` negates the values,
  so "worse" and "best" follow the goal.
- ``preempting`` runs are not judged, as W&B judges only running ones: such a run is on its way back to
  the queue with a checkpoint, and stopping it would race the requeue; it is judged when it runs again.
  Its values still count towards the cut-offs.

Where W&B's code and docs disagree, and what sweepd does:

- ``strict``'s default: W&B's schema fills in ``true`` (the code), the docs say ``false``. sweepd follows
  the docs (``EarlyTerminate.strict`` defaults to False); write ``strict: true`` to get W&B's engine.
- What a run is compared with: the docs say "all previously reported metric values"; the code compares
  the values runs had at the same bracket. sweepd does what the code does.
- How many survive: the docs say the top ``1/eta``; the cut-off is the value at index ``int(n/eta)``, so
  ``int(n/eta) + 1`` runs (and any ties) pass. sweepd follows the code.
- Which value is "at" bracket b: W&B's older code (``sweeps`` 0.2.0, the last on PyPI) read the
  (b+1)-th value and had no ``strict``; the current code reads the b-th, which matches the docs'
  "iteration count". sweepd reads the b-th.
- W&B lists 100 ``min_iter`` brackets whatever their size; sweepd lists the same ones but stops once
  they pass 2**53 (no run logs that often, and floats stop counting exactly there), and drops repeats
  (``int`` can repeat a bracket when eta is close to 1; a repeat has the same cut-off, so nothing changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..space import EarlyTerminate, SweepConfig

_MIN_ITER_BRACKETS = 100  # W&B's loop bound for the min_iter form
_LARGEST_BRACKET = 2**53


@dataclass(frozen=True)
class RunCurve:
    """One run's state and its metric's values in the order logged (one value = one iteration)."""

    state: str
    values: Sequence[float]


def brackets(et: EarlyTerminate) -> list[int]:
    """The iteration counts at which runs are judged, ascending; ValueError when there are none.

    ``max_iter`` wins when both forms are given, as in W&B.
    """
    if not et.eta > 1:
        raise ValueError(f"hyperband needs eta > 1, got {et.eta!r}")
    found: list[int] = []
    if et.max_iter is not None:
        if et.s is None:
            raise ValueError("hyperband with max_iter needs s")
        band = float(et.max_iter)
        for _ in range(et.s):
            band /= et.eta
            if band < 1:
                break
            found.append(int(band))
    elif et.min_iter is not None:
        band = float(et.min_iter)
        for _ in range(_MIN_ITER_BRACKETS):
            if band > _LARGEST_BRACKET:
                break
            found.append(int(band))
            band *= et.eta
    else:
        raise ValueError("hyperband needs min_iter, or max_iter with s")
    if not found:
        raise ValueError(
            f"hyperband has no bracket: max_iter {et.max_iter} is below eta {et.eta}; raise max_iter or lower eta"
        )
    return sorted(set(found))


def to_stop(config: SweepConfig, histories: Mapping[str, RunCurve]) -> set[str]:
    """The ids of the running runs hyperband stops now (empty without early_terminate or a metric).

    ``histories`` should hold every run of the sweep that logged the metric, whatever its state: the
    cut-offs are computed from all of them. Pure and idempotent: calling it again with the same
    curves stops the same runs.
    """
    et, metric = config.early_terminate, config.metric
    if et is None or metric is None or et.type != "hyperband":
        return set()
    sign = -1.0 if metric.goal == "maximize" else 1.0  # after this, lower is better
    curves = {rid: _valid(curve.values, sign) for rid, curve in histories.items()}
    r = 1.0 / et.eta
    cutoffs: list[tuple[int, float]] = []
    for band in brackets(et):
        reached = sorted(values[band - 1] for values in curves.values() if len(values) >= band)
        if not reached:  # brackets ascend: no run reached this one, so none reached a later one
            break
        cutoffs.append((band, reached[int(r * len(reached))]))
    stop: set[str] = set()
    for rid, curve in histories.items():
        if curve.state != "running":
            continue
        values = curves[rid]
        judged = [(band, cutoff) for band, cutoff in cutoffs if band <= len(values)]
        if not judged:
            continue  # it has not reached the first bracket yet
        band, cutoff = judged[-1]
        value = values[band - 1] if et.strict else min(values)
        if value > cutoff:
            stop.add(rid)
    return stop


def _valid(values: Sequence[float], sign: float) -> list[float]:
    """The finite numbers of a curve, signed so that lower is better (W&B's filter_invalid)."""
    return [
        sign * float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
