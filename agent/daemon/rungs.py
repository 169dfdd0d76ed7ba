"""ASHA's rungs as an agent applies them to the run it holds (``early_terminate: {type: asha}``).

When the held run's metric curve reaches the next rung after the one it was last paused at, the
agent ends it as at a preemption (child signal, grace, checkpoint) and parks it ``paused`` at that
rung (pause.lua); at max_iter it finishes. Which paused run goes on is decided when an agent asks for
work (``Store.promote_next``, search/asha.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sweepd.queue.reads import Reads
from sweepd.queue.search import asha
from sweepd.queue.space import SweepConfig


@dataclass(frozen=True)
class Pause:
    """Where the run stops: ``rung`` (its index), or None at max_iter (it finishes); ``ending``
    ``stop`` ends it ``stopped`` instead (a PBT member exploited: member.py)."""

    rung: int | None
    reason: str
    ending: Literal["pause", "stop"] = "pause"


class Rungs:
    def __init__(self, store: Reads, config: SweepConfig, rid: str) -> None:
        self.store, self.rid = store, rid
        et = config.early_terminate
        self.et = et if et is not None and et.type == "asha" and config.metric is not None else None
        self._target: int | None = None  # the curve length it stops at, read once
        self._next: int | None = None

    def reached(self) -> Pause | None:
        """A Pause once the held run's curve has reached its next rung (one LLEN a call)."""
        if self.et is None:
            return None
        if self._target is None:
            last = self.store.rung_of(self.rid)
            self._target = asha.stop_at(self.et, last)
            self._next = 0 if last is None else last + 1
        if self.store.curve_length(self.rid) < self._target:
            return None
        if self._next is not None and self._next < len(asha.rungs(self.et)):
            return Pause(self._next, "asha")
        return Pause(None, "asha-max-iter")
