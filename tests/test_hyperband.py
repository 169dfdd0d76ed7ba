"""Hyperband early termination: brackets, and which runs stop, worked out by hand for each case.

In every case "value at bracket b" is the b-th logged value (1-based), the cut-off is
``sorted(values at b)[int((1 / eta) * n)]`` over every run that reached b, and a running run is judged
at the last bracket it reached. With ``goal: maximize`` the values are negated first.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepd.queue.search.hyperband import RunCurve, brackets, to_stop
from sweepd.queue.space import EarlyTerminate, Goal, Metric, SweepConfig


def et(**fields: object) -> EarlyTerminate:
    return EarlyTerminate(type="hyperband", **fields)  # type: ignore[arg-type]


def config(early: EarlyTerminate | None, goal: Goal = "minimize") -> SweepConfig:
    return SweepConfig(method="random", params=(), raw={}, metric=Metric("loss", goal=goal), early_terminate=early)


def curves(**runs: tuple[str, list[float]]) -> dict[str, RunCurve]:
    return {rid: RunCurve(state, values) for rid, (state, values) in runs.items()}


# --- brackets -------------------------------------------------------------------------------------


def test_min_iter_brackets_start_at_min_iter() -> None:
    # W&B's docs: min_iter 3, eta 3 -> 3, 9, 27, 81, ... (i = 0, 1, 2, ...).
    assert brackets(et(min_iter=3, eta=3.0))[:4] == [3, 9, 27, 81]
    assert brackets(et(min_iter=1, eta=2.0))[:5] == [1, 2, 4, 8, 16]
    # Non-integer eta: int(2 * 1.5**i) = int(2), int(3), int(4.5), int(6.75), int(10.125).
    assert brackets(et(min_iter=2, eta=1.5))[:5] == [2, 3, 4, 6, 10]


def test_min_iter_brackets_are_distinct_and_bounded() -> None:
    found = brackets(et(min_iter=1, eta=1.01))
    assert found == sorted(set(found))  # int() repeats 1 several times at eta 1.01; repeats are dropped
    assert found[-1] <= 2**53
    assert len(brackets(et(min_iter=3, eta=3.0))) <= 100  # W&B's 100, fewer past 2**53


def test_max_iter_brackets_count_down_from_max_iter() -> None:
    # max_iter 27, eta 3: 27/3 = 9, 9/3 = 3 (s = 2); 3/3 = 1 (s = 3); 1/3 < 1 stops the loop (s = 4).
    assert brackets(et(max_iter=27, s=2, eta=3.0)) == [3, 9]
    assert brackets(et(max_iter=27, s=3, eta=3.0)) == [1, 3, 9]
    assert brackets(et(max_iter=27, s=4, eta=3.0)) == [1, 3, 9]
    # max_iter 5, eta 2: 5/2 = 2.5 -> 2, 2.5/2 = 1.25 -> 1.
    assert brackets(et(max_iter=5, s=2, eta=2.0)) == [1, 2]
    # Both forms given: max_iter wins, as in W&B.
    assert brackets(et(max_iter=27, s=1, min_iter=2, eta=3.0)) == [9]


def test_brackets_refuse_configs_without_any() -> None:
    with pytest.raises(ValueError, match="no bracket"):
        brackets(et(max_iter=2, s=2, eta=3.0))  # 2/3 < 1 at once
    with pytest.raises(ValueError):
        brackets(et(eta=3.0))
    with pytest.raises(ValueError):
        brackets(et(max_iter=27, eta=3.0))  # no s


# --- to_stop ----------------------------------------------------------------------------------------


MIN_ITER_ETA_2 = curves(
    done=("finished", [5, 4, 3, 2]),
    done2=("finished", [2, 2]),
    slow=("running", [6, 6, 6]),
    lucky=("running", [1, 5.5]),
    good=("running", [4, 3]),
    new=("running", [9]),
)
# min_iter 2, eta 2: brackets 2, 4, 8, ...; r = 0.5.
# Bracket 2 (second values of runs with >= 2): done 4, done2 2, slow 6, lucky 5.5, good 3
#   -> sorted [2, 3, 4, 5.5, 6], index int(0.5 * 5) = 2 -> cut-off 4.
# Bracket 4: only done (2) -> [2], index int(0.5 * 1) = 0 -> cut-off 2; no running run is there yet.
# Running runs, each at the last bracket it reached: slow, lucky, good at 2; new (1 value) at none.


def test_min_iter_eta_2_minimize_not_strict() -> None:
    # Best so far against 4: slow 6 (stop), lucky 1, good 3.
    assert to_stop(config(et(min_iter=2, eta=2.0)), MIN_ITER_ETA_2) == {"slow"}


def test_min_iter_eta_2_minimize_strict() -> None:
    # Value at bracket 2 against 4: slow 6 (stop), lucky 5.5 (stop: its early 1 does not save it), good 3.
    assert to_stop(config(et(min_iter=2, eta=2.0, strict=True)), MIN_ITER_ETA_2) == {"slow", "lucky"}


MAX_ITER_ETA_3 = curves(
    a=("finished", [0.1, 0.3, 0.6, 0.7, 0.7, 0.8, 0.8, 0.85, 0.9]),
    b=("finished", [0.1, 0.2, 0.5]),
    c=("running", [0.2, 0.4, 0.55, 0.6]),
    d=("running", [0.1, 0.2, 0.3]),
    e=("running", [0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.72, 0.73]),
    f=("running", [0.3, 0.35]),
)
# Accuracy, goal maximize; max_iter 27, s 2, eta 3: brackets 3, 9; r = 1/3. Values are negated, so
# "sorted ascending" is best first and a cut-off of -0.6 means "at least 0.6".
# Bracket 3 (third values): a .6, b .5, c .55, d .3, e .7 -> sorted [-.7, -.6, -.55, -.5, -.3],
#   index int(5/3) = 1 -> cut-off 0.6.
# Bracket 9 (ninth values): a .9, e .72 -> sorted [-.9, -.72], index int(2/3) = 0 -> cut-off 0.9.
# c (4 values) and d (3) are judged at 3, e (10) at 9, f (2) at none.


def test_max_iter_eta_3_maximize_not_strict() -> None:
    # Best so far: c 0.6 (ties 0.6: survives), d 0.3 (stop), e 0.73 < 0.9 (stop).
    assert to_stop(config(et(max_iter=27, s=2, eta=3.0), "maximize"), MAX_ITER_ETA_3) == {"d", "e"}


def test_max_iter_eta_3_maximize_strict() -> None:
    # Value at the bracket: c 0.55 < 0.6 (stop), d 0.3 (stop), e 0.72 < 0.9 (stop).
    assert to_stop(config(et(max_iter=27, s=2, eta=3.0, strict=True), "maximize"), MAX_ITER_ETA_3) == {"c", "d", "e"}


def test_the_same_curves_minimized_stop_the_other_runs() -> None:
    # Goal minimize on MAX_ITER_ETA_3 (now lower is better).
    # Bracket 3: sorted [.3, .5, .55, .6, .7], index 1 -> 0.5. Bracket 9: sorted [.72, .9], index 0 -> 0.72.
    # Not strict, best so far: c min 0.2 <= 0.5, d min 0.1 <= 0.5, e min 0.5 <= 0.72: none stop.
    assert to_stop(config(et(max_iter=27, s=2, eta=3.0)), MAX_ITER_ETA_3) == set()
    # Strict: c 0.55 > 0.5 (stop), d 0.3 <= 0.5, e 0.72 <= 0.72 (a tie survives).
    assert to_stop(config(et(max_iter=27, s=2, eta=3.0, strict=True)), MAX_ITER_ETA_3) == {"c"}


def test_only_running_runs_are_judged_but_every_run_counts() -> None:
    runs = curves(
        p=("preempting", [9, 9, 9]),
        q=("queued", [8]),  # a requeued run with a curve
        x=("running", [5, math.nan, 4, 6]),  # NaN is not an iteration: x's values are 5, 4, 6
        y=("running", [2]),
        z=("running", [7]),
        f=("failed", [1, 1, 1]),
    )
    # min_iter 1, eta 3: brackets 1, 3, 9, ...; r = 1/3.
    # Bracket 1 (first values): p 9, q 8, x 5, y 2, z 7, f 1 -> sorted [1, 2, 5, 7, 8, 9], index int(6/3) = 2 -> 5.
    # Bracket 3 (third values): p 9, x 6, f 1 -> sorted [1, 6, 9], index int(3/3) = 1 -> 6.
    # x at 3: best 4 (strict: 6) <= 6 survives; y at 1: 2 <= 5; z at 1: 7 > 5 stops.
    # p would stop (9 > 6) but is preempting; q would stop (8 > 5) but is queued.
    for strict in (False, True):
        assert to_stop(config(et(min_iter=1, eta=3.0, strict=strict)), runs) == {"z"}
    running_p = {**runs, "p": RunCurve("running", [9, 9, 9])}
    assert to_stop(config(et(min_iter=1, eta=3.0)), running_p) == {"z", "p"}


def test_wandb_docstring_example() -> None:
    # The example in W&B's hyperband_stop_runs: max_iter 5, s 2, eta 2 -> brackets 1, 2; r = 0.5.
    runs = curves(
        a=("finished", [10, 9]),
        b=("running", [10, 10]),
        c=("running", [10, 8, 8]),
        d=("running", [10, 7, 7]),
        e=("finished", [10, 6, 6]),
    )
    # Bracket 1: all 10 -> cut-off 10. Bracket 2: [9, 10, 8, 7, 6] -> sorted [6, 7, 8, 9, 10], index 2 -> 8.
    # b, c, d are judged at 2: b 10 > 8 stops; c 8 ties; d 7. (W&B's comment "c passes band 1 but not
    # band 2" dates from its older indexing, which read the value after the bracket.)
    for strict in (False, True):
        assert to_stop(config(et(max_iter=5, s=2, eta=2.0, strict=strict)), runs) == {"b"}


def test_nothing_to_do_without_early_terminate_metric_or_curves() -> None:
    runs = curves(a=("running", [100, 100, 100]), b=("running", [1, 1, 1]))
    assert to_stop(config(None), runs) == set()
    no_metric = SweepConfig(method="random", params=(), raw={}, early_terminate=et(min_iter=1))
    assert to_stop(no_metric, runs) == set()
    assert to_stop(config(et(min_iter=1)), {}) == set()
    # A lone running run is its own cut-off at every bracket: it never stops.
    assert to_stop(config(et(min_iter=1, strict=True)), {"a": RunCurve("running", [5, 4, 3])}) == set()


# --- against a literal transcription of W&B's current code ------------------------------------------


def wandb_stop(cfg: SweepConfig, runs: dict[str, RunCurve]) -> set[str]:
    """W&B's hyperband_stop_runs, statement for statement (bands, thresholds, then the judging loop)."""
    assert cfg.early_terminate is not None and cfg.metric is not None
    e = cfg.early_terminate
    if e.max_iter is not None:
        band, bands = float(e.max_iter), []
        for _ in range(e.s or 0):
            band /= e.eta
            if band < 1:
                break
            bands.append(int(band))
        bands = sorted(bands)
    else:
        band, bands = float(e.min_iter or 1), []
        for _ in range(100):
            bands.append(int(band))
            band *= e.eta
    r = 1.0 / e.eta
    sign = -1 if cfg.metric.goal == "maximize" else 1
    hist = {rid: [sign * v for v in c.values if math.isfinite(v)] for rid, c in runs.items()}
    all_h = [h for h in hist.values() if len(h) > 0]
    thresholds = []
    for band in bands:
        vals = [h[band - 1] for h in all_h if len(h) >= band]
        thresholds.append(sorted(vals)[int(r * len(vals))] if vals else math.inf)
    out = set()
    for rid, c in runs.items():
        if c.state != "running":
            continue
        h, closest, threshold = hist[rid], -1, 0.0
        for band, t in zip(bands, thresholds, strict=True):
            if band <= len(h):
                closest, threshold = band, t
            else:
                break
        if closest != -1:
            value = h[closest - 1] if e.strict else min(h)
            if value > threshold:
                out.add(rid)
    return out


run_curves = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=2),
    st.builds(
        RunCurve,
        st.sampled_from(["running", "running", "finished", "failed", "preempting", "queued"]),
        st.lists(st.integers(0, 6).map(float), max_size=12),  # small integers: plenty of ties
    ),
    max_size=8,
)
forms: st.SearchStrategy[dict[str, object]] = st.one_of(
    st.builds(dict, min_iter=st.integers(1, 4), eta=st.sampled_from([2.0, 3.0, 1.5, 4.0])),
    st.builds(dict, max_iter=st.integers(2, 40), s=st.integers(1, 4), eta=st.sampled_from([2.0, 3.0, 1.5])),
)


@settings(max_examples=300, deadline=None)
@given(runs=run_curves, form=forms, strict=st.booleans(), goal=st.sampled_from(["minimize", "maximize"]))
def test_matches_wandb_transcription(
    runs: dict[str, RunCurve], form: dict[str, object], strict: bool, goal: Goal
) -> None:
    early = et(**form, strict=strict)
    try:
        brackets(early)
    except ValueError:
        return  # W&B raises for these too ("Bands must be an array of length at least 1")
    cfg = config(early, goal)
    assert to_stop(cfg, runs) == wandb_stop(cfg, runs)
