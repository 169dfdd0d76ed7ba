"""Bayesian search (``method: bayes``): the next point from the results so far, pure (no I/O).

The model is W&B's engine's (wandb/sweeps ``bayes_search.py``): scikit-learn's Gaussian process as it
configures it, computed in ``gp.py`` with numpy and scipy (the same posterior, checked against
scikit-learn in the tests, at a tenth of the cost), not Optuna, because:

- users bring bayes sweeps from W&B and should get the search they know: a Matern (nu = 1.5) GP on
  inputs scaled to [0, 1] by each parameter's CDF, candidates ranked by expected improvement, runs
  in flight given the GP's own prediction;
- the CDF scaling takes every W&B distribution as it is (normal, log-normal and beta priors, legacy
  log forms, ``q`` steps); Optuna's distributions are uniform, log-uniform and stepped only;
- one call is one fit on the history given, so a point is a function of (config, seed, index,
  history), as ``create.lua``'s compare-and-set on the index needs; Optuna's ask/tell would rebuild
  a study from every trial on each call, and handles runs in flight only in TPE's ``constant_liar``;
- it is lighter: numpy and scipy; no SQLAlchemy and alembic (Optuna), no torch (its GP).

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
   within 0.25 of Branin's minimum on 12 seeds of 12 (39 of 40; with W&B's bounds, 9 of 12). It is refitted on
   every call, to the most likely scale on a fixed grid refined by golden section (``gp.fit``): a
   function of the results alone, 1 to 3 ms, so no fit is kept or reused between calls.
5. Latency: the GP trains on at most 100 results (the 25 best and 75 drawn from the rest) and takes
   the 50 latest pending runs as stand-ins, conditioned at the fitted scale (not refitted); the
   candidates are drawn and encoded as arrays; BLAS runs on one thread. bench/search.py: p50 3, 7
   and 13 ms at 10, 100 and 1,000 results, as fast as Optuna's TPE beside it.
6. Candidates: a finite space of at most 1,000 points whole, otherwise 1,000 draws as the random
   search draws (W&B's number); taken points are dropped, the highest expected improvement wins.

Duplicates (W&B issue 3467): a point some run has, in any state, is never suggested while an untaken
one exists. If every candidate is taken, a finite space is scanned (up to 200,000 points) for untaken
ones, ranked the same way. Only when every point of the space is taken is the random search's point
for the index returned: it repeats one, the only choice left.

Determinism: all randomness comes from a numpy generator seeded by SHA-256 of ``"<seed>:<index>"``;
the same inputs give the same point with the same libraries. Another BLAS may fit other last bits;
harmless, as ``create.lua`` accepts one agent's point per index and a run keeps its params.

This module is the choice; ``gp.py`` the model (4); ``encoding.py`` what a point is, its encoding
(3), the candidates' draws and the scan of a finite space (6).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..space import Metric, Param, SweepConfig, set_path
from . import encoding, gp
from . import random as random_search
from .distributions import sample

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
_NOISE = 1e-6  # W&B's GP nugget is 1e-7; a little more keeps repeated inputs (imputed runs) stable


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
        import scipy.linalg  # type: ignore[import-untyped]
        import scipy.spatial.distance  # type: ignore[import-untyped]
        import scipy.special  # type: ignore[import-untyped]  # noqa: F401
        import threadpoolctl  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        raise UserError(MISSING_EXTRA) from exc


_controller: list[Any] = []  # threadpoolctl's view of the loaded BLAS: found once (1 ms), not per call


def _one_thread() -> Any:
    """A context in which BLAS runs on one thread (threadpool_limits would look for libraries each time)."""
    from threadpoolctl import ThreadpoolController

    if not _controller:
        _controller.append(ThreadpoolController())
    return _controller[0].limit(limits=1)


def suggest(config: SweepConfig, seed: int, index: int, history: Sequence[Observation]) -> dict[str, Any]:
    """The params of the ``index``-th run of a bayes sweep, given every run the sweep has so far.

    Raises UserError when the bayes extra is missing (before any run is made, not after two).
    """
    _require_extra()
    import numpy as np

    dims = [p for p in config.params if p.kind != "constant"]
    rows = [encoding.values(dims, o.params) for o in history]
    seen = {tuple(map(encoding.key, row)) for row in rows}
    results, pending = _targets(config.metric, history) if config.metric else ([], [])  # no metric: random
    if not dims or len(results) < MIN_RESULTS:
        return _random_unseen(config, seed, index, dims, seen)
    rng = np.random.default_rng(_seed(seed, index))
    X = encoding.encode(dims, [rows[i] for i, _ in results])
    y = np.array([v for _, v in results], dtype=np.float64)
    ok = ~np.isnan(X).any(axis=1)  # runs whose params do not fit the space (a changed config) teach nothing
    X, y = X[ok], y[ok]
    if len(y) < MIN_RESULTS:
        return _random_unseen(config, seed, index, dims, seen)
    P = encoding.encode(dims, [rows[i] for i in pending[-MAX_PENDING:]])
    P = P[~np.isnan(P).any(axis=1)]
    X, y = _subsample(X, y, rng)
    with _one_thread():  # BLAS threads cost 10x more than they save on these small matrices
        found = _choose(dims, X, y, P, seen, rng)
    if found is None:
        return _random_unseen(config, seed, index, dims, seen)
    return encoding.point(config, dims, found)


def _choose(dims: list[Param], X: Array, y: Array, P: Array, seen: set[Any], rng: Rng) -> list[Any] | None:
    """Fit, draw candidates, and take the untaken one with the highest expected improvement."""
    import numpy as np

    try:
        score = _expected_improvement(X, y, P)
    except (ValueError, np.linalg.LinAlgError):  # a degenerate fit: the caller explores at random
        return None
    size = encoding.space_size(dims)
    if size is not None and size <= CANDIDATES:
        cols = encoding.scan_unseen(dims, seen, CANDIDATES)
        return _best_unseen(cols, encoding.encode_columns(dims, cols), score, seen)
    found = _best_unseen(*encoding.draw(dims, rng, CANDIDATES), score, seen)
    if found is None and size is not None:  # every candidate taken: look through the space
        cols = encoding.scan_unseen(dims, seen, CANDIDATES)
        found = _best_unseen(cols, encoding.encode_columns(dims, cols), score, seen)
    return found


def _seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "big")


def _targets(metric: Metric, history: Sequence[Observation]) -> tuple[list[tuple[int, float]], list[int]]:
    """(position, y) of the results, y signed so that lower is better, and the pending runs' positions."""
    sign = -1.0 if metric.goal == "maximize" else 1.0
    ended = [v for o in history if o.state not in PENDING and (v := encoding.finite(o.value)) is not None]
    anywhere = [v for o in history if (v := encoding.finite(o.value)) is not None]
    worst = max((sign * v for v in ended or anywhere), default=None)
    results: list[tuple[int, float]] = []
    pending: list[int] = []
    for i, o in enumerate(history):
        value = encoding.finite(o.value)
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
            if metric.impute == "best" and encoding.finite(o.best) is not None:
                own = encoding.finite(o.best)
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


