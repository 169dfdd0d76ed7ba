"""The Gaussian process of bayes search, pure (no I/O): W&B's model, computed with numpy and scipy.

The model is scikit-learn's ``GaussianProcessRegressor`` as W&B's engine configures it: a Matern
(nu = 1.5) kernel of one length scale, no prior mean (the caller normalises y), a small nugget on
the diagonal. tests/test_bayes.py checks that the posterior here equals scikit-learn's at the same
length scale. It is computed here rather than by that class because the class cost half to two thirds of a
suggestion (bench/search.py): its fit chooses the length scale by L-BFGS from 0.5 plus one random
restart, each of about 20 likelihood evaluations rebuilding the distances, the kernel and its
gradient, and its predict has object overhead that dominates at 10 results.

Here the pairwise distances are computed once per fit, and the length scale is the one with the
highest log marginal likelihood on a log-spaced grid over its bounds, refined by golden-section
search between the best grid point's neighbours and one parabolic step: about 18 Cholesky factorisations, a function of
(X, y) alone (no random restart), looking over the whole range rather than from two starts. It is
refitted on every call: at most 100 results (bayes.py subsamples), so a fit costs 1 to 3 ms, and a
fit reused from earlier runs would need state kept between calls or a longer history to recompute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]

LENGTH_SCALES = (1e-2, 1e2)  # inputs span [0, 1]; see bayes.py for why not sklearn's (1e-5, 1e5)
GRID = 9  # log-spaced length scales tried over the bounds: a factor of 3.2 apart
GOLDEN = 7  # golden-section steps between the best one's neighbours: to within a factor of 1.05
_SQRT3 = math.sqrt(3.0)
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Model:
    """A GP conditioned on (X, y) at one length scale: what predict needs, computed once."""

    X: Array
    length: float
    chol: Array  # lower Cholesky factor L of K(X, X) + noise I
    weights: Array  # (K + noise I)^-1 y
    inverse: Array | None = None  # L^-1, for predict: a product is half a triangular solve's time


def _ready(model: Model) -> Model:
    """The model with L^-1, computed once for all the predictions made with it."""
    import dataclasses

    import numpy as np
    from scipy.linalg import solve_triangular  # type: ignore[import-untyped]

    eye = np.eye(len(model.weights))
    return dataclasses.replace(model, inverse=solve_triangular(model.chol, eye, lower=True, check_finite=False))


def _matern(distances: Array, length: float) -> Array:
    import numpy as np

    k: Array = distances * (-_SQRT3 / length)  # -r, then (1 + r) exp(-r) in place: exp is most of a fit
    e = np.exp(k)
    np.subtract(1.0, k, out=k)
    k *= e
    return k


def _condition(X: Array, D: Array, y: Array, length: float, noise: float) -> Model:
    """Raises numpy's LinAlgError when the kernel matrix is not positive definite at this scale."""
    import numpy as np
    from scipy.linalg import cho_solve

    K = _matern(D, length)
    K[np.diag_indices_from(K)] += noise
    L = np.asarray(np.linalg.cholesky(K), dtype=np.float64)
    return Model(X, length, L, cho_solve((L, True), y, check_finite=False))


def _log_likelihood(model: Model, y: Array) -> float:
    """The log marginal likelihood, up to the constant -n/2 log(2 pi) (the same for every scale)."""
    import numpy as np

    return float(-0.5 * y @ model.weights - np.log(np.diag(model.chol)).sum())


def fit(X: Array, y: Array, noise: float) -> Model:
    """The GP on (X, y) at the length scale of highest marginal likelihood within LENGTH_SCALES.

    Raises numpy's LinAlgError when no length scale gives a positive definite kernel matrix.
    """
    import numpy as np
    from scipy.spatial.distance import cdist  # type: ignore[import-untyped]

    D = cdist(X, X)
    tried: dict[float, tuple[float, Model | None]] = {}

    def score(log_length: float) -> float:
        if log_length not in tried:
            try:
                model = _condition(X, D, y, math.exp(log_length), noise)
                tried[log_length] = (_log_likelihood(model, y), model)
            except np.linalg.LinAlgError:
                tried[log_length] = (-math.inf, None)
        return tried[log_length][0]

    grid = np.linspace(math.log(LENGTH_SCALES[0]), math.log(LENGTH_SCALES[1]), GRID).tolist()
    best = max(range(GRID), key=lambda i: (score(grid[i]), -i))  # ties: the shorter scale, deterministically
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, GRID - 1)]
    a, b = high - _INV_PHI * (high - low), low + _INV_PHI * (high - low)
    for _ in range(GOLDEN):  # the likelihood is near unimodal between the neighbours: keep the better side
        if score(a) >= score(b):
            high, b = b, a
            a = high - _INV_PHI * (high - low)
        else:
            low, a = a, b
            b = low + _INV_PHI * (high - low)
    _parabola(score, sorted({low, a, b, high}))
    value, model = max(tried.values(), key=lambda item: item[0])
    if model is None or not math.isfinite(value):
        raise np.linalg.LinAlgError("no length scale gives a positive definite kernel matrix")
    return _ready(model)


def _parabola(score: Callable[[float], float], points: list[float]) -> None:
    """One more score: at the vertex of the parabola through the best point and its two neighbours."""
    best = max(range(1, len(points) - 1), key=lambda i: score(points[i]), default=None)
    if best is None:
        return
    (x0, x1, x2), (f0, f1, f2) = points[best - 1 : best + 2], [score(x) for x in points[best - 1 : best + 2]]
    if not all(math.isfinite(f) for f in (f0, f1, f2)):
        return
    den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
    if den != 0.0:
        vertex = x1 - 0.5 * ((x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)) / den
        if x0 < vertex < x2:
            score(vertex)


def condition(model: Model, X: Array, y: Array, noise: float) -> Model:
    """The GP on (X, y) at ``model``'s length scale, not refitted (runs in flight with made-up values)."""
    from scipy.spatial.distance import cdist

    return _ready(_condition(X, cdist(X, X), y, model.length, noise))


def predict(model: Model, C: Array) -> tuple[Array, Array]:
    """The posterior mean and standard deviation at each row of C (the prior's variance is 1)."""
    import numpy as np
    from scipy.spatial.distance import cdist

    model = model if model.inverse is not None else _ready(model)
    assert model.inverse is not None
    Ks = _matern(cdist(C, model.X), model.length)
    mean: Array = Ks @ model.weights
    v = Ks @ model.inverse.T  # row i: L^-1 k(X, c_i)
    var = 1.0 - np.einsum("ij,ij->i", v, v)
    std: Array = np.sqrt(np.maximum(var, 0.0))
    return mean, std
