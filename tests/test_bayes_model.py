"""The bayes search's model and candidates computed fast are the same as the slow way: the GP's
posterior is scikit-learn's (W&B's model), its length scale is at least as likely as scikit-learn's
own fit finds, and the candidates' vectorised draws and encodings equal the per-value ones."""

from __future__ import annotations

import math
from typing import Any

import pytest
from test_bayes import BRANIN, EVERY_KIND, branin

from sweepd.queue.search import encoding
from sweepd.queue.search import random as random_search
from sweepd.queue.search.distributions import _categorical_index
from sweepd.queue.space import Param

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")
from sweepd.queue.search import gp  # noqa: E402  (needs numpy and scipy)

NOISE = 1e-6


def datasets() -> list[tuple[str, Any, Any]]:
    """Inputs in [0, 1] and normalised targets, as bayes.py hands them to the GP."""
    rng = np.random.default_rng(5)
    out = []
    for n in (5, 12, 30):  # Branin's points, as the quality test sees them
        X = rng.random((n, 2))
        y = np.array([branin(-5 + 15 * a, 15 * b) for a, b in X])
        out.append((f"branin-{n}", X, y))
    for n, d in ((10, 15), (60, 15), (100, 6)):  # bench/search.py's width; a smooth function, noise
        X = rng.random((n, d))
        y = ((X - 0.3) ** 2).sum(axis=1) + 0.05 * rng.standard_normal(n)
        out.append((f"quadratic-{n}x{d}", X, y))
    out.append(("noise-40x3", rng.random((40, 3)), rng.standard_normal(40)))
    return [(name, X, (y - y.mean()) / (y.std() + 1e-6)) for name, X, y in out]


DATA = datasets()


@pytest.mark.parametrize(("name", "X", "y"), DATA, ids=[d[0] for d in DATA])
def test_the_posterior_is_scikit_learns_at_the_same_length_scale(name: str, X: Any, y: Any) -> None:
    sk = pytest.importorskip("sklearn.gaussian_process")
    from sklearn.gaussian_process.kernels import Matern

    model = gp.fit(X, y, NOISE)
    C = np.random.default_rng(1).random((300, X.shape[1]))
    kernel = Matern(length_scale=model.length, length_scale_bounds="fixed", nu=1.5)
    theirs = sk.GaussianProcessRegressor(kernel=kernel, alpha=NOISE, optimizer=None).fit(X, y)
    mean, std = gp.predict(model, C)
    their_mean, their_std = theirs.predict(C, return_std=True)
    np.testing.assert_allclose(mean, their_mean, atol=1e-6)
    np.testing.assert_allclose(std, their_std, atol=1e-6)
    # Runs in flight: the same length scale, more rows (the made-up values), no refit.
    P = C[:7]
    both, fantasy = np.vstack([X, P]), np.concatenate([y, mean[:7]])
    theirs = sk.GaussianProcessRegressor(kernel=kernel, alpha=NOISE, optimizer=None).fit(both, fantasy)
    mean, std = gp.predict(gp.condition(model, both, fantasy, NOISE), C)
    their_mean, their_std = theirs.predict(C, return_std=True)
    np.testing.assert_allclose(mean, their_mean, atol=1e-6)
    np.testing.assert_allclose(std, their_std, atol=1e-6)


@pytest.mark.parametrize(("name", "X", "y"), DATA, ids=[d[0] for d in DATA])
def test_the_length_scale_is_as_likely_as_scikit_learns_own_fit(name: str, X: Any, y: Any) -> None:
    """Against the fit bayes.py used before: L-BFGS from 0.5 and one random restart, same bounds."""
    sk = pytest.importorskip("sklearn.gaussian_process")
    from sklearn.gaussian_process.kernels import Matern

    kernel = Matern(length_scale=0.5, length_scale_bounds=gp.LENGTH_SCALES, nu=1.5)
    theirs = sk.GaussianProcessRegressor(kernel=kernel, alpha=NOISE, n_restarts_optimizer=1, random_state=0)
    theirs.fit(X, y)
    ours = theirs.log_marginal_likelihood(np.log([gp.fit(X, y, NOISE).length]))
    assert ours >= theirs.log_marginal_likelihood_value_ - 1e-3, (ours, theirs.kernel_)