def _expected_improvement(X: Array, y: Array, P: Array) -> Any:
    """A function from encoded candidates to their expected improvement over the best result."""
    import numpy as np
    from scipy.special import ndtr

    mean, std = float(y.mean()), float(y.std()) + 1e-6  # W&B normalises y the same way
    yn = (y - mean) / std
    model = gp.fit(X, yn, _NOISE)
    if len(P):  # runs in flight: pretend they return what the GP predicts, so agents spread out
        model = gp.condition(model, np.vstack([X, P]), np.concatenate([yn, gp.predict(model, P)[0]]), _NOISE)
    best = float(yn.min())

    def score(C: Array) -> Array:
        mu, sigma = gp.predict(model, C)
        sigma = np.maximum(sigma, 1e-12)
        z = (best - mu) / sigma
        ei: Array = (best - mu) * ndtr(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return ei

    return score


def _best_unseen(cols: list[list[Any]], C: Array, score: Any, seen: set[Any]) -> list[Any] | None:
    """The untaken candidate (columns ``cols``, encoded ``C``) of highest expected improvement."""
    import numpy as np

    if not cols or not cols[0]:
        return None
    ei = np.nan_to_num(score(C), nan=-1.0)
    for i in np.argsort(-ei, kind="stable").tolist():
        values = [col[i] for col in cols]
        if tuple(map(encoding.key, values)) not in seen:
            return values
    return None


def _random_unseen(config: SweepConfig, seed: int, index: int, dims: list[Param], seen: set[Any]) -> dict[str, Any]:
    """The random search's point for the index; if taken, a redraw; if the space is used up, that point."""
    point = random_search.point(config, seed, index)
    if tuple(map(encoding.key, encoding.values(dims, point))) not in seen:
        return point
    for attempt in range(1, 33):
        rng = random.Random(f"{seed}:{index}:{attempt}")
        params: dict[str, Any] = {}
        for param in config.params:
            set_path(params, param.path, sample(param, rng))
        if tuple(map(encoding.key, encoding.values(dims, params))) not in seen:
            return params
    if encoding.space_size(dims) is not None:
        cols = encoding.scan_unseen(dims, seen, CANDIDATES)
        if cols and cols[0]:
            i = random.Random(f"{seed}:{index}").randrange(len(cols[0]))
            return encoding.point(config, dims, [col[i] for col in cols])
    return point
