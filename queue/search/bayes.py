"""Bayesian search (``method: bayes``): the next point from the results so far, pure (no I/O).

The model is scikit-learn's ``GaussianProcessRegressor``, as in W&B's engine (wandb/sweeps
``bayes_search.py``), not Optuna, because:

- users bring bayes sweeps from W&B and should get the search they know: a Matern (nu = 1.5) GP on
  inputs scaled to [0, 1] by each parameter's CDF, candidates ranked by expected improvement, runs
  in flight given the GP's own prediction;
- the CDF scaling takes every W&B distribution as it is (normal, log-normal and beta priors, legacy
  log forms, ``q`` steps); Optuna's distributions are uniform, log-uniform and stepped only;
- one call is one fit on the history given, so a point is a function of (config, seed, index,
  history), as ``create.lua``'s compare-and-set on the index needs; Optuna's ask/tell would rebuild
  a study from every trial on each call, and handles runs in flight only in TPE's ``constant_liar``;
- it is lighter: scikit-learn, numpy, scipy; no SQLAlchemy and alembic (Optuna), no torch (its GP).

1. Results: finished runs give their value. Failed, crashed and stopped (W&B's "killed") runs, and
   finished runs that reported nothing, are imputed by ``metric.impute``: ``worst``, the worst value
   of the sweep's ended runs; ``best``, the run's own best (``Observation.best``, else its value);
   ``latest``, the last value it reported (its value); with nothing to go on, the worst. Queued,
   running and preempting runs are pending, but with ``impute_while_running`` a running run that
   reported a value is a result.
2. Fewer than 2 results: the random search's point for the index (redrawn if taken).
3. Each parameter goes to [0, 1] by its CDF (an int by the middle of its interval). A categorical is
   one-hot, scaled by 1/sqrt(2) so two categories are as far apart as a range's two ends (W&B uses
   the index, which orders categories by accident), or one 0/1 column for two values.
4. The kernel's length scale is kept within [0.01, 100] (inputs span [0, 1]). Within sklearn's
   [1e-5, 1e5], as in W&B, the fit often collapses to 1e-5 (half the steps of one Branin run): a
   model of pure noise, after which W&B picks a random candidate. Bounded, the best of 30 runs came
   within 0.25 of Branin's minimum on 12 seeds of 12; with W&B's bounds, on 9.
5. Latency: the GP trains on at most 100 results (the 25 best and 75 drawn from the rest), with one
   optimizer restart (W&B: two), and takes the 50 latest pending runs as stand-ins, refitted with
   the kernel fixed; BLAS runs on one thread. bench/search.py: about 60 ms at 1,000 results.
6. Candidates: a finite space of at most 1,000 points whole, otherwise 1,000 draws as the random
   search draws (W&B's number); taken points are dropped, the highest expected improvement wins.

Duplicates (W&B issue 3467): a point some run has, in any state, is never suggested while an untaken
one exists. If every candidate is taken, a finite space is scanned (up to 200,000 points) for untaken
ones, ranked the same way. Only when every point of the space is taken is the random search's point
for the index returned: it repeats one, the only choice left.

Determinism: all randomness comes from a numpy generator seeded by SHA-256 of ``"<seed>:<index>"``;
the same inputs give the same point with the same libraries. Another BLAS may fit other last bits;
harmless, as ``create.lua`` accepts one agent's point per index and a run keeps its params.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..space import Metric, Param, SweepConfig, set_path
from . import random as random_search
from .distributions import _categorical_index, plain, sample

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]
    Rng = np.random.Generator

MISSING_EXTRA = "method: bayes needs the bayes extra: pip install 'sweepd[bayes]'"
PENDING = frozenset({"queued", "running", "preempting"})
IMPUTED = frozenset({"failed", "crashed", "stopped"})
MIN_RESULTS = 2
CANDIDATES = 1000
MAX_TRAIN, KEEP_BEST = 100, 25
MAX_PENDING = 50
SCAN_MAX = 200_000
_NOISE = 1e-6  # W&B's GP nugget is 1e-7; a little more keeps repeated inputs (imputed runs) stable
_LENGTH_SCALES = (1e-2, 1e2)  # W&B's (1e-5, 1e5) lets a fit collapse into white noise: see above
_MISSING = ("missing",)


@dataclass(frozen=True)
class Observation:
    """One run of the sweep as the search sees it.

    ``best`` is optional: the best value the run logged, if the caller knows it (``impute: best``
    uses it; without it the run's value stands in).
    """

    params: dict[str, Any]
    value: float | None
    state: str
    best: float | None = None


def _require_extra() -> None:
    """The extra's modules (the first import of each here, so mypy's notes about them sit here too)."""
    try:
        import numpy  # noqa: F401
        import scipy.special  # type: ignore[import-untyped]  # noqa: F401
        import sklearn.gaussian_process  # type: ignore[import-untyped]
        import sklearn.gaussian_process.kernels  # type: ignore[import-untyped]  # noqa: F401
        import threadpoolctl  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        raise UserError(MISSING_EXTRA) from exc


def suggest(config: SweepConfig, seed: int, index: int, history: Sequence[Observation]) -> dict[str, Any]:
    """The params of the ``index``-th run of a bayes sweep, given every run the sweep has so far.

    Raises UserError when the bayes extra is missing (before any run is made, not after two).
    """
    _require_extra()
    import numpy as np
    from threadpoolctl import threadpool_limits

    dims = [p for p in config.params if p.kind != "constant"]
    rows = [_values(dims, o.params) for o in history]
    seen = {tuple(map(_key, row)) for row in rows}
    results, pending = _targets(config.metric, history) if config.metric else ([], [])  # no metric: random
    if not dims or len(results) < MIN_RESULTS:
        return _random_unseen(config, seed, index, dims, seen)
    rng = np.random.default_rng(_seed(seed, index))
    X = _encode(dims, [rows[i] for i, _ in results])
    y = np.array([v for _, v in results], dtype=np.float64)
    ok = ~np.isnan(X).any(axis=1)  # runs whose params do not fit the space (a changed config) teach nothing
    X, y = X[ok], y[ok]
    if len(y) < MIN_RESULTS:
        return _random_unseen(config, seed, index, dims, seen)
    P = _encode(dims, [rows[i] for i in pending[-MAX_PENDING:]])
    P = P[~np.isnan(P).any(axis=1)]
    X, y = _subsample(X, y, rng)
    with threadpool_limits(limits=1):  # BLAS threads cost 10x more than they save on these small matrices
        found = _choose(dims, X, y, P, seen, rng)
    if found is None:
        return _random_unseen(config, seed, index, dims, seen)
    return _point(config, dims, found)


def _choose(dims: list[Param], X: Array, y: Array, P: Array, seen: set[Any], rng: Rng) -> list[Any] | None:
    """Fit, draw candidates, and take the untaken one with the highest expected improvement."""
    import numpy as np

    try:
        score = _expected_improvement(X, y, P, int(rng.integers(2**31)))
    except (ValueError, np.linalg.LinAlgError):  # a degenerate fit: the caller explores at random
        return None
    size = _space_size(dims)
    small = size is not None and size <= CANDIDATES
    found = _best_unseen(dims, _scan_unseen(dims, seen) if small else _draw(dims, rng), score, seen)
    if found is None and size is not None and not small:  # every candidate taken: look through the space
        found = _best_unseen(dims, _scan_unseen(dims, seen), score, seen)
    return found


def _seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "big")


def _finite(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _targets(metric: Metric, history: Sequence[Observation]) -> tuple[list[tuple[int, float]], list[int]]:
    """(position, y) of the results, y signed so that lower is better, and the pending runs' positions."""
    sign = -1.0 if metric.goal == "maximize" else 1.0
    ended = [v for o in history if o.state not in PENDING and (v := _finite(o.value)) is not None]
    anywhere = [v for o in history if (v := _finite(o.value)) is not None]
    worst = max((sign * v for v in ended or anywhere), default=None)
    results: list[tuple[int, float]] = []
    pending: list[int] = []
    for i, o in enumerate(history):
        value = _finite(o.value)
        if o.state in PENDING:
            if o.state == "running" and metric.impute_while_running and value is not None:
                results.append((i, sign * value))
            else:
                pending.append(i)
            continue
        if o.state == "finished":
            own = value
        elif o.state in IMPUTED:
            own = None if metric.impute == "worst" else value
            if metric.impute == "best" and _finite(o.best) is not None:
                own = _finite(o.best)
        else:
            raise ValueError(f"unknown run state {o.state!r}")
        y = sign * own if own is not None else worst
        if y is not None:
            results.append((i, y))
    return results, pending


