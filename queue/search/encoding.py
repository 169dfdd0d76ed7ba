"""A bayes sweep's parameter values as the Gaussian process sees them, and back, pure (no I/O).

Its own module because it is one concern apart from the model and the choice (bayes.py): what a
point is (one value per searched parameter, compared by ``key``), how values become rows of [0, 1]
inputs (``encode``: each parameter's CDF, categories one-hot), how unit draws become values the random
search could have drawn (``draw``), and the finite spaces enumerated when candidates run out
(``space_size``, ``scan_unseen``). numpy and scipy are imported inside the functions, as in bayes.py,
so that importing this module never needs the bayes extra.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import TYPE_CHECKING, Any

from ..space import Param, SweepConfig, set_path
from .distributions import _categorical_index, plain

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]
    Rng = np.random.Generator

SCAN_MAX = 200_000
_MISSING = ("missing",)


def finite(value: Any) -> float | None:
    """The value as a float if it is a finite number (not a bool), else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def key(value: Any) -> Any:
    """A hashable identity for a value, in which 3.0 and 3 are one (as grid's dedupe has it)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("n", value)
    if isinstance(value, float):
        return ("n", int(value)) if value.is_integer() else ("n", value)
    if isinstance(value, str):
        return ("s", value)
    try:
        return ("j", json.dumps(value, sort_keys=True))
    except (TypeError, ValueError):
        return ("r", repr(value))


def _get(params: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(params, dict) or part not in params:
            return _MISSING
        params = params[part]
    return params


def values(dims: list[Param], params: dict[str, Any]) -> list[Any]:
    """A run's value for each searched parameter (a marker where it has none)."""
    return [_get(params, p.path) for p in dims]


def point(config: SweepConfig, dims: list[Param], chosen_values: list[Any]) -> dict[str, Any]:
    """The params of a run: the chosen value of each searched parameter, and the constants."""
    chosen = dict(zip([p.path for p in dims], chosen_values, strict=True))
    params: dict[str, Any] = {}
    for p in config.params:
        set_path(params, p.path, plain(p.value if p.kind == "constant" else chosen[p.path]))
    return params


def _choices(param: Param, positive: bool = False) -> list[Any]:
    """A categorical's distinct values (by key), first occurrence kept; ``positive``: those it can draw."""
    weight: dict[Any, list[Any]] = {}  # key -> [first value, total probability]
    for value, p in zip(param.values, param.probabilities or (1.0,) * len(param.values), strict=True):
        weight.setdefault(key(value), [value, 0.0])[1] += p
    return [v for v, total in weight.values() if not positive or total > 0]


def encode(dims: list[Param], rows: list[list[Any]]) -> Array:
    """``encode_columns`` for points given as rows (one list of values per point)."""
    return encode_columns(dims, [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in dims])


def encode_columns(dims: list[Param], cols: list[list[Any]]) -> Array:
    """One row per point: each parameter's CDF, one-hot categories; NaN where a value does not fit."""
    import numpy as np

    parts: list[Array] = []
    for param, col in zip(dims, cols, strict=True):
        if param.kind == "categorical":
            index = {key(v): i for i, v in enumerate(_choices(param))}
            n = len(index)
            at = np.array([index.get(key(v), -1) for v in col], dtype=np.int64)
            if n > 2:
                block = np.eye(n)[at] / math.sqrt(2)
            else:  # two values: one 0/1 column; one value: nothing to learn
                block = at.astype(np.float64)[:, None] if n == 2 else np.zeros((len(col), 0))
            block[at < 0] = np.nan
        else:
            floats = np.array([f if (f := finite(v)) is not None else np.nan for v in col], dtype=np.float64)
            block = _cdf(param, floats)[:, None]
        parts.append(block)
    return np.hstack(parts) if parts else np.zeros((0, 0))


def _shape(param: Param) -> tuple[str, bool, float, float]:
    """Every distribution as ``x = [exp](inner(u))``: (inner, exp or not, inner's two numbers).

    inner is ``lerp`` (a + u (b - a)), ``normal`` (a + b ndtri(u)) or ``beta`` (beta(a, b)'s ppf).
    ``inv_log_uniform*`` are log-uniform over reflected bounds: 1/exp(U(-b, -a)) is exp(U(a, b)).
    """
    name, lo, hi = param.distribution or "", param.min or 0.0, param.max or 0.0
    base = name.removeprefix("q_")
    if base == "uniform":
        return "lerp", False, lo, hi
    if base == "log_uniform":
        return "lerp", True, lo, hi
    if base in ("log_uniform_values", "inv_log_uniform_values"):
        return "lerp", True, math.log(lo), math.log(hi)
    if base == "inv_log_uniform":
        return "lerp", True, -hi, -lo
    if base in ("normal", "log_normal"):
        return "normal", base == "log_normal", param.mu, param.sigma
    if base == "beta":
        return "beta", False, param.a, param.b
    raise ValueError(f"{param.name}: unknown distribution {name!r}")


