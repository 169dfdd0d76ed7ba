"""Search latency: how long an agent takes to compute the next run's params, by method and history size.

For grid, random and bayes over 10 parameters, with 10, 100 and 1,000 finished runs already in the
sweep (their values from a noisy quadratic), times ``search.suggest`` for the next index, repeated
with a different index each time (so bayes draws fresh candidates and refits every time).

    python bench/search.py [--repeats 40]

Prints a markdown table. Bayes needs the bayes extra (pip install 'sweepd[bayes]'). Target: bayes
under 200 ms at 1,000 finished runs.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from typing import Any

from sweepd.queue import search
from sweepd.queue.search import Observation
from sweepd.queue.space import Method, Metric, Param, SweepConfig

SIZES = (10, 100, 1000)
TARGET_MS = 200.0


def dist(name: str, distribution: str, **fields: Any) -> Param:
    return Param(path=(name,), kind="distribution", distribution=distribution, **fields)


def cat(name: str, values: list[Any]) -> Param:
    return Param(path=(name,), kind="categorical", values=tuple(values))


def space(method: Method) -> SweepConfig:
    """Ten parameters; a grid gets ten enumerable ones, random and bayes a mix of every kind."""
    if method == "grid":
        params: tuple[Param, ...] = tuple(dist(f"p{i}", "int_uniform", min=0, max=3) for i in range(10))
    else:
        params = (
            dist("lr", "log_uniform_values", min=1e-5, max=1e-1),
            dist("momentum", "uniform", min=0.0, max=1.0),
            dist("layers", "int_uniform", min=1, max=8),
            dist("width", "q_uniform", min=32, max=512, q=32),
            dist("dropout", "beta", a=2.0, b=5.0),
            dist("decay", "q_log_uniform_values", min=1e-6, max=1e-2, q=1e-6),
            dist("warmup", "normal", mu=0.0, sigma=1.0),
            cat("optimizer", ["sgd", "adam", "adamw", "lion"]),
            cat("activation", ["relu", "gelu"]),
            dist("batch", "int_uniform", min=16, max=256),
        )
    return SweepConfig(method=method, params=params, raw={}, metric=Metric("loss"))


def loss(params: dict[str, Any], rng: random.Random) -> float:
    """Any smooth-ish function of the numbers, plus noise: bayes's cost does not depend on which."""
    numbers = [float(v) for v in params.values() if isinstance(v, (int, float))]
    return sum((math.log1p(abs(v)) - 0.5) ** 2 for v in numbers) + rng.gauss(0, 0.1)


def history(config: SweepConfig, n: int) -> list[Observation]:
    rng = random.Random(n)
    points = [search.random.point(config, 99, i) for i in range(n)]
    return [Observation(params=p, value=loss(p, rng), state="finished") for p in points]


def timings(config: SweepConfig, n: int, repeats: int) -> list[float]:
    runs = history(config, n) if config.method == "bayes" else []
    out: list[float] = []
    for rep in range(repeats):
        t0 = time.perf_counter()
        search.suggest(config, 7, n + rep, runs)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    print("| figure | ms p50 | ms p99 | target |")
    print("|---|---:|---:|---|")
    methods: tuple[Method, ...] = ("grid", "random", "bayes")
    for method in methods:
        config = space(method)
        search.suggest(config, 7, 0, history(config, 3))  # warm-up: imports, caches
        for n in SIZES:
            ms = timings(config, n, args.repeats)
            target = "—"
            if method == "bayes" and n == 1000:
                target = f"< {TARGET_MS:.0f} ms: {'met' if percentile(ms, 0.99) < TARGET_MS else 'MISSED'}"
            print(
                f"| {method}, {n:,} finished runs, 10 params | {statistics.median(ms):.2f} "
                f"| {percentile(ms, 0.99):.2f} | {target} |"
            )


if __name__ == "__main__":
    main()
