"""The search algorithms, pure: which params the ``index``-th generated run of a sweep gets.

A point is a function of (config, seed, index) alone, never of other runs or of Redis, so creating a
run is "take the next index, compute its point" in one atomic step, and every agent agrees on it.
"""

from __future__ import annotations

from typing import Any

from ..space import SweepConfig
from . import grid, random

__all__ = ["exhausted", "grid", "random", "suggest"]


def suggest(config: SweepConfig, seed: int, index: int) -> dict[str, Any] | None:
    """The params of the ``index``-th run (0-based), or None once a grid has no points left.

    ``run_cap`` is not checked here: the caller checks it in the same step that takes the index.
    """
    if config.method == "grid":
        return None if exhausted(config, index) else grid.point(config, index)
    # bayes: random points for now; the bayes algorithm (which needs the runs' results) comes later.
    return random.point(config, seed, index)


def exhausted(config: SweepConfig, index: int) -> bool:
    """True when no run can be generated at ``index``: only a grid ever runs out."""
    return config.method == "grid" and index >= grid.size(config)
