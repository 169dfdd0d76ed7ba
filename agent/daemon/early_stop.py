"""Hyperband early termination as an agent applies it to the run it holds.

The decision is ``search.hyperband.to_stop`` (pure, W&B's rule); this only feeds it the sweep's
metric curves from Redis, at most once a heartbeat and only when the held run's own curve has grown
to a bracket. A run hyperband stops is ended like an operator's stop: the training process gets the
configured signal and the grace period, and the run ends ``stopped`` (never failed, never requeued).
"""

from __future__ import annotations

from sweepd.queue.reads import Reads
from sweepd.queue.search import hyperband
from sweepd.queue.space import SweepConfig


class EarlyStop:
    def __init__(self, store: Reads, config: SweepConfig, sid: str, rid: str) -> None:
        self.store, self.config, self.sid, self.rid = store, config, sid, rid
        et = config.early_terminate
        self.brackets = hyperband.brackets(et) if et is not None and config.metric is not None else []
        self._judged_at = -1  # own curve length at the last check

    def should_stop(self) -> bool:
        """True when hyperband stops the held run now."""
        if not self.brackets:
            return False
        own = self.store.curve_length(self.rid)
        if own < self.brackets[0] or own == self._judged_at:
            return False
        self._judged_at = own
        # Other runs matter only up to the bracket this run is judged at; its own curve in full
        # (the non-strict rule judges its best value so far).
        curves = self.store.curves(self.sid, upto=max(b for b in self.brackets if b <= own))
        values = self.store.curve(self.rid)
        curves[self.rid] = hyperband.RunCurve("running", values)
        return self.rid in hyperband.to_stop(self.config, curves)
