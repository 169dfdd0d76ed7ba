"""A sweep's next run from its search: the caller asks the search, and the write only writes.

``NextRuns.create_next`` computes the next point (search.suggest, pure) and hands it to the store's
``create`` (create.lua), which takes the point only if nobody took it first. Agents race here, so
every grid point is created exactly once: the loser computes the point the script says is next and
tries again. Each caller keeps its own hint of each sweep's seed and next index, as it last saw
them; create.lua checks it, so a stale one costs a retry, never a wrong run.
"""

from __future__ import annotations

from typing import Literal, cast

from . import search
from .operations import Operations
from .reads import Reads
from .records import Claim

CreateResult = Literal["ok", "exhausted", "paused", "queued", "cap", "target"]


class NextRuns:
    """One caller's way to its sweeps' next runs, with its hint of where each sweep's search is."""

    def __init__(self, reads: Reads, operations: Operations) -> None:
        self.reads, self.operations = reads, operations
        self._points: dict[str, tuple[int, int]] = {}  # sweep id -> (seed, next_index), a hint

    def create_next(
        self, sid: str, agent_id: str, lease_s: float, *, unless_queued: bool = False
    ) -> Claim | CreateResult:
        """Create the sweep's next run from its search algorithm, already held (create.lua).
        ``unless_queued``: while a run is queued the answer is "queued" (the queue goes first: claim)."""
        config = self.reads.config(sid)
        seed, index = self._points.pop(sid) if sid in self._points else self._read_point(sid)
        while True:
            history = self.reads.observations(sid) if config.method == "bayes" else []  # bayes learns from all
            params = search.suggest(config, seed, index, history)
            if params is None:
                return "exhausted"
            result = self.operations.create(
                sid, index, params, agent_id, lease_s, search.cap(config) or 0, unless_queued=unless_queued
            )
            if isinstance(result, Claim):
                self._points[sid] = (seed, index + 1)  # the next call skips reading the sweep
                return result
            if result in ("paused", "queued", "cap", "target"):
                return cast(CreateResult, result)
            # 'moved:<next_index>': another agent took that point, compute the one it says is next;
            # 'exists': that run id was taken, try the same point again under another.
            kind, _, current = result.partition(":")
            if kind == "moved":
                index = int(current)

    def _read_point(self, sid: str) -> tuple[int, int]:
        sweep = self.reads.sweep(sid)
        return sweep.seed, sweep.next_index
