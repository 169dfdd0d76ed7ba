"""The search algorithms, pure: which params the ``index``-th generated run of a sweep gets.

Grid and random points are a function of (config, seed, index) alone, never of other runs or of Redis,
so creating a run is "take the next index, compute its point" in one atomic step, and every agent
agrees on it. Bayes also reads the sweep's runs so far (``history``); the compare-and-set on the
index still makes one agent's point the run for that index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..space import SweepConfig
from . import bayes, grid, pbt, random
from .bayes import Observation

__all__ = ["Observation", "bayes", "cap", "exhausted", "grid", "pbt", "random", "suggest"]


def suggest(config: SweepConfig, seed: int, index: int, history: Sequence[Observation] = ()) -> dict[str, Any] | None:
    """The params of the ``index``-th run (0-based), or None once a grid has no points left.

    ``history`` is every run of the sweep so far; only bayes reads it. ``run_cap`` is not checked
    here: the caller checks it in the same step that takes the index.
    """
    if config.method == "grid":
        return None if exhausted(config, index) else grid.point(config, index)
    if config.method == "bayes":
        return bayes.suggest(config, seed, index, history)
    if config.method == "pbt":  # the search makes the first generation (``cap``); exploits the rest
        return pbt.first_params(config, seed, index)
    return random.point(config, seed, index)


def cap(config: SweepConfig) -> int | None:
    """How many runs the search makes at most: ``run_cap``, or pbt's population (its first generation)."""
    if config.method == "pbt" and config.pbt is not None:
        return config.pbt.population
    return config.run_cap


def exhausted(config: SweepConfig, index: int) -> bool:
    """True when no run can be generated at ``index``: only a grid ever runs out."""
    return config.method == "grid" and index >= grid.size(config)
