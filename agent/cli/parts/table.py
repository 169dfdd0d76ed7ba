"""The run table behind ``sweepd runs``: columns, filtering, sorting and the text and CSV renderings.

Pure: from ``RunRecord``s and the ``SweepConfig`` to rows; no Redis, no click, so every rule here
(which columns, which order, what a missing value looks like) is tested without a server.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import IO, Any, Literal

from sweepd.queue.errors import UserError
from sweepd.queue.records import RunRecord
from sweepd.queue.space import SweepConfig
from sweepd.queue.states import STATES
from sweepd.queue.summary import metric_value

ColumnKind = Literal["run", "param", "metric"]

#: The fixed leading columns: (CSV header, text header, RunRecord attribute).
RUN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id"),
    ("state", "state", "state"),
    ("attempt", "attempt", "attempt"),
    ("exit_code", "exit", "exit_code"),
)
#: ``--sort`` keys that are not columns: the default order, and the sweep's metric in its goal's direction.
CREATED, METRIC = "created", "metric"
MISSING = "-"
#: What the text table shows escaped: C0 and C1 controls (newline, tab, ESC...), the Unicode line and
#: paragraph separators, and the bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class Column:
    """One column: ``header`` is unique (CSV header and ``--sort`` key); ``name`` is the parameter's
    dotted name, the metric's name or the record attribute it reads."""

    kind: ColumnKind
    name: str
    header: str
    title: str

    def value(self, run: RunRecord, flat_params: dict[str, Any]) -> Any:
        if self.kind == "run":
            return getattr(run, self.name)
        if self.kind == "param":
            return flat_params.get(self.name)
        return run.summary.get(self.name)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted names (``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``), as users write them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def columns(config: SweepConfig, runs: list[RunRecord]) -> list[Column]:
    """The fixed columns, then every parameter (the config's order, then any other a run has), then every
    summary metric (the sweep's metric first, the rest by name, ``_``-prefixed ones such as ``_step`` last).
    A parameter or metric whose name is taken gets a ``params:``/``summary:`` prefix, so headers stay unique."""
    param_names = [p.name for p in config.params]
    seen = set(param_names)
    for run in runs:
        for name in flatten(run.params):
            if name not in seen:
                seen.add(name)
                param_names.append(name)
    metric_names = sorted({k for run in runs for k in run.summary}, key=lambda k: (k.startswith("_"), k))
    if config.metric is not None:
        metric_names = [config.metric.name, *(m for m in metric_names if m != config.metric.name)]
    out = [Column("run", attr, header, title) for header, title, attr in RUN_COLUMNS]
    if any(run.rung is not None for run in runs):  # ASHA: the rung each run was last paused at
        out.append(Column("run", "rung", "rung", "rung"))
    taken = {c.header for c in out} | {CREATED, METRIC}
    groups: tuple[tuple[ColumnKind, list[str], str], ...] = (
        ("param", param_names, "params:"),
        ("metric", metric_names, "summary:"),
    )
    for kind, names, prefix in groups:
        for name in names:
            header = name if name not in taken else prefix + name
            taken.add(header)
            out.append(Column(kind, name, header, header))
    return out


def sort_keys(config: SweepConfig, cols: list[Column]) -> list[str]:
    """What ``--sort`` accepts, in the order the help and the error list them."""
    return [CREATED, *([METRIC] if config.metric else []), *(c.header for c in cols)]


def select(runs: Iterable[RunRecord], states: Collection[str]) -> list[RunRecord]:
    """The runs in one of ``states`` (all of them when ``states`` is empty), creation order kept."""
    return [r for r in runs if not states or r.state in states]


def _rank(value: Any) -> tuple[int, Any]:
    """A total order over mixed values: numbers, then text, then anything else by its JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True))


def order(
    config: SweepConfig, cols: list[Column], runs: list[RunRecord], spec: str | None, *, reverse: bool = False
) -> list[RunRecord]:
    """``runs`` (in creation order) ordered by ``--sort``'s ``spec``, a key of ``cols`` (the whole sweep's
    columns, so a key does not vanish with a filter).

    ``None`` or ``created``: creation order. ``metric``: the sweep's metric, best first for its goal.
    Any column header (a parameter, a summary metric, ``id``, ``state``...): ascending; ``-KEY``:
    descending (as W&B's ``order="-summary_metrics.loss"`` and ``squeue -S -t``). ``reverse`` flips the
    direction. Runs without a value always come last, in creation order; ties keep creation order.
    """
    descending = False
    key = spec or CREATED
    if key.startswith("-") and len(key) > 1:
        key, descending = key[1:], True
    known = sort_keys(config, cols)
    if key not in known:  # the text table's titles work too: `exit` for `exit_code`
        key = next((c.header for c in cols if c.title == key), key)
    if key not in known:
        raise UserError(f"unknown sort key {key!r}; known keys: {', '.join(known)}")
    if key == CREATED:
        ordered = list(reversed(runs)) if descending != reverse else list(runs)
        return ordered
    if key == METRIC:
        assert config.metric is not None
        values: list[Any] = [metric_value(config, r) for r in runs]
        descending ^= config.metric.goal == "maximize"
    elif key == "state":  # the lifecycle's order (queued, running, ... stopped), not the alphabet's
        values = [STATES.index(r.state) for r in runs]
    else:
        col = next(c for c in cols if c.header == key)
        values = [col.value(r, flatten(r.params)) for r in runs]
    present = [(v, r) for v, r in zip(values, runs, strict=True) if v is not None and not _nan(v)]
    missing = [r for v, r in zip(values, runs, strict=True) if v is None or _nan(v)]
    present.sort(key=lambda vr: _rank(vr[0]), reverse=descending != reverse)  # stable both ways
    return [r for _, r in present] + missing


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def rows(cols: list[Column], runs: list[RunRecord]) -> list[list[Any]]:
    """One list of raw values per run (None where the run has no value), in the columns' order."""
    out = []
    for run in runs:
        flat = flatten(run.params)
        out.append([c.value(run, flat) for c in cols])
    return out


def short(value: Any) -> str:
    """A value for people: floats to 5 significant digits, missing as ``-``, structures as JSON."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def printable(cell: str) -> str:
    """``cell`` with its control characters escaped (``\\n``, ``\\x1b``, ``\\u2028``), so one run stays one
    line of the table and a value cannot move the terminal's cursor or recolour it; CSV and JSON keep
    the exact text."""

    def escape(found: re.Match[str]) -> str:
        char = found.group()
        code = ord(char)
        return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")

    return _CONTROL.sub(escape, cell)


def exact(value: Any) -> str:
    """A value for scripts (CSV): full precision, missing as the empty string, structures as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value) if not isinstance(value, float) else repr(value)
    return json.dumps(value, separators=(",", ":"))


def text(cols: list[Column], table: list[list[Any]]) -> list[str]:
    """An aligned table with a header line: numbers right-aligned, text left-aligned, two spaces apart;
    control characters in values and titles are escaped (``printable``)."""
    cells = [[printable(short(v)) for v in row] for row in table]
    titles = [printable(c.title) for c in cols]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in table if row[i] is not None)
        for i in range(len(cols))
    ]
    widths = [max([len(titles[i]), *(len(row[i]) for row in cells)]) for i in range(len(cols))]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(titles), *(line(row) for row in cells)]


def write_csv(cols: list[Column], table: list[list[Any]], out: IO[str]) -> None:
    """The table as CSV (the csv module quotes what needs quoting), one header row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.header for c in cols])
    for row in table:
        writer.writerow([exact(v) for v in row])
