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
from .distributions import plain

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
            parts.append(_one_hot(len(index), np.array([index.get(key(v), -1) for v in col], dtype=np.int64)))
        else:
            parts.append(_cdf(param, _floats(col))[:, None])
    return np.hstack(parts) if parts else np.zeros((0, 0))


def _one_hot(n: int, at: NDArray[np.int64]) -> Array:
    """A categorical's block for category positions ``at`` (-1: not a category of it, NaN)."""
    import numpy as np

    if n > 2:
        block: Array = np.eye(n)[at] / math.sqrt(2)
    else:  # two values: one 0/1 column; one value: nothing to learn
        block = at.astype(np.float64)[:, None] if n == 2 else np.zeros((len(at), 0))
    block[at < 0] = np.nan
    return block


def _floats(col: list[Any]) -> Array:
    """``finite`` of each value as an array (NaN for None), at C speed when all are plain numbers."""
    import numpy as np

    if set(map(type, col)) <= {int, float}:  # no bools, strings or subclasses: numpy converts them alike
        x = np.array(col, dtype=np.float64)
        x[~np.isfinite(x)] = np.nan
        return x
    return np.array([f if (f := finite(v)) is not None else np.nan for v in col], dtype=np.float64)


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


def _ppf(param: Param, u: Array) -> tuple[list[Any], Array]:
    """The random search's inverse CDF (distributions._from_unit), for many u at once: the values, and
    the same values as floats (to encode them without converting them back)."""
    import numpy as np
    from scipy.special import betaincinv, ndtri

    name, lo, hi = param.distribution or "", param.min or 0.0, param.max or 0.0
    if name == "int_uniform":
        low, span = int(lo), int(hi) - int(lo)
        k = np.minimum((u * (span + 1)).astype(np.int64), span)
        return [low + i for i in k.tolist()], (low + k).astype(np.float64)
    inner, logged, a, b = _shape(param)
    if inner == "lerp":
        z = np.clip(a + u * (b - a), min(a, b), max(a, b))
    else:
        z = a + b * ndtri(u) if inner == "normal" else betaincinv(a, b, u)
    x = np.exp(z) if logged else z
    if name.endswith("_values"):  # exp(log(hi)) may land a hair outside the bounds
        x = np.clip(x, lo, hi)
    if name.startswith("q_"):  # round(x / q) * q, half to even, an int when q is: as the random search
        steps = np.round(x / param.q)
        return [int(k) * param.q for k in steps.tolist()], steps * param.q
    drawn: list[Any] = x.tolist()
    return drawn, x


def draw(dims: list[Param], rng: Rng, n: int) -> tuple[list[list[Any]], Array]:
    """``n`` points drawn as the random search draws them (categorical probabilities honoured), as
    columns, and their ``encode_columns`` rows, computed from the draws' arrays (no values converted back)."""
    import numpy as np

    U = np.clip(rng.random((n, len(dims))), 1e-12, 1 - 1e-12)
    cols: list[list[Any]] = []
    parts: list[Array] = []
    for j, param in enumerate(dims):
        if param.kind == "categorical":
            at = _categorical_indices(param, U[:, j])
            cols.append([param.values[i] for i in at.tolist()])
            position = {key(v): i for i, v in enumerate(_choices(param))}
            of_value = np.array([position[key(v)] for v in param.values], dtype=np.int64)
            parts.append(_one_hot(len(position), of_value[at]))
        else:
            values, floats = _ppf(param, U[:, j])
            cols.append(values)
            parts.append(_cdf(param, floats)[:, None])
    return cols, np.hstack(parts) if parts else np.zeros((n, 0))


def _categorical_indices(param: Param, u: Array) -> NDArray[np.int64]:
    """distributions._categorical_index for many u at once (the same bisection, vectorised)."""
    import numpy as np

    n = len(param.values)
    if n == 0:
        raise ValueError(f"{param.name}: a categorical parameter needs at least one value")
    if param.probabilities is None:
        return np.minimum((u * n).astype(np.int64), n - 1)
    cumulative = np.array(list(itertools.accumulate(param.probabilities)), dtype=np.float64)
    last_possible = max(j for j, p in enumerate(param.probabilities) if p > 0)
    found: NDArray[np.int64] = np.searchsorted(cumulative, u * cumulative[-1], side="right")
    return np.minimum(found, last_possible)


def _steps(param: Param) -> tuple[int, int, float | int] | None:
    """A finite numeric parameter's values as ``k * q`` for k in [first, last]: (first, last, q)."""
    name, lo, hi, q = param.distribution, param.min or 0.0, param.max or 0.0, param.q
    if name == "int_uniform":
        return int(lo), int(hi), 1
    if name in ("q_uniform", "q_log_uniform_values", "q_log_uniform", "q_beta"):
        if name == "q_log_uniform":  # legacy: min and max are exponents
            lo, hi = math.exp(min(lo, 700.0)), math.exp(min(hi, 700.0))
        elif name == "q_beta":
            lo, hi = 0.0, 1.0
        return round(lo / q), round(hi / q), q  # the random search's round(x / q) at both ends
    return None


def _support(param: Param) -> list[Any] | None:
    """Every value the parameter can take, when there are finitely many (at most SCAN_MAX)."""
    if param.kind == "categorical":
        return _choices(param, positive=True)
    steps = _steps(param)
    if steps is None or steps[1] - steps[0] >= SCAN_MAX:
        return None
    first, last, q = steps
    return [k * q for k in range(first, last + 1)]


def _support_size(param: Param) -> int | None:
    """``len(_support(param))`` without listing the values (asked on every suggestion)."""
    if param.kind == "categorical":
        return len(_choices(param, positive=True))
    steps = _steps(param)
    return None if steps is None or steps[1] - steps[0] >= SCAN_MAX else max(steps[1] - steps[0] + 1, 0)


def space_size(dims: list[Param]) -> int | None:
    """How many points the space has, or None when some parameter takes too many values to list."""
    sizes = [_support_size(p) for p in dims]
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
