"""Metric rows, pure: numbering their steps across attempts, and reading them from printed lines.

A row is a JSON object of metric values plus ``_step``, the position in the run's history (as in
W&B). A run's history is one series across all its attempts: a resumed attempt continues from the
last step the run logged (``Steps``), and a row whose step goes back before it is dropped, as W&B
drops it ("steps must be monotonically increasing").

Programs that do not use the Python API report metrics by printing them. The agent reads each line
of the program's stdout with the sweep's ``stdout_metrics`` pattern (by default ``name=value``
pairs, numbers only: ``epoch=3 loss=0.25 acc=9.1e-1``), as Katib's stdout collector does; a line
with no match is not a row. A pair named ``_step`` gives the row's step.

A sweep's own pattern runs on RE2 (google-re2), whose matching takes time linear in the line: a
pattern that would backtrack for minutes in Python's ``re`` (``(x+x+)+y``) costs microseconds, so
reading a program's output can never stall the agent that must renew its run's lease. A pattern RE2
does not take (lookarounds, backreferences) is refused when the sweep is created. The default
pattern is ours, uses lookarounds, and starts a match only at the start of a word: linear in ``re``.
Either way a line is read up to ``LINE_CAP`` characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

STEP = "_step"

#: ``name=value`` pairs, as the README says: a name (letters, digits, ``_ . / -``, not starting with
#: a digit), ``=`` with no space around it, a number; neither glued to more text (``--lr=0.1`` and
#: ``v=1.2.3`` are not pairs, nor is ``step = 0``, which is prose or code, not a metric).
DEFAULT_PATTERN = (
    r"(?<![\w.\-/])(?P<name>[A-Za-z_][\w.\-/]*)="
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])"
)
LINE_CAP = 4096  # characters of a line that are read: a pattern's cost stays bounded
_INT = re.compile(r"[-+]?\d+")
_RE2 = re2.Options()
_RE2.log_errors = False  # the refusal is ours to say, in one line


class Match(Protocol):
    def group(self, key: int | str, /) -> str | None: ...


class Pattern(Protocol):
    """What ``re`` and RE2 patterns share, as far as reading lines needs."""

    @property
    def groups(self) -> int: ...

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def finditer(self, string: str, /) -> Iterator[Match]: ...


def compile_pattern(text: str) -> Pattern:
    """The pattern, checked: it compiles (the default with ``re``, any other with RE2), and says
    which group is the name and which the value (named groups ``name`` and ``value``, or the
    first two groups). ValueError says why not."""
    try:
        pattern: Pattern = re.compile(text) if text == DEFAULT_PATTERN else re2.compile(text, _RE2)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(text)
        except re.error:
            raise ValueError(f"not a valid regular expression: {detail}") from None
        raise ValueError(
            f"not a pattern the linear-time engine (RE2) takes: {detail} (sweepd reads printed lines with "
            "RE2 so that no pattern can stall an agent; lookarounds and backreferences are not available)"
        ) from None
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


def parse_line(pattern: Pattern, line: str) -> dict[str, int | float]:
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
