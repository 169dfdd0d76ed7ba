"""Metric rows, pure: numbering their steps across attempts, and reading them from printed lines.

A row is a JSON object of metric values plus ``_step``, the position in the run's history (as in
W&B). A run's history is one series across all its attempts: a resumed attempt continues from the
last step the run logged (``Steps``), and a row whose step goes back before it is dropped, as W&B
drops it ("steps must be monotonically increasing").

Programs that do not use the Python API report metrics by printing them. The agent reads each line
of the program's stdout with the sweep's ``stdout_metrics`` pattern (by default ``name=value``
pairs, numbers only: ``epoch=3 loss=0.25 acc=9.1e-1``), as Katib's stdout collector does; a line
with no match is not a row. A pair named ``_step`` gives the row's step.
"""

from __future__ import annotations

import math
import re
from typing import Any

STEP = "_step"

#: ``name=value`` pairs: a name (letters, digits, ``_ . / -``, not starting with a digit), ``=``
#: (spaces allowed around it), a number; neither glued to more text (``--lr=0.1`` and ``v=1.2.3``
#: are not pairs).
DEFAULT_PATTERN = (
    r"(?<![\w.\-/])(?P<name>[A-Za-z_][\w.\-/]*)\s*=\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])"
)
LINE_CAP = 4096  # characters of a line that are read: a pattern's cost stays bounded
_INT = re.compile(r"[-+]?\d+")


def compile_pattern(text: str) -> re.Pattern[str]:
    """The pattern, checked: it compiles, and says which group is the name and which the value
    (named groups ``name`` and ``value``, or the first two groups). ValueError says why not."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    names = set(pattern.groupindex)
    if names & {"name", "value"} and not {"name", "value"} <= names:
        raise ValueError("has one of the groups (?P<name>...) and (?P<value>...) but not the other")
    if not names >= {"name", "value"} and pattern.groups < 2:
        raise ValueError("needs two groups, the metric's name and its value: (?P<name>...) and (?P<value>...)")
    return pattern


def number(text: str) -> int | float | None:
    """``text`` as an int or a finite float, or None."""
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_line(pattern: re.Pattern[str], line: str) -> dict[str, int | float]:
    """The metrics printed on one line (empty when there are none); the last of a repeated name wins."""
    named = {"name", "value"} <= set(pattern.groupindex)
    out: dict[str, int | float] = {}
    for match in pattern.finditer(line[:LINE_CAP]):
        name, raw = (match.group("name"), match.group("value")) if named else (match.group(1), match.group(2))
        value = number(raw) if raw is not None else None
        if name and value is not None:
            out[name.strip()] = value
    return out


class Steps:
    """The step of each row of one attempt, continuing from the run's last logged step.

    ``assign(None)`` gives the next step; ``assign(n)`` takes ``n`` (later rows count on from it),
    or refuses it (None) when it goes back before the last step logged: the history stays one
    series that only moves forward.
    """

    def __init__(self, last: int | None = None) -> None:
        self.last = last
        self.next = 0 if last is None else last + 1

    def assign(self, step: int | None = None) -> int | None:
        if step is None:
            step = self.next
        elif self.last is not None and step < self.last:
            return None
        self.last, self.next = step, step + 1
        return step


def plain(value: Any) -> Any:
    """A metric value JSON can hold: numpy and torch scalars become numbers (``.item()``), other
    objects their text. Used as ``json.dumps(..., default=plain)``."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def config_pattern(value: object) -> tuple[str | None, str | None]:
    """A sweep's ``stdout_metrics`` key: ``true`` (the default pattern), ``false`` (no parsing), or a
    pattern of its own. Returns (the pattern or None when off, the problem or None)."""
    if value is True:
        return DEFAULT_PATTERN, None
    if value is False:
        return None, None
    if not isinstance(value, str) or not value:
        return None, f"expected true, false or a regular expression, got {value!r}"
    try:
        compile_pattern(value)
    except ValueError as exc:
        return None, f"{value!r}: {exc}"
    return value, None