def _cdf(param: Param, x: Array) -> Array:
    """The inverse of ``_ppf``: where a value sits in its distribution, in [0, 1] (NaN stays NaN)."""
    import numpy as np
    from scipy.special import betainc, ndtr  # type: ignore[import-untyped]

    with np.errstate(all="ignore"):
        if param.distribution == "int_uniform":
            low, high = int(param.min or 0), int(param.max or 0)
            u = (x - low + 0.5) / (high - low + 1)
        else:
            inner, logged, a, b = _shape(param)
            z = np.log(x) if logged else x
            if inner == "lerp":
                u = (z - a) / (b - a) if b > a else z * 0.0 + 0.5
            else:
                u = ndtr((z - a) / b) if inner == "normal" else betainc(a, b, np.clip(z, 0.0, 1.0))
        clean: Array = np.clip(np.nan_to_num(u, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.where(np.isnan(x), np.nan, clean)


def _ppf(param: Param, u: Array) -> list[Any]:
    """The random search's inverse CDF (distributions._from_unit), for many u at once."""
    import numpy as np
    from scipy.special import betaincinv, ndtri

    name, lo, hi = param.distribution or "", param.min or 0.0, param.max or 0.0
    if name == "int_uniform":
        low, span = int(lo), int(hi) - int(lo)
        return [low + k for k in np.minimum((u * (span + 1)).astype(np.int64), span).tolist()]
    inner, logged, a, b = _shape(param)
    if inner == "lerp":
        z = np.clip(a + u * (b - a), min(a, b), max(a, b))
    else:
        z = a + b * ndtri(u) if inner == "normal" else betaincinv(a, b, u)
    x = np.exp(z) if logged else z
    if name.endswith("_values"):  # exp(log(hi)) may land a hair outside the bounds
        x = np.clip(x, lo, hi)
    if name.startswith("q_"):  # round(x / q) * q, half to even, an int when q is: as the random search
        return [int(k) * param.q for k in np.round(x / param.q).tolist()]
    drawn: list[Any] = x.tolist()
    return drawn


def draw(dims: list[Param], rng: Rng, n: int) -> list[list[Any]]:
    """``n`` points drawn as the random search draws them (categorical probabilities honoured), as columns."""
    import numpy as np

    U = np.clip(rng.random((n, len(dims))), 1e-12, 1 - 1e-12)
    return [_column(p, U[:, j]) for j, p in enumerate(dims)]


def _column(param: Param, u: Array) -> list[Any]:
    if param.kind == "categorical":
        return [param.values[_categorical_index(param, x)] for x in u.tolist()]
    return _ppf(param, u)


def _support(param: Param) -> list[Any] | None:
    """Every value the parameter can take, when there are finitely many (at most SCAN_MAX)."""
    if param.kind == "categorical":
        return _choices(param, positive=True)
    name, lo, hi, q = param.distribution, param.min or 0.0, param.max or 0.0, param.q
    if name == "int_uniform":
        first, last, q = int(lo), int(hi), 1
    elif name in ("q_uniform", "q_log_uniform_values", "q_log_uniform", "q_beta"):
        if name == "q_log_uniform":  # legacy: min and max are exponents
            lo, hi = math.exp(min(lo, 700.0)), math.exp(min(hi, 700.0))
        elif name == "q_beta":
            lo, hi = 0.0, 1.0
        first, last = round(lo / q), round(hi / q)  # the random search's round(x / q) at both ends
    else:
        return None
    return [k * q for k in range(first, last + 1)] if last - first < SCAN_MAX else None


def space_size(dims: list[Param]) -> int | None:
    """How many points the space has, or None when some parameter takes too many values to list."""
    sizes = [len(s) if (s := _support(p)) is not None else None for p in dims]
    return None if None in sizes else math.prod(n for n in sizes if n is not None)


def scan_unseen(dims: list[Param], seen: set[Any], limit: int) -> list[list[Any]]:
    """Up to ``limit`` untaken points of a finite space, in product order, looking at SCAN_MAX at most."""
    supports = [[(key(v), v) for v in _support(p) or []] for p in dims]
    found: list[tuple[Any, ...]] = []
    for combo in itertools.islice(itertools.product(*supports), SCAN_MAX):
        if tuple(k for k, _ in combo) not in seen:
            found.append(tuple(v for _, v in combo))
            if len(found) >= limit:
                break
    return [[pt[j] for pt in found] for j in range(len(dims))]
