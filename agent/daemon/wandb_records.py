"""The records of one attempt's W&B run, as wandb's own reader prints them, turned into sweepd's rows.
Pure: no I/O.

``wandb leet inspect --json`` prints one JSON object per record of a run's transaction log:
``{"num": n, "type": "history", "history": {"item": {"_step": 3, "loss": 0.2, ...}}}``; summary
updates (``run.summary[...] = ...``; wandb also mirrors each history row there, with its ``_step``),
``preempting`` (``run.mark_preempting()``) and ``exit`` records among others. Only what the JSON
names is read, by name, so a record type or field wandb adds is ignored, not misread.

Steps: a resumed attempt logs into the same W&B run, but offline wandb counts ``_step`` from 0 again
(online it continues from the server's). The first step an attempt logs is mapped onto the run's
history: when it does not move past the run's last step, every step of the attempt is shifted to
continue from it; ``rows.Steps`` then keeps the history one forward-moving series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sweepd.queue.rows import STEP, Steps


def numbers(item: dict[str, Any]) -> dict[str, int | float | bool]:
    """The metric values of a row: numbers and booleans under the user's own names (wandb's start
    with ``_``); text, media, lists and wandb's non-finite markers (``"Infinity"``) are left out."""
    out: dict[str, int | float | bool] = {}
    for name, value in item.items():
        if not isinstance(name, str) or name.startswith("_"):
            continue
        if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
            out[name] = value
    return out


@dataclass
class Records:
    """Reads one attempt's records in order: ``feed`` returns the rows for sweepd's history."""

    last_step: int | None = None  # the run's last logged step before this attempt
    steps: Steps = field(init=False)
    offset: int | None = None  # added to wandb's steps; fixed at the attempt's first row
    last_num: int = 0  # the last record read: a second read of the file skips what was read
    preempting: bool = False  # the script called run.mark_preempting()
    exited: bool = False  # wandb wrote the run's exit record: nothing follows
    summary: dict[str, int | float | bool] = field(default_factory=dict)  # run.summary values set, not taken

    def __post_init__(self) -> None:
        self.steps = Steps(self.last_step)

    def take_summary(self) -> dict[str, int | float | bool]:
        """The summary values the script set since the last take."""
        values, self.summary = self.summary, {}
        return values

    def feed(self, record: object) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            return []
        num = record.get("num")
        if isinstance(num, int):
            if num <= self.last_num:
                return []
            self.last_num = num
        kind = record.get("type")
        body = record.get(kind) if isinstance(kind, str) else None
        if kind == "preempting":
            self.preempting = True
        elif kind == "exit":
            self.exited = True
        elif kind == "summary" and isinstance(body, dict) and isinstance(body.get("update"), dict):
            update = body["update"]
            if STEP not in update:  # a history row's mirror carries its step; the script's own sets do not
                self.summary.update(numbers(update))
        elif kind == "history" and isinstance(body, dict) and isinstance(body.get("item"), dict):
            return self._row(body["item"])
        return []

    def _row(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        given = item.get(STEP)
        metrics = numbers(item)
        if not isinstance(given, int) or isinstance(given, bool):
            step = self.steps.assign(None)
        else:
            if self.offset is None:
                last = self.last_step
                self.offset = 0 if last is None or given > last else last + 1 - given
            step = self.steps.assign(given + self.offset)
        if step is None or not metrics:
            return []
        return [{**metrics, STEP: step}]
