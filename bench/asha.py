"""ASHA against random search and W&B-style hyperband, on synthetic learning curves.

200 configurations, each a curve loss(t) = final + early / sqrt(t) for t = 1..81 iterations: ``final``
uniform in [0.1, 1.1], ``early`` uniform in [0, SPREAD]: the larger SPREAD, the more the ranking
after one iteration differs from the final one (the Kendall tau between the two is printed: the
known amount). Each method spends iterations one at a time, on one worker, until a configuration
within 1% of the best final loss has been trained to max_iter (81); the figure is the iterations
spent until then, the median over 10 seeds (the same curves and the same order of configurations
for the three methods in each seed):

- random: each configuration in turn, trained to 81;
- hyperband, W&B-style (stopping, no promotion): each configuration in turn, stopped at a bracket
  (1, 3, 9, 27) when ``search.hyperband.to_stop`` says so, against every curve so far;
- ASHA (``early_terminate: {type: asha, min_iter: 1, eta: 3, max_iter: 81}``): each time work is
  asked for, ``search.asha.to_promote`` first (the run goes on to its next rung), else a new
  configuration; a run stops at every rung (1, 3, 9, 27) and finishes at 81. The decisions are
  sweepd's own code (pure), so this measures the rule an agent applies.

    python bench/asha.py [--seeds 10] [--spread 0.5]

Target: ASHA at most 1/3 of random's iterations.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable

from common import Row, Section, markdown, num, ratio, show

from sweepd.queue.search import asha, hyperband
from sweepd.queue.space import EarlyTerminate, Metric, SweepConfig

N, MAX_ITER, ETA = 200, 81, 3
ASHA = EarlyTerminate(type="asha", min_iter=1, max_iter=MAX_ITER, eta=ETA)
HYPERBAND = SweepConfig(
    "random",
    (),
    {},
    metric=Metric("loss"),
    early_terminate=EarlyTerminate(type="hyperband", min_iter=1, eta=ETA, strict=True),
)
TARGET = 1 / 3

Curve = Callable[[int], float]


def curves(seed: int, spread: float) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(N):
        final, early = rng.uniform(0.1, 1.1), rng.uniform(0.0, spread)
        out.append([final + early / (t**0.5) for t in range(1, MAX_ITER + 1)])
    return out


def good(curve: list[float], best: float) -> bool:
    return curve[-1] <= best * 1.01


def by_random(cs: list[list[float]], best: float) -> int:
    spent = 0
    for curve in cs:
        spent += MAX_ITER
        if good(curve, best):
            return spent
    return spent


def by_hyperband(cs: list[list[float]], best: float) -> int:
    spent, seen = 0, {}
    marks = set(hyperband.brackets(HYPERBAND.early_terminate)) if HYPERBAND.early_terminate else set()
    for i, curve in enumerate(cs):
        rid = f"r{i:03d}"
        for t in range(1, MAX_ITER + 1):
            spent += 1
            if t in marks:
                seen[rid] = hyperband.RunCurve("running", curve[:t])
                if rid in hyperband.to_stop(HYPERBAND, seen):
                    break
        else:
            if good(curve, best):
                return spent
        seen[rid] = hyperband.RunCurve("stopped", seen[rid].values if rid in seen else curve)
    return spent


def by_asha(cs: list[list[float]], best: float) -> int:
    spent, made = 0, 0
    runs: dict[str, asha.RunRung] = {}
    while True:
        chosen = asha.to_promote(ASHA, "minimize", runs)
        if chosen is not None:
            rid, rung = chosen
        elif made < len(cs):
            rid, rung, made = f"r{made:03d}", None, made + 1
        else:
            return spent
        curve = cs[int(rid[1:])]
        start = len(runs[rid].values) if rid in runs else 0
        stop = asha.stop_at(ASHA, rung)
        spent += stop - start
        if stop >= MAX_ITER:
            runs[rid] = asha.RunRung("finished", rung, curve)
            if good(curve, best):
                return spent
        else:
            runs[rid] = asha.RunRung("paused", 0 if rung is None else rung + 1, curve[:stop])


def kendall(a: list[float], b: list[float]) -> float:
    pairs = concordant = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            pairs += 1
            concordant += 1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1
    return concordant / pairs


def measure(seeds: int = 10, spread: float = 0.5) -> Section:
    spent: dict[str, list[int]] = {"random": [], "hyperband": [], "asha": []}
    taus = []
    for seed in range(seeds):
        cs = curves(seed, spread)
        best = min(c[-1] for c in cs)
        taus.append(kendall([c[0] for c in cs], [c[-1] for c in cs]))
        spent["random"].append(by_random(cs, best))
        spent["hyperband"].append(by_hyperband(cs, best))
        spent["asha"].append(by_asha(cs, best))
    med = {name: statistics.median(values) for name, values in spent.items()}
    tau = statistics.median(taus)
    met = "met" if med["asha"] <= TARGET * med["random"] else "**missed**"
    rows = [
        Row(
            f"ASHA, synthetic curves ({N} configurations, Kendall tau early/final {tau:.2f}): iterations until one "
            f"within 1% of the best has finished, median of {seeds} seeds (measured apart, `python bench/asha.py`)",
            num(med["asha"], 0),
            f"{num(med['random'], 0)} (random search); W&B-style hyperband {num(med['hyperband'], 0)}",
            ratio(med["asha"], med["random"]),
            f"<= 0.33x: {met}",
        )
    ]
    detail = markdown(
        [[name, num(med[name], 0), " ".join(str(v) for v in values)] for name, values in spent.items()],
        ("method", "median iterations", "per seed"),
    )
    return Section("asha", rows, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--spread", type=float, default=0.5)
    args = parser.parse_args()
    show(measure(args.seeds, args.spread))


if __name__ == "__main__":
    main()
