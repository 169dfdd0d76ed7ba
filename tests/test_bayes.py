"""Bayes search: no duplicates however agents race, valid values for every parameter kind, determinism,
the metric's goal and impute modes, a clear error without the extra, and a better search than random.

Tests that run the model need the bayes extra (numpy, scipy, threadpoolctl) and are skipped without it.
"""

from __future__ import annotations

import builtins
import json
import math
import statistics
from typing import Any

import pytest

from sweepd.queue import search
from sweepd.queue.errors import UserError
from sweepd.queue.search import bayes
from sweepd.queue.search import random as random_search
from sweepd.queue.search.bayes import Observation
from sweepd.queue.space import DISTRIBUTIONS, Goal, Method, Metric, Param, SweepConfig


@pytest.fixture
def extra() -> None:
    for module in ("numpy", "scipy", "threadpoolctl"):
        pytest.importorskip(module)


needs_extra = pytest.mark.usefixtures("extra")


def dist(name: str, distribution: str, **fields: Any) -> Param:
    return Param(path=tuple(name.split(".")), kind="distribution", distribution=distribution, **fields)


def cat(name: str, values: list[Any], probabilities: list[float] | None = None) -> Param:
    probs = tuple(probabilities) if probabilities is not None else None
    return Param(path=tuple(name.split(".")), kind="categorical", values=tuple(values), probabilities=probs)


def const(name: str, value: Any) -> Param:
    return Param(path=tuple(name.split(".")), kind="constant", value=value)


def sweep(*params: Param, goal: Goal = "minimize", **metric: Any) -> SweepConfig:
    return SweepConfig(method="bayes", params=params, raw={}, metric=Metric("loss", goal=goal, **metric))


def get(point: dict[str, Any], name: str) -> Any:
    for part in name.split("."):
        point = point[part]
    return point


def key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


SMALL = sweep(
    cat("opt", ["sgd", "adam", "lion"]),
    dist("layers", "int_uniform", min=1, max=3),
    dist("model.drop", "q_uniform", min=0.0, max=1.0, q=0.5),
    const("arch", "resnet"),
)  # 3 * 3 * 3 = 27 points


