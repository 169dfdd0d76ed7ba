"""The pure search: every distribution's range and shape, grid order and size, random determinism.

Statistical checks use a fixed seed, thousands of draws and tolerances many standard errors wide, so
they test the shape of a distribution without ever being flaky.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepd.queue import search
from sweepd.queue.search import distributions, grid
from sweepd.queue.search import random as random_search
from sweepd.queue.space import DISTRIBUTIONS, GRID_DISTRIBUTIONS, Method, Param, SweepConfig

N = 4000


def dist(distribution: str, path: tuple[str, ...] = ("x",), **fields: Any) -> Param:
    return Param(path=path, kind="distribution", distribution=distribution, **fields)


def cat(values: list[Any], path: tuple[str, ...] = ("x",), probabilities: list[float] | None = None) -> Param:
    probs = tuple(probabilities) if probabilities is not None else None
    return Param(path=path, kind="categorical", values=tuple(values), probabilities=probs)


def const(value: Any, path: tuple[str, ...] = ("x",)) -> Param:
    return Param(path=path, kind="constant", value=value)


def sweep(method: Method, *params: Param) -> SweepConfig:
    return SweepConfig(method=method, params=params, raw={})


def draws(param: Param, n: int = N, seed: int = 1234) -> list[Any]:
    rng = random.Random(seed)
    return [distributions.sample(param, rng) for _ in range(n)]


def is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-6)


class FixedRng(random.Random):
    """An rng whose every draw is ``u``: pins a distribution's inverse CDF at one quantile."""

    def __init__(self, u: float) -> None:
        super().__init__(0)
        self.u = u

    def random(self) -> float:
        return self.u


# --- distributions: one case per name in DISTRIBUTIONS, each checking range, type and shape --------

CASES: dict[str, Param] = {
    "int_uniform": dist("int_uniform", min=-3, max=4),
    "uniform": dist("uniform", min=-1.5, max=2.5),
    "q_uniform": dist("q_uniform", min=0.0, max=2.0, q=0.25),
    "log_uniform": dist("log_uniform", min=-7.0, max=-1.0),
    "log_uniform_values": dist("log_uniform_values", min=1e-5, max=1e-1),
    "q_log_uniform": dist("q_log_uniform", min=0.0, max=6.0, q=5),
    "q_log_uniform_values": dist("q_log_uniform_values", min=1.0, max=1000.0, q=1),
    "inv_log_uniform": dist("inv_log_uniform", min=0.0, max=6.0),
    "inv_log_uniform_values": dist("inv_log_uniform_values", min=1e-15, max=1e20),
    "normal": dist("normal", mu=4.0, sigma=2.0),
    "q_normal": dist("q_normal", mu=4.0, sigma=2.0, q=0.1),
    "log_normal": dist("log_normal", mu=2.0, sigma=0.5),
    "q_log_normal": dist("q_log_normal", mu=2.0, sigma=2.0, q=10),
    "beta": dist("beta", a=2.0, b=5.0),
    "q_beta": dist("q_beta", a=2.0, b=5.0, q=0.1),
}


