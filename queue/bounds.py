"""The bounds on what a run (and a sweep file) can send, written once, pure.

Everything a training process sends is bounded and typed where it enters the agent (the socket's
lines, printed ``name=value`` lines, wandb's rows: ``clean_row``), again where it enters Redis
(``log.lua`` is given the same numbers), and every reader takes stored values through ``load`` and
prints JSON through ``dumps``, so no value stored, even one written into Redis by hand, crashes a
reader or makes its JSON invalid.

=====================  ==========================  ============================================
bound                  value                       past it
=====================  ==========================  ============================================
metrics per row        ``ROW_METRICS`` 1,000       the row's later metrics dropped
metric name            ``NAME_CHARS`` 256 chars    that metric dropped
string value           ``STRING_CHARS`` 1,024      cut to its first 1,024 characters
nesting of a value     ``DEPTH`` 8 levels          the deeper parts dropped (null in a list)
row                    ``ROW_BYTES`` 64 KiB JSON   metrics kept in order while the row fits
``_step``              an int in [0, 2**63)        the row dropped
socket line            ``LINE_BYTES`` 1 MiB        the line dropped (read in pieces, never held)
metric names per run   ``SUMMARY_FIELDS`` 10,000   a new name's value dropped (log.lua)
history of a run       10,000 rows, 32 MiB         the oldest rows dropped (log.lua)
output of an attempt   10,000 lines, 4 MiB         the oldest lines dropped (process.py)
output across attempts ``KEPT_ATTEMPTS`` 3         older attempts' output deleted (prelude.lua)
a parameter's value    ``PARAM_BYTES`` 10 KiB JSON refused at sweep create and enqueue (exit 2)
=====================  ==========================  ============================================

Everything dropped or cut is counted on the run (its ``cut`` field, ``runs --json``) and said once
per attempt in the agent's log; none of it ends the run or the agent. (Rows waiting in the agent
for Redis are bounded by agent/hold/reports.py; a line of output by agent/daemon/process.py.)

Non-finite numbers: NaN, infinities and integers too large for a float (``10**400``) are kept as
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``NONFINITE``), the spelling JavaScript and
Python's own ``json`` use for them. A string is no metric value: such a run is never the best run
and never reaches the search, and every JSON sweepd prints stays strict JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

ROW_METRICS = 1_000
NAME_CHARS = 256
STRING_CHARS = 1_024
DEPTH = 8
ROW_BYTES = 64 * 1024
MAX_STEP = 2**63
LINE_BYTES = 1024 * 1024
SUMMARY_FIELDS = 10_000
HISTORY_ROWS = 10_000
HISTORY_BYTES = 32 * 1024 * 1024
KEPT_ATTEMPTS = 3
PARAM_BYTES = 10 * 1024
#: A run that marks itself preempting and exits non-zero within ``QUICK_SECONDS`` of its start, with
#: no signal or notice at its agent, this many attempts in a row, ends ``failed`` (``preempt-loop``).
QUICK_MARKS = 5
QUICK_SECONDS = 60.0

STEP = "_step"
NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_DROP = object()


def finite(value: Any) -> float | None:
    """``value`` as a finite float when it is a number (not a bool), else None: what a metric is
    judged by (best run, search, target, plots)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _number(value: int | float) -> int | float | str:
    """A number as stored: itself when finite, else its ``NONFINITE`` string."""
    try:
        number = float(value)
    except OverflowError:
        return "Infinity" if value > 0 else "-Infinity"
    if math.isfinite(number):
        return value
    return NONFINITE[repr(number)]


def _clean(value: Any, depth: int, cuts: list[str], chars: int = STRING_CHARS) -> Any:
    """``value`` within the bounds (strings cut at ``chars``, non-finite numbers named), or ``_DROP``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        if len(value) > chars:
            cuts.append("string cut")
            return value[:chars]
        return value
    if depth >= DEPTH or not isinstance(value, (list, dict)):
        cuts.append("value nested too deep" if depth >= DEPTH else "value not JSON")
        return _DROP
    if isinstance(value, list):
        items = [_clean(item, depth + 1, cuts, chars) for item in value]
        return [None if item is _DROP else item for item in items]
    out = {}
    for key, item in value.items():
        cleaned = _clean(item, depth + 1, cuts, chars)
        if cleaned is not _DROP:
            out[str(key)[:NAME_CHARS]] = cleaned
    return out


def clean_row(row: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The row within the bounds, and what was cut or dropped (one word each, for the run's count
    and the agent's log). None when the row itself is dropped (its ``_step`` is no step)."""
    cuts: list[str] = []
    out: dict[str, Any] = {}
    size = 2
    if STEP in row:
        step = row[STEP]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < MAX_STEP:
            return None, ["row with a bad _step"]
        size += len(STEP) + len(str(step)) + 6
    metrics = 0
    for name, value in row.items():  # in the row's order, as it was given
        if name == STEP:
            out[STEP] = value
            continue
        if not isinstance(name, str) or len(name) > NAME_CHARS:
            cuts.append("metric name too long")
            continue
        if metrics >= ROW_METRICS:
            cuts.append("metrics past the row's count")
            continue
        cleaned = _clean(value, 0, cuts)
        if cleaned is _DROP:
            continue
        grows = len(json.dumps(name)) + len(json.dumps(cleaned)) + 4  # with ': ' and ', '
        if size + grows > ROW_BYTES:
            cuts.append("metrics past the row's bytes")
            continue
        out[name], size, metrics = cleaned, size + grows, metrics + 1
    return out, cuts


def load(text: str | bytes | None, default: Any = None) -> Any:
    """A stored JSON value, whatever was stored: numbers past a float and NaN/Infinity become their
    ``NONFINITE`` strings, text that is not JSON (or nested past what Python parses) is kept as a
    string, cut; everything within a reader's bounds (``readable``). ``default`` for a missing value."""
    if text is None:
        return default
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    try:
        value = json.loads(text, parse_constant=str)  # NaN, Infinity, -Infinity: named
    except (ValueError, RecursionError):
        return text[:PARAM_BYTES]
    return readable(value)


def readable(value: Any) -> Any:
    """Any decoded value as a reader takes it: twice the depth a row may hold (deeper parts null),
    strings up to ``PARAM_BYTES`` characters (a parameter's may be that long), numbers as stored."""
    cleaned = _clean(value, -DEPTH, [], PARAM_BYTES)
    return None if cleaned is _DROP else cleaned


def number(text: str | bytes | None) -> float | None:
    """A stored number (a curve's value, a hand-written one): a finite float, or None."""
    if text is None:
        return None
    try:
        return finite(float(text))
    except ValueError:
        return None


def strict(value: Any) -> Any:
    """``value`` with every non-finite float named (``NONFINITE``), so it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return NONFINITE[repr(value)]
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN or Infinity token) of anything a reader shows."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def step(text: str | bytes | None) -> int | None:
    """A stored ``_step`` as a step: None when there is none, or it is no step (hand-written)."""
    value = load(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_STEP:
        return None
    return value


def check_param(name: str, value: Any) -> str | None:
    """Why a parameter's value cannot be stored (larger than ``PARAM_BYTES`` as JSON), or None."""
    try:
        size = len(json.dumps(value, default=str).encode())
    except (ValueError, RecursionError):
        return f"{name}: not a value JSON can hold"
    if size > PARAM_BYTES:
        return f"{name}: a value of {size} bytes as JSON, larger than a parameter may be ({PARAM_BYTES} bytes)"
    return None