def test_the_fit_is_a_function_of_its_inputs() -> None:
    _, X, y = DATA[1]
    first = gp.fit(X, y, NOISE)
    again = gp.fit(X.copy(), y.copy(), NOISE)
    assert first.length == again.length
    assert np.array_equal(first.weights, again.weights)


def test_a_kernel_matrix_never_positive_definite_is_an_error() -> None:
    X = np.zeros((3, 2))  # three copies of one point and no nugget: singular at every length scale
    with pytest.raises(np.linalg.LinAlgError):
        gp.fit(X, np.array([0.0, 1.0, -1.0]), 0.0)


# --- candidates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [EVERY_KIND, BRANIN], ids=["every-kind", "branin"])
def test_candidates_are_encoded_as_their_values_are(config: Any) -> None:
    dims = [p for p in config.params if p.kind != "constant"]
    cols, encoded = encoding.draw(dims, np.random.default_rng(3), 500)
    assert encoded.shape[0] == 500 and not np.isnan(encoded).any()
    np.testing.assert_array_equal(encoded, encoding.encode_columns(dims, cols))


def test_candidates_are_values_the_random_search_can_draw() -> None:
    """Of the same types as the random search's draws (ints where it gives ints), and its categories."""
    dims = [p for p in EVERY_KIND.params if p.kind != "constant"]
    cols, _ = encoding.draw(dims, np.random.default_rng(4), 300)
    own = [encoding.values(dims, random_search.point(EVERY_KIND, 9, i)) for i in range(300)]
    for j, (param, col) in enumerate(zip(dims, cols, strict=True)):
        assert {type(v) for v in col} == {type(row[j]) for row in own}, param.name
        if param.kind == "categorical":
            assert {encoding.key(v) for v in col} == {encoding.key(row[j]) for row in own}, param.name


CATEGORICALS = [
    Param(path=("c",), kind="categorical", values=("a", "b", "c")),
    Param(path=("c",), kind="categorical", values=(1, 2, 3, 4), probabilities=(0.1, 0.0, 0.6, 0.3)),
    Param(path=("c",), kind="categorical", values=("x", "y", "z"), probabilities=(0.5, 0.5, 0.0)),
    Param(path=("c",), kind="categorical", values=("only",)),
]


@pytest.mark.parametrize("param", CATEGORICALS)
def test_vectorised_categorical_draws_are_the_random_searchs(param: Param) -> None:
    u = np.array([0.0, 1e-12, 0.1, 0.1 + 1e-17, 0.25, 0.5, 0.6, 0.7, 0.75, 0.999999, 1 - 1e-12])
    u = np.concatenate([u, np.random.default_rng(0).random(500)])
    expected = [_categorical_index(param, x) for x in u.tolist()]
    assert encoding._categorical_indices(param, u).tolist() == expected


def test_plain_numbers_are_read_as_finite_reads_them() -> None:
    columns: list[list[Any]] = [
        [1, 2.5, -3, 0.0, 1e300, 10**20],
        [1.0, math.inf, -math.inf, math.nan, 2],
        [True, 1, 0.5],  # a bool is not a number here
        ["3", 3, None, [1]],
        [],
    ]
    for col in columns:
        expected = np.array([f if (f := encoding.finite(v)) is not None else np.nan for v in col], dtype=np.float64)
        np.testing.assert_array_equal(encoding._floats(col), expected)


def test_space_size_counts_what_support_lists() -> None:
    for param in [*EVERY_KIND.params, *CATEGORICALS]:
        if param.kind == "constant":
            continue
        listed = encoding._support(param)
        assert encoding._support_size(param) == (len(listed) if listed is not None else None), param.name
