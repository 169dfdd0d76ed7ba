"""Population-based training (``method: pbt``), pure: standings in, exploit/explore decisions out.

Jaderberg et al., "Population Based Training of Neural Networks" (2017), as Ray Tune's
``PopulationBasedTraining`` runs it (truncation selection, perturb-or-resample):

- The first generation: member i's params are the random search's i-th point.
- At each multiple of ``interval`` a member's metric crosses, it is ranked among the members that
  reached that step (each by its value at the first step logged at or past it; equal values in an
  order drawn from the seed and step, so that equal members do not always rank alike). The bottom quantile
  copies a member of the top quantile: ``ceil(n * quantile)`` each, at most ``n // 2`` (Ray's rule);
  alone, a member is never judged.
- Explore: each distribution's value is drawn again with ``resample_probability``, else multiplied by
  one of ``perturb``'s factors and kept in its range (rounded as the distribution rounds); a
  categorical is always drawn; a constant stays.

Every choice comes from ``random.Random(f"{seed}:pbt:{member}:{step}")``: any agent that decides
for that member and interval computes the same answer.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..space import Goal, Param, SweepConfig, set_path
from . import random as random_search
from .distributions import sample


@dataclass(frozen=True)
class Exploit:
    """A member's next generation: it copies ``parent`` (a member) and explores to ``params``."""

    parent: int
    params: dict[str, Any]


def first_params(config: SweepConfig, seed: int, member: int) -> dict[str, Any]:
    """Member ``member``'s first-generation params: the random search's point of that index."""
    return random_search.point(config, seed, member)


def crossed(interval: int, before: int | None, step: int) -> int | None:
    """The highest multiple of ``interval`` in (before, step] (None: no boundary crossed)."""
    boundary = (step // interval) * interval
    if boundary <= 0 or (before is not None and boundary <= before):
        return None
    return boundary


def quantiles(
    standings: Mapping[int, float], goal: Goal, quantile: float, ties: str = ""
) -> tuple[list[int], list[int]]:
    """The bottom and top members, worst first and best first. Ties: the lower member is better, or,
    given ``ties`` (a seed), an order drawn from it (equal members must not always rank alike)."""
    sign = -1.0 if goal == "maximize" else 1.0
    order = sorted(standings)
    if ties:
        random.Random(ties).shuffle(order)
    rank = {m: i for i, m in enumerate(order)}
    ranked = sorted(standings, key=lambda m: (sign * standings[m], rank[m]))  # best first
    n = len(ranked)
    k = min(math.ceil(n * quantile), n // 2)
    if k == 0:
        return [], []
    return list(reversed(ranked[-k:])), ranked[:k]


def decide(
    config: SweepConfig,
    seed: int,
    member: int,
    step: int,
    standings: Mapping[int, float],
    params_of: Callable[[int], Mapping[str, Any]],
) -> Exploit | None:
    """What ``member`` does at the boundary ``step``: None (it goes on), or an exploit of a top member.

    ``standings``: member -> its value at ``step``, for every member that reached it (``member``
    included); ``params_of(m)``: the params of member m's run that reached it (asked for the parent only)."""
    pbt, metric = config.pbt, config.metric
    if pbt is None or metric is None or member not in standings:
        return None
    bottom, top = quantiles(standings, metric.goal, pbt.quantile, ties=f"{seed}:pbt-ties:{step}")
    if member not in bottom:
        return None
    rng = random.Random(f"{seed}:pbt:{member}:{step}")
    parent = rng.choice(top)
    return Exploit(parent, explore(config, params_of(parent), rng))


def explore(config: SweepConfig, params: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The parent's params, each distribution's value perturbed or resampled, categoricals drawn."""
    pbt = config.pbt
    if pbt is None:
        raise ValueError("explore needs a pbt block")
    out = copy.deepcopy(dict(params))
    for param in config.params:
        if param.kind == "constant":
            continue
        if param.kind == "categorical" or rng.random() < pbt.resample_probability:
            set_path(out, param.path, sample(param, rng))
            continue
        value = _get(out, param.path)
        factor = rng.choice(pbt.perturb)
        set_path(out, param.path, perturbed(param, value, factor))
    return out


def perturbed(param: Param, value: Any, factor: float) -> Any:
    """``value * factor``, kept inside the distribution's range and rounded as it rounds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    lo, hi = value_range(param)
    x = min(max(float(value) * factor, lo), hi)
    name = param.distribution or ""
    if name == "int_uniform":
        return int(min(max(round(x), math.ceil(lo)), math.floor(hi)))
    if name.startswith("q_"):
        return round(x / param.q) * param.q  # as sampling quantises (distributions.py)
    return x


def value_range(param: Param) -> tuple[float, float]:
    """The values ``param``'s distribution can take (the legacy log forms' bounds are exponents)."""
    name = param.distribution or ""
    lo, hi = param.min, param.max
    if name in ("log_uniform", "q_log_uniform") and lo is not None and hi is not None:
        return math.exp(lo), math.exp(hi)
    if name == "inv_log_uniform" and lo is not None and hi is not None:
        return math.exp(-hi), math.exp(-lo)
    if name in ("beta", "q_beta"):
        return 0.0, 1.0
    if name in ("log_normal", "q_log_normal"):
        return 0.0, math.inf
    if lo is None or hi is None:
        return -math.inf, math.inf
    return lo, hi


def _get(params: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = params
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node
