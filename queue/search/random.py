"""Random search: the index-th point is a pure function of (seed, index).

Each point gets its own generator, seeded with the string ``"<seed>:<index>"`` (string seeds are
hashed with SHA-512, so they do not depend on the process or ``PYTHONHASHSEED``). No point depends on
another, so whichever agent claims an index, on whichever machine, computes the same params, and a
requeued run can be re-derived from its index alone.
"""

from __future__ import annotations

import operator
import random
from typing import Any

from ..space import SweepConfig, set_path
from .distributions import sample


def point(config: SweepConfig, seed: int, index: int) -> dict[str, Any]:
    """The params of the ``index``-th random run of a sweep seeded with ``seed``, as a nested dict."""
    index = operator.index(index)
    if index < 0:
        raise IndexError(f"run index {index} is negative")
    rng = random.Random(f"{seed}:{index}")
    params: dict[str, Any] = {}
    for param in config.params:  # config order: each parameter takes the next draw
        set_path(params, param.path, sample(param, rng))
    return params
