"""One parameter value from one uniform draw, the way W&B's engine draws it.

W&B samples every parameter by the inverse CDF of a single U(0, 1) (``HyperParameter.ppf`` in
wandb/sweeps ``src/sweeps/params.py``); so does this module, with ``rng.random()`` as the only source
of randomness. That is on purpose: ``random()`` is the one method whose sequence the standard library
promises never to change across Python versions (``gauss``, ``betavariate`` and ``choice`` make no
such promise), so agents on different machines and interpreters draw the same point for the same seed.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from ..space import Param

_STANDARD_NORMAL = NormalDist()
_BISECT_STEPS = 64  # beta's inverse CDF to 2**-64 absolute: far below any useful hyperparameter step


def sample(param: Param, rng: random.Random) -> Any:
    """A value for ``param``: its constant, one of its values, or a draw from its distribution.

    Consumes one ``rng.random()`` for a categorical or distribution parameter and none for a constant,
    so the result depends only on the rng's state.
    """
    if param.kind == "constant":
        return plain(param.value)
    if param.kind == "categorical":
        return plain(param.values[_categorical_index(param, rng.random())])
    return _from_unit(param, _open_unit(rng))


def plain(value: Any) -> Any:
    """A fresh JSON-shaped copy: tuples become lists, mappings dicts, so a point never aliases the config."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _open_unit(rng: random.Random) -> float:
    """A draw in the open interval (0, 1): inverse CDFs such as the normal's are infinite at 0."""
    u = rng.random()
    while u == 0.0:  # probability 2**-53; redrawing keeps the result a function of the rng state
        u = rng.random()
    return u


def _categorical_index(param: Param, u: float) -> int:
    """W&B's categorical ppf: uniform over the values, or the first whose cumulative probability exceeds u."""
    n = len(param.values)
    if n == 0:
        raise ValueError(f"{param.name}: a categorical parameter needs at least one value")
    if param.probabilities is None:
        return min(int(u * n), n - 1)
    cumulative = list(itertools.accumulate(param.probabilities))
    # Scale by the total so that probabilities summing to 0.9999999 still cover [0, 1).
    i = bisect.bisect_right(cumulative, u * cumulative[-1])
    last_possible = max(j for j, p in enumerate(param.probabilities) if p > 0)
    return min(i, last_possible)


def _bounds(param: Param) -> tuple[float, float]:
    if param.min is None or param.max is None:
        raise ValueError(f"{param.name}: distribution {param.distribution} needs min and max")
    return param.min, param.max


def _lerp(lo: float, hi: float, u: float) -> float:
    """The u-quantile of U(lo, hi), kept inside [lo, hi] despite rounding."""
    return min(max(lo + u * (hi - lo), lo), hi)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _from_unit(param: Param, u: float) -> Any:
    """The u-quantile of ``param``'s distribution (quantised for the ``q_`` forms)."""
    name = param.distribution
    if name == "int_uniform":
        lo, hi = _bounds(param)
        low, high = int(lo), int(hi)
        if high < low:
            raise ValueError(f"{param.name}: int_uniform needs min <= max")
        return low + min(int(u * (high - low + 1)), high - low)
    if name in ("uniform", "q_uniform"):
        x = _lerp(*_bounds(param), u)
    elif name in ("log_uniform", "q_log_uniform"):
        # Legacy forms: min and max are natural-log exponents, the value is exp(U(min, max)).
        x = math.exp(_lerp(*_bounds(param), u))
    elif name in ("log_uniform_values", "q_log_uniform_values"):
        lo, hi = _bounds(param)
        x = _clamp(math.exp(_lerp(math.log(lo), math.log(hi), u)), lo, hi)
    elif name == "inv_log_uniform":
        # Legacy: 1/exp(U(min, max)), so values in [e**-max, e**-min]; 1 - u keeps the map increasing.
        x = math.exp(-_lerp(*_bounds(param), 1.0 - u))
    elif name == "inv_log_uniform_values":
        # 1/x with x log-uniform over [1/max, 1/min]: values in [min, max], log-uniformly spread.
        lo, hi = _bounds(param)
        x = _clamp(1.0 / math.exp(_lerp(math.log(1.0 / hi), math.log(1.0 / lo), 1.0 - u)), lo, hi)
    elif name in ("normal", "q_normal"):
        x = param.mu + param.sigma * _STANDARD_NORMAL.inv_cdf(u)
    elif name in ("log_normal", "q_log_normal"):
        x = math.exp(param.mu + param.sigma * _STANDARD_NORMAL.inv_cdf(u))
    elif name in ("beta", "q_beta"):
        x = _beta_ppf(u, param.a, param.b)
    else:
        raise ValueError(f"{param.name}: unknown distribution {name!r}")
    return _quantise(x, param.q) if name.startswith("q_") else x


def _quantise(x: float, q: float) -> int | float:
    """W&B's ``round(x / q) * q`` (half to even): an int when q is an int, else a float.

    Python's ``round`` returns an int, so an int ``q`` keeps it one, as W&B's ``astype(int)`` does.
    """
    return round(x / q) * q


def _beta_ppf(u: float, a: float, b: float) -> float:
    """Beta(a, b)'s u-quantile by bisection on its CDF (the standard library has no beta ppf)."""
    if a <= 0 or b <= 0:
        raise ValueError("beta needs a > 0 and b > 0")
    lo, hi = 0.0, 1.0
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if _beta_cdf(mid, a, b) < u:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The fraction converges fast only left of the mode; use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    tiny = 1e-300

    def nonzero(v: float) -> float:
        return v if abs(v) >= tiny else tiny

    c = 1.0
    d = 1.0 / nonzero(1.0 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 500):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 / nonzero(1.0 + even * d)
        c = nonzero(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 / nonzero(1.0 + odd * d)
        c = nonzero(1.0 + odd / c)
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h
