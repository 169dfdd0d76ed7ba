"""The validated sweep config as plain, immutable data: what config.py produces and the search reads.

Pure: no I/O. A run's parameters are a nested dict (nested W&B ``parameters`` give nested dicts);
each leaf of the search space is a ``Param`` addressed by its ``path`` in that dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .rows import DEFAULT_PATTERN

Kind = Literal["constant", "categorical", "distribution"]
Goal = Literal["minimize", "maximize"]
Method = Literal["grid", "random", "bayes", "pbt"]

#: Every W&B distribution name sweepd accepts (``constant`` and ``categorical`` are kinds, not here).
DISTRIBUTIONS: tuple[str, ...] = (
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",  # legacy: min/max are natural-log exponents
    "log_uniform_values",
    "q_log_uniform",  # legacy exponent form
    "q_log_uniform_values",
    "inv_log_uniform",  # legacy exponent form
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
)

#: Distributions a grid can enumerate (besides constant and categorical parameters).
GRID_DISTRIBUTIONS: tuple[str, ...] = ("int_uniform", "q_uniform")


@dataclass(frozen=True)
class Param:
    """One leaf of the search space, after validation and type inference.

    ``kind`` decides which fields mean something: ``value`` for constant; ``values`` (and optional
    ``probabilities``, summing to 1) for categorical; ``distribution`` with its bounds and shape
    numbers for distribution. Defaults W&B applies (``q`` = 1, ``mu`` = 0, ``sigma`` = 1, ``a`` =
    ``b`` = 1) are already filled in by validation.
    """

    path: tuple[str, ...]
    kind: Kind
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    distribution: str | None = None
    min: float | None = None
    max: float | None = None
    mu: float = 0.0
    sigma: float = 1.0
    q: float = 1.0
    a: float = 1.0
    b: float = 1.0

    @property
    def name(self) -> str:
        """The dotted name, as users write it on the command line (``optimizer.lr``)."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Metric:
    name: str
    goal: Goal = "minimize"
    target: float | None = None
    impute: Literal["worst", "best", "latest"] = "worst"
    impute_while_running: bool = False

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` for this goal."""
        return a < b if self.goal == "minimize" else a > b

    def reached(self, value: float) -> bool:
        """True when ``value`` meets ``target`` (never, without one)."""
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


@dataclass(frozen=True)
class EarlyTerminate:
    """``early_terminate: {type: hyperband, ...}`` (W&B's, enforced by search/hyperband.py) or
    ``{type: asha, min_iter, eta, max_iter}`` (sweepd's promotion-based ASHA, search/asha.py), validated."""

    type: Literal["hyperband", "asha"]
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    eta: float = 3.0
    strict: bool = False


@dataclass(frozen=True)
class Pbt:
    """``method: pbt``'s ``pbt:`` block (sweepd's own), validated by schedulers.py; used by search/pbt.py."""

    population: int
    interval: int
    steps: int
    quantile: float = 0.25
    perturb: tuple[float, ...] = (0.8, 1.2)
    resample_probability: float = 0.25


@dataclass(frozen=True)
class SweepConfig:
    """A sweep config sweepd accepted.

    ``raw`` is the config as the user wrote it (after parsing), kept so that it can be stored and
    validated again on any machine; ``notes`` are warnings for the user (ignored cloud-only keys,
    deprecated forms). ``stdout_metrics`` is the pattern the agent reads metrics from the program's
    printed lines with (sweepd's own key; None: it reads none).
    """

    method: Method
    params: tuple[Param, ...]
    raw: dict[str, Any]
    metric: Metric | None = None
    early_terminate: EarlyTerminate | None = None
    run_cap: int | None = None
    program: str | None = None
    command: tuple[str, ...] | None = None
    name: str | None = None
    description: str | None = None
    stdout_metrics: str | None = DEFAULT_PATTERN
    notes: tuple[str, ...] = field(default=())
    pbt: Pbt | None = None


def set_path(params: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` in a nested params dict, creating the inner dicts."""
    node = params
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
