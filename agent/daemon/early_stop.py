"""Hyperband early termination as an agent applies it to the run it holds.

The decision is ``search.hyperband.to_stop`` (pure, W&B's rule); this only feeds it the sweep's
metric curves from Redis, at most once a heartbeat and only when the held run's own curve has grown
to a bracket, and as rows arrive once its curve reaches a new bracket (so a run shorter than a
heartbeat is judged too). A run hyperband stops is ended like an operator's stop: the training
process gets the configured signal and the grace period, and the run ends ``stopped`` (never failed, never requeued).
"""

from __future__ import annotations

from sweepd.queue.reads import Reads
from sweepd.queue.search import hyperband
from sweepd.queue.space import SweepConfig


class EarlyStop:
    def __init__(self, store: Reads, config: SweepConfig, sid: str, rid: str) -> None:
        self.store, self.config, self.sid, self.rid = store, config, sid, rid
        et = config.early_terminate
        hb = et is not None and et.type == "hyperband" and config.metric is not None
        self.brackets = hyperband.brackets(et) if et is not None and hb else []
        self._judged_at = -1  # own curve length at the last check
        self._bracket = -1  # the highest bracket the run had reached then

    def should_stop(self, new_bracket_only: bool = False) -> bool:
        """True when hyperband stops the held run now. ``new_bracket_only``: judge only when the run's
        curve has reached a bracket it was not judged at (asked as rows arrive, not a heartbeat late)."""
        if not self.brackets:
            return False
        own = self.store.curve_length(self.rid)
        if own < self.brackets[0] or own == self._judged_at:
            return False
        bracket = max(b for b in self.brackets if b <= own)
        if new_bracket_only and bracket == self._bracket:
            return False
        self._judged_at, self._bracket = own, bracket
        # Other runs matter only up to the bracket this run is judged at; its own curve in full
        # (the non-strict rule judges its best value so far).
        curves = self.store.curves(self.sid, upto=bracket)
        values = self.store.curve(self.rid)
        curves[self.rid] = hyperband.RunCurve("running", values)
        return self.rid in hyperband.to_stop(self.config, curves)