def _subsample(X: Array, y: Array, rng: Rng) -> tuple[Array, Array]:
    """At most MAX_TRAIN rows: the KEEP_BEST best and a random draw of the rest (the GP is cubic in rows)."""
    if len(y) <= MAX_TRAIN:
        return X, y
    order = y.argsort(kind="stable")
    rest = rng.choice(order[KEEP_BEST:], MAX_TRAIN - KEEP_BEST, replace=False)
    keep = sorted([*order[:KEEP_BEST].tolist(), *rest.tolist()])
    return X[keep], y[keep]


def _expected_improvement(X: Array, y: Array, P: Array, random_state: int) -> Any:
    """A function from encoded candidates to their expected improvement over the best result."""
    import numpy as np
    from scipy.special import ndtr
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    mean, std = float(y.mean()), float(y.std()) + 1e-6  # W&B normalises y the same way
    yn = (y - mean) / std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the kernel's bounds are expected
        kernel = Matern(length_scale=0.5, length_scale_bounds=_LENGTH_SCALES, nu=1.5)
        gp = GaussianProcessRegressor(kernel=kernel, alpha=_NOISE, n_restarts_optimizer=1, random_state=random_state)
        gp.fit(X, yn)
        if len(P):  # runs in flight: pretend they return what the GP predicts, so agents spread out
            fantasy = gp.predict(P)
            gp = GaussianProcessRegressor(kernel=gp.kernel_, alpha=_NOISE, optimizer=None)
            gp.fit(np.vstack([X, P]), np.concatenate([yn, fantasy]))
    best = float(yn.min())

    def score(C: Array) -> Array:
        mu, sigma = gp.predict(C, return_std=True)
        sigma = np.maximum(sigma, 1e-12)
        z = (best - mu) / sigma
        ei: Array = (best - mu) * ndtr(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return ei

    return score


def _best_unseen(dims: list[Param], cols: list[list[Any]], score: Any, seen: set[Any]) -> list[Any] | None:
    """The untaken candidate with the highest expected improvement, as one value per dimension."""
    import numpy as np

    if not cols or not cols[0]:
        return None
    ei = np.nan_to_num(score(_encode_columns(dims, cols)), nan=-1.0)
    for i in np.argsort(-ei, kind="stable").tolist():
        values = [col[i] for col in cols]
        if tuple(map(_key, values)) not in seen:
            return values
    return None


def _key(value: Any) -> Any:
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


def _values(dims: list[Param], params: dict[str, Any]) -> list[Any]:
    return [_get(params, p.path) for p in dims]


def _point(config: SweepConfig, dims: list[Param], values: list[Any]) -> dict[str, Any]:
    chosen = dict(zip([p.path for p in dims], values, strict=True))
    params: dict[str, Any] = {}
    for p in config.params:
        set_path(params, p.path, plain(p.value if p.kind == "constant" else chosen[p.path]))
    return params


def _choices(param: Param, positive: bool = False) -> list[Any]:
    """A categorical's distinct values (by key), first occurrence kept; ``positive``: those it can draw."""
    weight: dict[Any, list[Any]] = {}  # key -> [first value, total probability]
    for value, p in zip(param.values, param.probabilities or (1.0,) * len(param.values), strict=True):
        weight.setdefault(_key(value), [value, 0.0])[1] += p
    return [v for v, total in weight.values() if not positive or total > 0]


def _encode(dims: list[Param], rows: list[list[Any]]) -> Array:
    return _encode_columns(dims, [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in dims])


def _encode_columns(dims: list[Param], cols: list[list[Any]]) -> Array:
    """One row per point: each parameter's CDF, one-hot categories; NaN where a value does not fit."""
    import numpy as np

    parts: list[Array] = []
    for param, col in zip(dims, cols, strict=True):
        if param.kind == "categorical":
            index = {_key(v): i for i, v in enumerate(_choices(param))}
            n = len(index)
            at = np.array([index.get(_key(v), -1) for v in col], dtype=np.int64)
            if n > 2:
                block = np.eye(n)[at] / math.sqrt(2)
            else:  # two values: one 0/1 column; one value: nothing to learn
                block = at.astype(np.float64)[:, None] if n == 2 else np.zeros((len(col), 0))
            block[at < 0] = np.nan
        else:
            floats = np.array([f if (f := _finite(v)) is not None else np.nan for v in col], dtype=np.float64)
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
    from scipy.special import betainc, ndtr

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
    values: list[Any] = x.tolist()
    return values


def _draw(dims: list[Param], rng: Rng, n: int = CANDIDATES) -> list[list[Any]]:
    """``n`` points drawn as the random search draws them (categorical probabilities honoured)."""
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


def _space_size(dims: list[Param]) -> int | None:
    sizes = [len(s) if (s := _support(p)) is not None else None for p in dims]
    return None if None in sizes else math.prod(n for n in sizes if n is not None)


def _scan_unseen(dims: list[Param], seen: set[Any], limit: int = CANDIDATES) -> list[list[Any]]:
    """Up to ``limit`` untaken points of a finite space, in product order, looking at SCAN_MAX at most."""
    supports = [[(_key(v), v) for v in _support(p) or []] for p in dims]
    found: list[tuple[Any, ...]] = []
    for combo in itertools.islice(itertools.product(*supports), SCAN_MAX):
        if tuple(k for k, _ in combo) not in seen:
            found.append(tuple(v for _, v in combo))
            if len(found) >= limit:
                break
    return [[pt[j] for pt in found] for j in range(len(dims))]


def _random_unseen(config: SweepConfig, seed: int, index: int, dims: list[Param], seen: set[Any]) -> dict[str, Any]:
    """The random search's point for the index; if taken, a redraw; if the space is used up, that point."""
    point = random_search.point(config, seed, index)
    if tuple(map(_key, _values(dims, point))) not in seen:
        return point
    for attempt in range(1, 33):
        rng = random.Random(f"{seed}:{index}:{attempt}")
        params: dict[str, Any] = {}
        for param in config.params:
            set_path(params, param.path, sample(param, rng))
        if tuple(map(_key, _values(dims, params))) not in seen:
            return params
    if _space_size(dims) is not None:
        cols = _scan_unseen(dims, seen)
        if cols and cols[0]:
            i = random.Random(f"{seed}:{index}").randrange(len(cols[0]))
            return _point(config, dims, [col[i] for col in cols])
    return point
