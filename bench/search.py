"""Search latency: how long an agent takes to compute the next run's params, by method and history size.

For grid, random and bayes over 10 parameters, with 10, 100 and 1,000 finished runs already in the
sweep (their values from a noisy quadratic), times ``search.suggest`` for the next index, repeated
with a different index each time (so bayes draws fresh candidates and refits every time).

The baseline, measured in the same run where it is installed: Optuna's samplers on the same space
with the same finished trials in an in-memory study, timing ``study.ask()`` and the ten
``suggest_*`` calls: GridSampler, RandomSampler, and for bayes Optuna's default model-based sampler,
TPESampler (Optuna's GPSampler needs PyTorch).

    python bench/search.py [--repeats 40]

Prints a markdown table. Bayes needs the bayes extra (pip install 'sweepd[bayes]'); the baseline
needs Optuna (pip install optuna). Targets for bayes: p50 within 1.5x of TPESampler's at every size,
and p99 under 100 ms at 1,000 finished runs.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from common import Row, Section, has, markdown, median, num, percentile, ratio, sized_main, verdict

from sweepd.queue import search
from sweepd.queue.search import Observation
from sweepd.queue.space import Method, Metric, Param, SweepConfig

SIZES = (10, 100, 1000)
TARGET_MS = 100.0  # bayes p99 at 1,000 finished runs
TARGET_RATIO = 1.5  # bayes p50 against TPESampler's, at every size


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


def optuna_distributions(config: SweepConfig) -> dict[str, Any]:
    """The same space in Optuna's terms (normal and beta have no Optuna form: their usual range)."""
    from optuna import distributions as d

    out: dict[str, Any] = {}
    for p in config.params:
        if p.kind == "categorical":
            out[p.name] = d.CategoricalDistribution(list(p.values))
        elif p.distribution == "int_uniform":
            out[p.name] = d.IntDistribution(int(p.min or 0), int(p.max or 0))
        elif p.distribution in ("log_uniform_values", "q_log_uniform_values"):
            out[p.name] = d.FloatDistribution(float(p.min or 0), float(p.max or 0), log=True)
        elif p.distribution == "q_uniform":
            out[p.name] = d.FloatDistribution(float(p.min or 0), float(p.max or 0), step=p.q)
        elif p.distribution == "normal":
            out[p.name] = d.FloatDistribution(p.mu - 3 * p.sigma, p.mu + 3 * p.sigma)
        else:  # uniform, beta
            out[p.name] = d.FloatDistribution(0.0, 1.0)
    return out


def optuna_timings(config: SweepConfig, n: int, repeats: int) -> list[float]:
    """ms for Optuna to suggest the next trial's 10 params, with n finished trials in the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = optuna_distributions(config)
    sampler: Any
    if config.method == "grid":
        sampler = optuna.samplers.GridSampler({name: [0, 1, 2, 3] for name in dists}, seed=7)
    elif config.method == "random":
        sampler = optuna.samplers.RandomSampler(seed=7)
    else:
        sampler = optuna.samplers.TPESampler(seed=7)
    study = optuna.create_study(sampler=sampler)
    rng = random.Random(n)
    trials = []
    for _ in range(n):
        params = {name: dist.to_external_repr(dist.to_internal_repr(_draw(dist, rng))) for name, dist in dists.items()}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=loss(params, rng)))
    study.add_trials(trials)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trial = study.ask()
        for name, dist in dists.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                trial.suggest_int(name, dist.low, dist.high)
            else:
                trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _draw(dist: Any, rng: random.Random) -> Any:
    if hasattr(dist, "choices"):
        return rng.choice(dist.choices)
    if dist.__class__.__name__ == "IntDistribution":
        return rng.randint(dist.low, dist.high)
    if getattr(dist, "step", None):
        return dist.low + dist.step * rng.randint(0, int((dist.high - dist.low) / dist.step))
    if getattr(dist, "log", False):
        return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
    return rng.uniform(dist.low, dist.high)


def measure(quick: bool = False, repeats: int | None = None) -> Section:
    repeats = repeats or (3 if quick else 40)
    sizes = (100,) if quick else SIZES
    section = Section("search")
    rows = []
    methods: tuple[Method, ...] = ("grid", "random", "bayes")
    baseline = has("optuna")
    for method in methods:
        config = space(method)
        if method == "bayes" and not has("scipy"):
            section.rows.append(Row("search, bayes", "skipped: the bayes extra is not installed"))
            continue
        search.suggest(config, 7, 0, history(config, 3))  # warm-up: imports, caches
        if baseline:
            optuna_timings(config, 3, 1)
        for n in sizes:
            ms = timings(config, n, repeats)
            base = optuna_timings(config, n, repeats) if baseline else []
            target = "—"
            if method == "bayes":
                fast = base and median(ms) <= TARGET_RATIO * median(base)
                targets = [f"p50 <= {TARGET_RATIO}x TPE: {verdict(bool(fast))}"] if base else []
                if n == 1000:
                    targets.append(f"p99 < {TARGET_MS:.0f} ms: {verdict(percentile(ms, 99) < TARGET_MS)}")
                target = "; ".join(targets) or "—"
            name = {"grid": "GridSampler", "random": "RandomSampler", "bayes": "TPESampler"}[method]
            section.rows.append(
                Row(
                    f"search, {method}: suggest the next run at {n:,} finished runs (10 params), ms p50 / p99",
                    f"{num(median(ms), 2)} / {num(percentile(ms, 99), 2)}",
                    f"{num(median(base), 2)} / {num(percentile(base, 99), 2)} (Optuna {name})"
                    if base
                    else "Optuna not installed",
                    ratio(median(ms), median(base)) if base else "—",
                    target,
                )
            )
            rows.append(
                [
                    method,
                    f"{n:,}",
                    num(median(ms), 2),
                    num(percentile(ms, 99), 2),
                    num(median(base), 2) if base else "—",
                ]
            )
    section.detail = markdown(rows, ["method", "finished runs", "sweepd p50 ms", "sweepd p99 ms", "Optuna p50 ms"])
    return section


if __name__ == "__main__":
    sized_main(__doc__, measure, "--repeats", 40)
