"""What a held run reports (its metric rows and summary values), cut to the bounds where they enter
and written by the hold (hold.py's ``Hold`` is a ``Reports``): the rule of queue/bounds.py applied
once for every way rows come in (the channel, printed lines, wandb's rows, a script run by hand).

Rows wait in a buffer bounded in rows and bytes (``CAP``, ``BUFFER_BYTES``: the oldest go first)
while Redis is away, and are written ``WRITE_ROWS`` at a time, so no write is larger than a few
tens of MB whatever piled up. What the bounds cut is counted and written on the run (``cut``) with
the rows; each kind is said once. Redis refusing a write for good (``backoff.refused``: a script's
error, a key of the wrong type) makes ``refused`` the reason the run ends ``failed``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Literal

from sweepd.queue import bounds
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

from .backoff import REDIS_DOWN, refused
from .buffer import Buffer, Latest

BUFFER_BYTES = 64 * 1024 * 1024  # bytes of rows waiting to be written (Redis away)
WRITE_ROWS = 500  # rows per log.lua call: at most 500 rows of 64 KiB, 32 MiB


def row_bytes(row: dict[str, Any]) -> int:
    return len(json.dumps(row))


class Reports:
    """The reporting half of a hold; ``init_reports`` is called by its ``__init__``."""

    store: Store
    claim: Claim
    say: Callable[..., None]
    on_redis_error: Callable[[], None]

    def init_reports(self) -> None:
        self.rows = Buffer(max_bytes=BUFFER_BYTES, size=row_bytes)  # metric rows waiting to be written
        self.summary = Latest()  # summary values set without a row (a W&B script's run.summary)
        self._cuts = 0  # rows, metrics, values, lines cut or dropped at the bounds, not yet written
        self._cuts_said: set[str] = set()  # each kind is said once per hold
        self._cuts_lock = threading.Lock()
        #: Redis refused the run's rows (not a passing error): the run ends ``failed`` with this reason.
        self.refused: str | None = None

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows from the run (any thread), each within the bounds (bounds.py) before it is buffered."""
        kept = []
        for row in rows:
            clean, cuts = bounds.clean_row(row)
            if clean is not None:
                kept.append(clean)
            self.cut(*cuts)
        self.rows.add(kept)

    def add_summary(self, values: dict[str, Any]) -> None:
        """Summary values from the run (a W&B script's ``run.summary``), within the bounds."""
        clean, cuts = bounds.clean_row({k: v for k, v in values.items() if k != bounds.STEP})
        self.cut(*cuts)
        if clean:
            self.summary.add(clean)

    def cut(self, *what: str, count: int = 0) -> None:
        """Count what the bounds cut or dropped (written on the run with its rows): one of each
        ``what``, or ``count`` of them; say each kind once."""
        if not what or count < 0:
            return
        with self._cuts_lock:
            self._cuts += count or len(what)
            new = sorted(set(what) - self._cuts_said)
            self._cuts_said.update(new)
        for kind in new:
            self.say("warning", "the run sent more than sweepd keeps: cut at the bounds", what=kind)

    def flush(self) -> bool:
        """Write the buffered rows (log.lua is fenced by the token), ``WRITE_ROWS`` at a time, the
        summary values with the last. On a Redis error what was not written goes back to its
        buffer (bounded) and the error is raised. (An attempt's output is its own: attempt.py.)"""
        pending, summary = self.rows.take(), self.summary.take()
        with self._cuts_lock:
            cuts, self._cuts = self._cuts, 0
        try:
            while pending or summary or cuts:
                chunk = pending[:WRITE_ROWS]
                last = len(chunk) == len(pending)
                outcome = self._write(chunk, summary if last else {}, cuts)
                pending, cuts = pending[len(chunk) :], 0
                if last:
                    summary = {}
                if outcome != "written":  # refused, or fenced: nothing more of it can be written
                    pending, summary = [], {}
        finally:
            self.rows.put_back(pending)
            self.summary.put_back(summary)
            with self._cuts_lock:
                self._cuts += cuts
        return True

    def _write(self, rows: list[dict[str, Any]], summary: dict[str, Any], cuts: int) -> Literal["written", "no"]:
        try:
            if self.store.log_metrics(self.claim, rows, summary=summary, cut=cuts):
                return "written"
            self.say("warning", "metrics refused: the run is no longer ours", rows=len(rows))
        except Exception as exc:
            if not refused(exc):
                raise
            if self.refused is None:
                self.refused = f"refused: {str(exc).splitlines()[0][:200]}"
                self.say(
                    "error", "Redis refused the run's metrics: the run ends failed", error=str(exc), rows=len(rows)
                )
        return "no"

    def flush_quietly(self) -> None:
        """A periodic flush: when Redis is away, what is buffered waits for the next one."""
        try:
            self.flush()
        except REDIS_DOWN:
            self.on_redis_error()
