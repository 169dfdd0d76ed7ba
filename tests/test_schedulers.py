"""sweepd's own schedulers, pure: ``method: pbt`` and ``early_terminate: {type: asha}`` validation,
ASHA's rungs and promotions, PBT's exploit/explore decision. No Redis."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sweepd.queue.config import validate
from sweepd.queue.errors import ConfigError
from sweepd.queue.search import asha, pbt
from sweepd.queue.space import EarlyTerminate, Pbt

H = {
    "h0": {"distribution": "uniform", "min": 0.0, "max": 1.0},
    "h1": {"distribution": "uniform", "min": 0.0, "max": 1.0},
}
PBT = {
    "population": 4,
    "interval": 5,
    "steps": 200,
    "quantile": 0.25,
    "perturb": [0.8, 1.2],
    "resample_probability": 0.25,
}


def pbt_cfg(**block: Any) -> dict[str, Any]:
    return {
        "method": "pbt",
        "metric": {"name": "Q", "goal": "maximize"},
        "parameters": H,
        "program": "t.py",
        "pbt": {**PBT, **block},
    }


def asha_cfg(**et: Any) -> dict[str, Any]:
    spec = {"type": "asha", "min_iter": 1, "eta": 3, "max_iter": 81, **et}
    return {"method": "random", "metric": {"name": "loss"}, "parameters": H, "program": "t.py", "early_terminate": spec}


def test_the_issue_configs_validate() -> None:
    config = validate(pbt_cfg())
    assert config.method == "pbt"
    assert config.pbt == Pbt(4, 5, 200, 0.25, (0.8, 1.2), 0.25)
    et = validate(asha_cfg()).early_terminate
    assert et == EarlyTerminate(type="asha", min_iter=1, max_iter=81, eta=3.0)


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        (pbt_cfg(population=1), "pbt.population", "at least 2"),
        (pbt_cfg(population=2.5), "pbt.population", "whole number"),
        (pbt_cfg(interval=0), "pbt.interval", "at least 1"),
        (pbt_cfg(steps=3), "pbt.steps", "at least the interval"),
        (pbt_cfg(quantile=0.75), "pbt.quantile", "at most 0.5"),
        (pbt_cfg(perturb=[0.8, -1]), "pbt.perturb[1]", "greater than 0"),
        (pbt_cfg(perturb=1.2), "pbt.perturb", "list of factors"),
        (pbt_cfg(resample_probability=2), "pbt.resample_probability", "between 0 and 1"),
        (pbt_cfg(quantil=0.2), "pbt.quantil", "did you mean 'quantile'"),
        ({**pbt_cfg(), "pbt": None}, "pbt", "expected a mapping"),
        ({k: v for k, v in pbt_cfg().items() if k != "pbt"}, "pbt", "missing"),
        ({k: v for k, v in pbt_cfg().items() if k != "metric"}, "metric", "pbt needs a metric"),
        ({**asha_cfg(), "pbt": PBT}, "pbt", "only with method: pbt"),
        ({**pbt_cfg(), "early_terminate": {"type": "asha", "max_iter": 9}}, "early_terminate", "does not go with"),
        (asha_cfg(max_iter=None), "early_terminate.max_iter", "expected a whole number"),
        ({**asha_cfg(), "early_terminate": {"type": "asha"}}, "early_terminate.max_iter", "missing"),
        (asha_cfg(eta=1), "early_terminate.eta", "greater than 1"),
        (asha_cfg(min_iter=0), "early_terminate.min_iter", "at least 1"),
        (asha_cfg(min_iter=81), "early_terminate.max_iter", "greater than min_iter"),
        (asha_cfg(s=2), "early_terminate.s", "unknown key"),
        ({k: v for k, v in asha_cfg().items() if k != "metric"}, "early_terminate", "asha needs a metric"),
    ],
)
def test_bad_values_name_their_key(raw: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(raw)
    lines = [line for line in info.value.problems if line.startswith(key + ":")]
    assert lines and fragment in lines[0], info.value.problems
    assert all("\n" not in line for line in info.value.problems)


def test_asha_rungs() -> None:
    et = EarlyTerminate(type="asha", min_iter=1, max_iter=81, eta=3)
    assert asha.rungs(et) == [1, 3, 9, 27]
    assert [asha.stop_at(et, r) for r in (None, 0, 1, 2, 3)] == [1, 3, 9, 27, 81]
    assert asha.rungs(EarlyTerminate(type="asha", min_iter=2, max_iter=100, eta=2)) == [2, 4, 8, 16, 32, 64]
    assert asha.rung_index(et, 10) == 2 and asha.rung_index(et, 0) is None


def test_asha_promotes_the_top_third_not_yet_promoted_highest_rung_first() -> None:
    et = EarlyTerminate(type="asha", min_iter=1, max_iter=81, eta=3)
    runs = {f"r{i}": asha.RunRung("paused", 0, [float(i)]) for i in range(6)}  # lower is better
    assert asha.to_promote(et, "minimize", runs) == ("r0", 0)
    runs["r0"] = asha.RunRung("running", 0, [0.0, 0.5])  # promoted: r1 is the top third's other
    assert asha.to_promote(et, "minimize", runs) == ("r1", 0)
    runs["r1"] = asha.RunRung("running", 0, [1.0])
    assert asha.to_promote(et, "minimize", runs) is None  # top 2 of 6 both promoted
    assert asha.to_promote(et, "maximize", {**runs, "r5": asha.RunRung("paused", 0, [5.0])}) == ("r5", 0)
    # a higher rung goes first: three runs at rung 1, the best of them paused there
    high = {f"s{i}": asha.RunRung("paused", 1, [9.0, 9.0, float(i)]) for i in range(3)}
    assert asha.to_promote(et, "minimize", {**runs, **high}) == ("s0", 1)


def test_pbt_crossing_and_quantiles() -> None:
    assert pbt.crossed(5, None, 4) is None and pbt.crossed(5, None, 5) == 5
    assert pbt.crossed(5, 5, 9) is None and pbt.crossed(5, 7, 12) == 10
    assert pbt.quantiles({0: 1.0}, "maximize", 0.25) == ([], [])
    assert pbt.quantiles({0: 1.0, 1: 2.0}, "maximize", 0.25) == ([0], [1])
    assert pbt.quantiles({i: float(i) for i in range(8)}, "minimize", 0.25) == ([7, 6], [0, 1])


def test_pbt_bottom_copies_top_and_explores_in_range() -> None:
    config = validate(pbt_cfg(perturb=[0.8, 1.2], resample_probability=0.0))
    params = {m: pbt.first_params(config, 7, m) for m in range(4)}
    standings = {0: 0.1, 1: 0.9, 2: 0.5, 3: 0.4}
    assert pbt.decide(config, 7, 1, 5, standings, params.__getitem__) is None  # the top goes on
    assert pbt.decide(config, 7, 2, 5, standings, params.__getitem__) is None
    choice = pbt.decide(config, 7, 0, 5, standings, params.__getitem__)
    assert choice is not None and choice.parent == 1
    for name in ("h0", "h1"):
        ratio = choice.params[name] / params[1][name]
        assert min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-9 or choice.params[name] == 1.0
    assert choice == pbt.decide(config, 7, 0, 5, standings, params.__getitem__)  # every agent agrees


def test_pbt_explore_keeps_range_resamples_and_draws_categoricals() -> None:
    raw = pbt_cfg(perturb=[10.0], resample_probability=0.0)
    raw["parameters"] = {
        **H,
        "n": {"distribution": "int_uniform", "min": 1, "max": 5},
        "opt": {"values": ["a", "b"]},
        "c": {"value": 3},
    }
    config = validate(raw)
    rng = random.Random(1)
    seen = set()
    for _ in range(40):
        out = pbt.explore(config, {"h0": 0.5, "h1": 0.05, "n": 2, "opt": "a", "c": 3}, rng)
        assert out["h0"] == 1.0 and out["h1"] == pytest.approx(0.5) and out["n"] == 5 and out["c"] == 3
        seen.add(out["opt"])
    assert seen == {"a", "b"}  # a categorical is always drawn
    config = validate(pbt_cfg(resample_probability=1.0))
    out = pbt.explore(config, {"h0": 0.5, "h1": 0.5}, random.Random(2))
    assert out["h0"] != 0.5 * 0.8 and out["h0"] != 0.5 * 1.2 and 0 <= out["h0"] <= 1