# --- the extra --------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["numpy", "scipy", "threadpoolctl"])
def test_a_missing_extra_is_a_user_error(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = builtins.__import__

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == missing or name.startswith(f"{missing}."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    expected = "method: bayes needs the bayes extra: pip install 'sweepd[bayes]'"
    with pytest.raises(UserError) as raised:
        search.suggest(SMALL, 1, 0)  # before the first run, not after two results
    assert str(raised.value) == expected
    with pytest.raises(UserError, match=r"pip install 'sweepd\[bayes\]'"):
        bayes.suggest(SMALL, 1, 5, [Observation({"opt": "sgd"}, 1.0, "finished")] * 3)


# --- no duplicates ----------------------------------------------------------------------------------


@needs_extra
@pytest.mark.parametrize("finished_every", [0, 3])
def test_agents_racing_over_a_small_space_never_duplicate(finished_every: int) -> None:
    """Each new run is pending when the next is suggested, as when agents create runs back to back.

    ``finished_every`` 0: nothing finishes (the random phase throughout); 3: every third run has
    finished with a value by then, so the GP picks most points with many runs still pending.
    """
    history: list[Observation] = []
    states = ["queued", "running", "preempting"]
    for index in range(27):
        point = search.suggest(SMALL, 11, index, history)
        assert point is not None
        assert key(point) not in {key(o.params) for o in history}, f"index {index} repeats a point"
        done = finished_every and index % finished_every == 0
        value = get(point, "layers") + get(point, "model.drop") if done else None
        history.append(Observation(point, value, "finished" if done else states[index % 3]))
    assert len({key(o.params) for o in history}) == 27
    # Every point is taken: the only choice left is a repeat (the random search's point for the index).
    assert search.suggest(SMALL, 11, 27, history) == random_search.point(SMALL, 11, 27)


@needs_extra
def test_a_nearly_used_up_large_space_finds_the_points_left() -> None:
    """1,200 points (more than the 1,000 candidates): all but three taken, the next runs take those three."""
    config = sweep(dist("a", "int_uniform", min=1, max=40), dist("b", "int_uniform", min=1, max=30))
    left = {(7, 7), (33, 2), (40, 30)}
    taken = [{"a": a, "b": b} for a in range(1, 41) for b in range(1, 31) if (a, b) not in left]
    history = [Observation(p, float((p["a"] - 20) ** 2 + p["b"]), "finished") for p in taken]
    found = set()
    for index in range(3):
        point = bayes.suggest(config, 3, index, history)
        found.add((point["a"], point["b"]))
        history.append(Observation(point, None, "running"))
    assert found == left
    # The same with nothing finished (the random phase): redraws fail, the scan finds the last point.
    pending = [Observation(p, None, "queued") for p in [*taken, {"a": 7, "b": 7}, {"a": 33, "b": 2}]]
    assert bayes.suggest(config, 3, 0, pending) == {"a": 40, "b": 30}


# --- every parameter kind ---------------------------------------------------------------------------


def multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-6)


KINDS: dict[str, Param] = {
    "int_uniform": dist("int_uniform", "int_uniform", min=-3, max=4),
    "uniform": dist("uniform", "uniform", min=-1.5, max=2.5),
    "q_uniform": dist("q_uniform", "q_uniform", min=0.0, max=2.0, q=0.25),
    "log_uniform": dist("log_uniform", "log_uniform", min=-7.0, max=-1.0),
    "log_uniform_values": dist("log_uniform_values", "log_uniform_values", min=1e-5, max=1e-1),
    "q_log_uniform": dist("q_log_uniform", "q_log_uniform", min=0.0, max=6.0, q=5),
    "q_log_uniform_values": dist("q_log_uniform_values", "q_log_uniform_values", min=1.0, max=1000.0, q=1),
    "inv_log_uniform": dist("inv_log_uniform", "inv_log_uniform", min=0.0, max=6.0),
    "inv_log_uniform_values": dist("inv_log_uniform_values", "inv_log_uniform_values", min=1e-4, max=1e2),
    "normal": dist("normal", "normal", mu=4.0, sigma=2.0),
    "q_normal": dist("q_normal", "q_normal", mu=4.0, sigma=2.0, q=0.1),
    "log_normal": dist("log_normal", "log_normal", mu=2.0, sigma=0.5),
    "q_log_normal": dist("q_log_normal", "q_log_normal", mu=2.0, sigma=2.0, q=10),
    "beta": dist("beta", "beta", a=2.0, b=5.0),
    "q_beta": dist("q_beta", "q_beta", a=2.0, b=5.0, q=0.1),
}
EVERY_KIND = sweep(
    *KINDS.values(),
    cat("nested.optimizer", ["sgd", "adam", "adamw", "sgd"]),  # a repeated value is one category
    cat("nested.deeper.act", ["relu", "gelu"], probabilities=[0.9, 0.1]),
    cat("dropout", [0.0, 0.1, 0.5, {"p": 1}], probabilities=[0.4, 0.3, 0.3, 0.0]),
    const("nested.arch", "resnet"),
)


def check(point: dict[str, Any]) -> None:
    assert json.loads(json.dumps(point, allow_nan=False)) == point
    e = math.exp
    bounds = {
        "int_uniform": (-3, 4),
        "uniform": (-1.5, 2.5),
        "q_uniform": (0.0, 2.0),
        "log_uniform": (e(-7.0), e(-1.0)),
        "log_uniform_values": (1e-5, 1e-1),
        "q_log_uniform": (0, 405),  # round(e**6 / 5) * 5
        "q_log_uniform_values": (1, 1000),
        "inv_log_uniform": (e(-6.0), 1.0),
        "inv_log_uniform_values": (1e-4, 1e2),
        "log_normal": (0.0, math.inf),
        "q_log_normal": (0, math.inf),
        "beta": (0.0, 1.0),
        "q_beta": (0.0, 1.0),
    }
    for name, param in KINDS.items():
        value = point[name]
        assert type(value) in (int, float), (name, value)
        assert math.isfinite(value)
        lo, hi = bounds.get(name, (-math.inf, math.inf))
        assert lo <= value <= hi, (name, value)
        if name == "int_uniform" or (name.startswith("q_") and isinstance(param.q, int)):
            assert type(value) is int, (name, value)
        if name.startswith("q_"):
            assert multiple(value, param.q), (name, value)
    assert point["nested"]["optimizer"] in ("sgd", "adam", "adamw")
    assert point["nested"]["deeper"]["act"] in ("relu", "gelu")
    assert point["dropout"] in (0.0, 0.1, 0.5)  # {"p": 1} has probability 0
    assert point["nested"]["arch"] == "resnet"


def test_every_distribution_is_covered() -> None:
    assert set(KINDS) == set(DISTRIBUTIONS)


@needs_extra
def test_every_parameter_kind_gets_valid_values() -> None:
    history: list[Observation] = []
    for index in range(25):
        point = bayes.suggest(EVERY_KIND, 5, index, history)
        check(point)
        value = sum(float(v) for v in point.values() if type(v) in (int, float))
        history.append(Observation(point, math.log1p(abs(value)), "finished"))
    assert len({key(o.params) for o in history}) == 25


@needs_extra
def test_runs_whose_params_do_not_fit_the_space_are_tolerated() -> None:
    """A changed config or a hand-made run: wrong types, missing keys, unknown categories."""
    config = sweep(dist("x", "uniform", min=0.0, max=1.0), cat("c", ["a", "b", "c"]))
    history = [
        Observation({"x": "high", "c": "a"}, 1.0, "finished"),
        Observation({"c": "zzz"}, 2.0, "finished"),
        Observation({"x": 0.2, "c": "b"}, 0.5, "finished"),
        Observation({"x": 0.8, "c": "c"}, 0.7, "failed"),
        Observation({"x": True, "c": ["a"]}, None, "running"),
    ]
    for index in range(3):
        point = bayes.suggest(config, 1, index, history)
        assert 0.0 <= point["x"] <= 1.0 and point["c"] in ("a", "b", "c")
        history.append(Observation(point, point["x"], "finished"))


# --- determinism, goal, impute ----------------------------------------------------------------------


@needs_extra
def test_deterministic_given_seed_index_and_history() -> None:
    history = [Observation(random_search.point(EVERY_KIND, 2, i), float(i % 5), "finished") for i in range(8)]
    history.append(Observation(random_search.point(EVERY_KIND, 2, 8), None, "running"))
    first = [bayes.suggest(EVERY_KIND, 2, i, history) for i in range(9, 12)]
    assert [bayes.suggest(EVERY_KIND, 2, i, list(history)) for i in range(9, 12)] == first
    assert len({key(p) for p in first}) == 3  # another index, another draw of candidates
    assert bayes.suggest(EVERY_KIND, 3, 9, history) != first[0]


@needs_extra
@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_the_goal_decides_which_end_is_explored(goal: Goal) -> None:
    config = sweep(dist("x", "uniform", min=0.0, max=1.0), goal=goal)
    history = [Observation({"x": x}, x, "finished") for x in (0.1, 0.3, 0.5, 0.7, 0.9)]  # loss = x
    for index in range(5):
        x = bayes.suggest(config, 0, index, history)["x"]
        assert (x < 0.3) if goal == "minimize" else (x > 0.7), x


HISTORY = [
    Observation({"i": 0}, 1.0, "finished"),
    Observation({"i": 1}, 3.0, "finished"),
    Observation({"i": 2}, 0.5, "failed", best=0.2),  # reported 0.5 last, 0.2 at best, then failed
    Observation({"i": 3}, None, "crashed"),
    Observation({"i": 4}, 2.0, "stopped"),
    Observation({"i": 5}, 0.1, "running"),
    Observation({"i": 6}, None, "queued"),
    Observation({"i": 7}, None, "preempting"),
    Observation({"i": 8}, None, "finished"),  # finished without reporting the metric
    Observation({"i": 9}, math.nan, "finished"),  # NaN counts as nothing reported
]


@pytest.mark.parametrize(
    ("impute", "goal", "expected"),
    [
        # worst of the ended runs' values (1, 3, 0.5, 2) is 3 when minimizing: every failed, crashed,
        # stopped or empty run gets it.
        ("worst", "minimize", [1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]),
        # best: the failed run's own best (0.2); the stopped run's value (2.0); nothing -> worst.
        ("best", "minimize", [1.0, 3.0, 0.2, 3.0, 2.0, 3.0, 3.0]),
        # latest: the last value reported (0.5, 2.0); nothing -> worst.
        ("latest", "minimize", [1.0, 3.0, 0.5, 3.0, 2.0, 3.0, 3.0]),
        # maximize: y is the negated value, and the worst is the smallest value (0.5).
        ("worst", "maximize", [-1.0, -3.0, -0.5, -0.5, -0.5, -0.5, -0.5]),
        ("latest", "maximize", [-1.0, -3.0, -0.5, -0.5, -2.0, -0.5, -0.5]),
    ],
)
def test_impute_modes(impute: Any, goal: Goal, expected: list[float]) -> None:
    results, pending = bayes._targets(Metric("loss", goal=goal, impute=impute), HISTORY)
    assert [i for i, _ in results] == [0, 1, 2, 3, 4, 8, 9]
    assert [y for _, y in results] == expected
    assert pending == [5, 6, 7]


def test_impute_while_running_makes_reporting_runs_results() -> None:
    results, pending = bayes._targets(Metric("loss", impute_while_running=True), HISTORY)
    assert (5, 0.1) in results
    assert pending == [6, 7]


def test_unknown_states_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown run state 'paused'"):
        bayes._targets(Metric("loss"), [Observation({}, 1.0, "paused")])


# --- dispatch ---------------------------------------------------------------------------------------


@needs_extra
def test_suggest_dispatches_bayes_and_the_others_ignore_history() -> None:
    history = [Observation(random_search.point(SMALL, 4, i), float(i), "finished") for i in range(4)]
    assert search.suggest(SMALL, 4, 4, history) == bayes.suggest(SMALL, 4, 4, history)
    methods: tuple[Method, ...] = ("random", "grid")
    for method in methods:
        other = SweepConfig(method=method, params=SMALL.params, raw={})
        assert search.suggest(other, 4, 2, history) == search.suggest(other, 4, 2)


# --- quality ----------------------------------------------------------------------------------------


def branin(x: float, y: float) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]: three global minima of 0.397887."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