def test_every_distribution_has_a_case() -> None:
    assert set(CASES) == set(DISTRIBUTIONS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_samples_are_json_plain_and_deterministic(name: str) -> None:
    values = draws(CASES[name], n=200)
    assert values == draws(CASES[name], n=200)
    assert json.loads(json.dumps(values, allow_nan=False)) == values
    assert len(set(values)) > 1


def test_int_uniform_is_inclusive_ints() -> None:
    values = draws(CASES["int_uniform"])
    assert all(type(v) is int for v in values)
    assert set(values) == set(range(-3, 5))  # max included, as W&B's randint(min, max + 1)
    for k in range(-3, 5):
        assert abs(values.count(k) / N - 1 / 8) < 0.04


def test_uniform_bounds_and_mean() -> None:
    values = draws(CASES["uniform"])
    assert all(type(v) is float and -1.5 <= v <= 2.5 for v in values)
    assert abs(statistics.fmean(values) - 0.5) < 0.1


def test_q_uniform_float_q_gives_float_multiples() -> None:
    values = draws(CASES["q_uniform"])
    assert all(type(v) is float and is_multiple(v, 0.25) and 0.0 <= v <= 2.0 for v in values)
    assert {0.0, 2.0} <= set(values)  # round(x / q) * q reaches both ends (half a step each)


def test_q_uniform_int_q_gives_ints() -> None:
    values = draws(dist("q_uniform", min=0.0, max=20.0, q=4))
    assert all(type(v) is int and v % 4 == 0 and 0 <= v <= 20 for v in values)
    # The default q (1.0, a float in W&B's schema too) keeps floats.
    assert all(type(v) is float for v in draws(dist("q_uniform", min=0.0, max=5.0), n=50))


def log_median(values: list[Any]) -> float:
    return math.log(statistics.median(values))


def test_log_uniform_legacy_uses_exponent_bounds() -> None:
    values = draws(CASES["log_uniform"])
    assert all(math.exp(-7.0) <= v <= math.exp(-1.0) for v in values)
    assert abs(log_median(values) - (-4.0)) < 0.3  # median near the geometric mean of the bounds


def test_log_uniform_values_is_log_scaled() -> None:
    values = draws(CASES["log_uniform_values"])
    assert all(1e-5 <= v <= 1e-1 for v in values)
    assert abs(log_median(values) - math.log(1e-3)) < 0.3
    # A linear spread would put nearly all draws above 1e-2; log spread puts a quarter there.
    assert abs(sum(v > 1e-2 for v in values) / N - 0.25) < 0.05


def test_inv_log_uniform_legacy() -> None:
    values = draws(CASES["inv_log_uniform"])
    assert all(math.exp(-6.0) <= v <= 1.0 for v in values)
    assert abs(log_median(values) - (-3.0)) < 0.3


def test_inv_log_uniform_values_is_log_scaled_within_bounds() -> None:
    values = draws(CASES["inv_log_uniform_values"])
    assert all(1e-15 <= v <= 1e20 for v in values)
    assert abs(math.log10(statistics.median(values)) - 2.5) < 1.0  # 35 decades wide


def test_q_log_uniform_legacy_and_values() -> None:
    legacy = draws(CASES["q_log_uniform"])
    assert all(type(v) is int and v % 5 == 0 and 0 <= v <= round(math.exp(6.0) / 5) * 5 for v in legacy)
    by_value = draws(CASES["q_log_uniform_values"])
    assert all(type(v) is int and 1 <= v <= 1000 for v in by_value)
    assert abs(math.log(statistics.median(by_value)) - math.log(math.sqrt(1000))) < 0.3


def test_normal_mean_and_std() -> None:
    values = draws(CASES["normal"])
    assert all(type(v) is float for v in values)
    assert abs(statistics.fmean(values) - 4.0) < 0.2
    assert abs(statistics.stdev(values) - 2.0) < 0.2


def test_q_normal_rounds_to_q() -> None:
    values = draws(CASES["q_normal"])
    assert all(type(v) is float and is_multiple(v, 0.1) for v in values)
    assert abs(statistics.fmean(values) - 4.0) < 0.2


def test_log_normal_is_exp_of_normal() -> None:
    values = draws(CASES["log_normal"])
    assert all(v > 0 for v in values)
    logs = [math.log(v) for v in values]
    assert abs(statistics.fmean(logs) - 2.0) < 0.1
    assert abs(statistics.stdev(logs) - 0.5) < 0.1


def test_q_log_normal_int_q_gives_int_multiples() -> None:
    values = draws(CASES["q_log_normal"])
    assert all(type(v) is int and v % 10 == 0 and v >= 0 for v in values)


def test_beta_range_and_mean() -> None:
    values = draws(CASES["beta"], n=1500)  # beta's inverse CDF is bisection: slower per draw
    assert all(0.0 <= v <= 1.0 for v in values)
    assert abs(statistics.fmean(values) - 2 / 7) < 0.03
    assert abs(statistics.stdev(values) - math.sqrt(10 / (49 * 8))) < 0.03


def test_q_beta() -> None:
    values = draws(CASES["q_beta"], n=1500)
    assert all(type(v) is float and is_multiple(v, 0.1) and 0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize("u", [1e-6, 0.1, 0.37, 0.5, 0.9, 0.999])
def test_inverse_cdfs_at_fixed_quantiles(u: float) -> None:
    """Closed forms, so the mapping itself (not only its statistics) is right."""

    def at(param: Param) -> Any:
        return distributions.sample(param, FixedRng(u))

    assert math.isclose(at(dist("beta", a=1.0, b=1.0)), u, abs_tol=1e-12)
    assert math.isclose(at(dist("beta", a=2.0, b=1.0)), math.sqrt(u), abs_tol=1e-12)
    assert math.isclose(at(dist("beta", a=1.0, b=2.0)), 1 - math.sqrt(1 - u), abs_tol=1e-12)
    assert math.isclose(at(dist("uniform", min=2.0, max=6.0)), 2.0 + 4.0 * u)
    assert math.isclose(at(dist("log_uniform_values", min=1.0, max=100.0)), 100.0**u)
    assert math.isclose(at(dist("log_uniform", min=0.0, max=2.0)), math.exp(2.0 * u))
    assert math.isclose(at(dist("inv_log_uniform", min=0.0, max=2.0)), math.exp(-2.0 * (1 - u)))
    assert math.isclose(at(dist("inv_log_uniform_values", min=1.0, max=100.0)), 100.0**u)
    assert at(dist("int_uniform", min=0, max=9)) == int(10 * u)
    if u == 0.5:
        assert at(dist("normal", mu=3.0, sigma=2.0)) == 3.0
        assert math.isclose(at(dist("log_normal", mu=1.0, sigma=2.0)), math.e)


def test_q_rounds_half_to_even_like_numpy() -> None:
    assert distributions.sample(dist("q_uniform", min=0.0, max=10.0, q=1), FixedRng(0.25)) == 2  # 2.5 -> 2
    assert distributions.sample(dist("q_uniform", min=0.0, max=10.0, q=1), FixedRng(0.35)) == 4  # 3.5 -> 4


def test_categorical_uniform_choice() -> None:
    values = draws(cat(["a", "b", "c", "d"]))
    for v in "abcd":
        assert abs(values.count(v) / N - 0.25) < 0.05


def test_categorical_probabilities_respected() -> None:
    values = draws(cat(["a", "b", "c", "never"], probabilities=[0.7, 0.2, 0.1, 0.0]))
    assert abs(values.count("a") / N - 0.7) < 0.05
    assert abs(values.count("b") / N - 0.2) < 0.05
    assert abs(values.count("c") / N - 0.1) < 0.05
    assert "never" not in values
    # Even the last quantile never lands on a zero-probability value.
    assert distributions.sample(cat([1, 2], probabilities=[1.0, 0.0]), FixedRng(1 - 2**-53)) == 1


def test_constant_and_structured_values_are_fresh_plain_copies() -> None:
    param = cat([(1, 2), {"k": (3,)}])
    rng = random.Random(0)
    got = {json.dumps(distributions.sample(param, rng)) for _ in range(50)}
    assert got == {"[1, 2]", '{"k": [3]}'}
    value = {"layers": [64, 64]}
    sampled = distributions.sample(const(value), random.Random(0))
    assert sampled == value
    sampled["layers"].append(1)
    assert value == {"layers": [64, 64]}


# --- grid -------------------------------------------------------------------------------------------


def test_grid_values_per_kind() -> None:
    assert grid.values(const("adam")) == ("adam",)
    assert grid.values(cat([3, "a", None])) == (3, "a", None)
    assert grid.values(dist("int_uniform", min=2, max=5)) == (2, 3, 4, 5)
    # q_uniform is numpy's arange(min, max, q): max excluded, ints only when all three are ints.
    assert grid.values(dist("q_uniform", min=0.0, max=1.0, q=0.25)) == (0.0, 0.25, 0.5, 0.75)
    assert grid.values(dist("q_uniform", min=3, max=10, q=2)) == (3, 5, 7, 9)
    assert all(type(v) is int for v in grid.values(dist("q_uniform", min=3, max=10, q=2)))
    assert grid.values(dist("q_uniform", min=3, max=10.0, q=2)) == (3.0, 5.0, 7.0, 9.0)
    assert all(type(v) is float for v in grid.values(dist("q_uniform", min=3, max=10.0, q=2)))
    # arange's own rounding, value for value (numpy 2 gives exactly these).
    assert grid.values(dist("q_uniform", min=1.0, max=1.3, q=0.1)) == (
        1.0,
        1.1,
        1.2000000000000002,
        1.3000000000000003,
    )
    assert grid.values(dist("q_uniform", min=5, max=5, q=1)) == ()


def test_grid_dedupes_values_like_w_and_b() -> None:
    assert grid.values(cat([1, 1.0, 2, 1, "1"])) == (1, 2, "1")


@pytest.mark.parametrize(
    "param",
    [dist(name, min=0.1, max=1.0) for name in DISTRIBUTIONS if name not in GRID_DISTRIBUTIONS]
    + [cat([1, 2], probabilities=[0.5, 0.5])],
    ids=lambda p: p.distribution or "probabilities",
)
def test_grid_refuses_what_it_cannot_enumerate(param: Param) -> None:
    with pytest.raises(ValueError):
        grid.values(param)
    with pytest.raises(ValueError):
        grid.size(sweep("grid", param))


def test_grid_order_is_itertools_product_and_size() -> None:
    params = (
        cat(["sgd", "adam"], path=("opt",)),
        dist("int_uniform", path=("layers",), min=1, max=3),
        const(0.5, path=("dropout",)),
        dist("q_uniform", path=("lr",), min=0.0, max=0.3, q=0.1),
    )
    config = sweep("grid", *params)
    product = list(itertools.product(*(grid.values(p) for p in params)))
    assert grid.size(config) == len(product) == 2 * 3 * 1 * 3
    for index, combo in enumerate(product):
        point = grid.point(config, index)
        assert list(point) == ["opt", "layers", "dropout", "lr"]
        assert tuple(point.values()) == combo
        assert search.suggest(config, 7, index) == point
        assert not search.exhausted(config, index)


def test_grid_exhaustion() -> None:
    config = sweep("grid", cat([1, 2]), const("c", path=("y",)))
    assert grid.size(config) == 2
    assert search.suggest(config, 0, 1) == {"x": 2, "y": "c"}
    assert search.suggest(config, 0, 2) is None
    assert search.exhausted(config, 2)
    assert search.exhausted(config, 100)
    for bad in (-1, 2):
        with pytest.raises(IndexError):
            grid.point(config, bad)


def test_empty_q_uniform_range_means_an_empty_grid() -> None:
    config = sweep("grid", cat([1, 2]), dist("q_uniform", path=("y",), min=1, max=1, q=1))
    assert grid.size(config) == 0
    assert search.exhausted(config, 0)
    assert search.suggest(config, 0, 0) is None


def test_grid_nested_params_give_nested_dicts() -> None:
    config = sweep(
        "grid",
        cat([0.1, 0.01], path=("optimizer", "lr")),
        const("adam", path=("optimizer", "name")),
        cat([16, 32], path=("model", "encoder", "width")),
        const(3, path=("epochs",)),
    )
    assert grid.point(config, 3) == {
        "optimizer": {"lr": 0.01, "name": "adam"},
        "model": {"encoder": {"width": 32}},
        "epochs": 3,
    }


def test_huge_grid_is_indexed_without_enumeration() -> None:
    params = [cat(list(range(10)), path=(f"p{i}",)) for i in range(30)]
    params.append(dist("int_uniform", path=("big",), min=0, max=10**12))
    config = sweep("grid", *params)
    size = grid.size(config)
    assert size == 10**30 * (10**12 + 1)
    last = grid.point(config, size - 1)
    assert last["big"] == 10**12 and all(last[f"p{i}"] == 9 for i in range(30))
    middle = grid.point(config, 1234 * (10**12 + 1) + 56)
    assert middle["big"] == 56 and [middle[f"p{i}"] for i in range(26, 30)] == [1, 2, 3, 4]


_grid_param = st.one_of(
    st.lists(st.integers(-50, 50), min_size=1, max_size=4, unique=True).map(cat),
    st.lists(st.text(max_size=3), min_size=1, max_size=4, unique=True).map(cat),
    st.tuples(st.integers(-5, 5), st.integers(0, 3)).map(lambda t: dist("int_uniform", min=t[0], max=t[0] + t[1])),
    st.tuples(st.integers(-5, 5), st.integers(1, 4), st.integers(1, 3)).map(
        lambda t: dist("q_uniform", min=t[0], max=t[0] + t[1] * t[2], q=t[2])
    ),
    st.integers().map(const),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_grid_param, min_size=1, max_size=4))
def test_grid_points_are_distinct_and_cover_the_product(drawn: list[Param]) -> None:
    params = [dataclasses.replace(p, path=(f"p{i}",)) for i, p in enumerate(drawn)]
    config = sweep("grid", *params)
    size = grid.size(config)
    points = [json.dumps(grid.point(config, i)) for i in range(size)]
    assert len(set(points)) == size
    names = [p.path[0] for p in params]
    product = {
        json.dumps(dict(zip(names, combo, strict=True))) for combo in itertools.product(*map(grid.values, params))
    }
    assert set(points) == product
    assert search.suggest(config, 0, size) is None


# --- random -----------------------------------------------------------------------------------------


def random_config(method: Method = "random") -> SweepConfig:
    return sweep(
        method,
        dist("log_uniform_values", path=("optimizer", "lr"), min=1e-5, max=1e-1),
        cat(["sgd", "adam"], path=("optimizer", "name")),
        dist("int_uniform", path=("layers",), min=1, max=8),
        dist("beta", path=("mix",), a=2.0, b=2.0),
        cat([0.0, 0.1, 0.5], path=("dropout",), probabilities=[0.5, 0.3, 0.2]),
        const("resnet", path=("arch",)),
    )


def test_random_point_is_nested_and_in_range() -> None:
    point = random_search.point(random_config(), seed=42, index=0)
    assert set(point) == {"optimizer", "layers", "mix", "dropout", "arch"}
    assert 1e-5 <= point["optimizer"]["lr"] <= 1e-1
    assert point["optimizer"]["name"] in ("sgd", "adam")
    assert type(point["layers"]) is int and 1 <= point["layers"] <= 8
    assert point["arch"] == "resnet"


def test_random_is_deterministic_per_seed_and_index() -> None:
    config = random_config()
    first = [random_search.point(config, 42, i) for i in range(20)]
    # Same (seed, index) -> same point, whatever was computed before and in whatever order.
    assert [random_search.point(config, 42, i) for i in reversed(range(20))][::-1] == first
    assert random_search.point(config, 42, 7) == first[7]
    assert len({json.dumps(p) for p in first}) == 20  # different index -> different point
    assert random_search.point(config, 43, 0) != first[0]  # different seed -> different point


def test_random_point_is_the_same_in_a_fresh_process(tmp_path: Any) -> None:
    config = random_config()
    expected = [random_search.point(config, 2024, i) for i in (0, 1, 99)]
    script = f"""
import json
from sweepd.queue.search import random
from sweepd.queue.space import Param, SweepConfig
params = tuple(eval(p, {{"Param": Param}}) for p in {[repr(p) for p in config.params]!r})
config = SweepConfig(method="random", params=params, raw={{}})
print(json.dumps([random.point(config, 2024, i) for i in (0, 1, 99)]))
"""
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == expected


def test_random_rejects_negative_index() -> None:
    with pytest.raises(IndexError):
        random_search.point(random_config(), 1, -1)


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_suggest_random_and_bayes_never_exhaust(method: Method) -> None:
    config = random_config(method)
    assert search.suggest(config, 5, 10**9) == random_search.point(config, 5, 10**9)
    assert not search.exhausted(config, 10**12)