BRANIN = sweep(dist("x", "uniform", min=-5.0, max=10.0), dist("y", "uniform", min=0.0, max=15.0))
BUDGET = 30
SEEDS = range(12)


def best_found(seed: int, method: str) -> float:
    history: list[Observation] = []
    for index in range(BUDGET):
        if method == "bayes":
            point = bayes.suggest(BRANIN, seed, index, history)
        else:
            point = random_search.point(BRANIN, seed, index)
        history.append(Observation(point, branin(point["x"], point["y"]), "finished"))
    return min(o.value for o in history if o.value is not None)


@needs_extra
def test_bayes_beats_random_on_branin() -> None:
    """30 runs each, 12 fixed seeds, the same seeds for both (paired).

    If bayes were no better than random, each seed would be a coin flip, and winning at least 10 of
    12 would happen by luck with probability (1 + 12 + 66) / 2**12 < 2% (a sign test). The seeds are
    fixed, so the outcome is the same on every run: never flaky, and not a lucky draw either. The
    median must also be better by a wide margin, not by a hair.
    """
    ours = [best_found(seed, "bayes") for seed in SEEDS]
    theirs = [best_found(seed, "random") for seed in SEEDS]
    wins = sum(a < b for a, b in zip(ours, theirs, strict=True))
    assert wins >= 10, (ours, theirs)
    assert statistics.median(ours) < 0.5 * statistics.median(theirs), (ours, theirs)
