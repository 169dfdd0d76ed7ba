"""Validation of sweepd's own schedulers, beyond W&B's schema: ``method: pbt`` with its ``pbt:``
block, and ``early_terminate: {type: asha, ...}``. Pure; config.py calls it.

W&B's validator refuses both (no ``pbt`` method, no ``asha`` type), so a config that uses either is
sweepd's alone; every W&B config validates exactly as before.
"""

from __future__ import annotations

from typing import Any

from .params import KeyPath, Report, number, unknown_keys
from .space import EarlyTerminate, Pbt

PBT_KEYS = ("population", "interval", "steps", "quantile", "perturb", "resample_probability")
ASHA_KEYS = ("type", "min_iter", "eta", "max_iter")


def pbt_block(report: Report, spec: Any) -> Pbt | None:
    """``pbt: {population, interval, steps, quantile, perturb, resample_probability}``."""
    where: KeyPath = ("pbt",)
    if not isinstance(spec, dict):
        report.problem(where, f"expected a mapping such as {{population: 4, interval: 5, steps: 200}}, got {spec!r}")
        return None
    before = len(report.problems)
    unknown_keys(report, where, spec, PBT_KEYS)
    counts: dict[str, int] = {}
    for key, least in (("population", 2), ("interval", 1), ("steps", 1)):
        if key not in spec:
            report.problem((*where, key), "missing")
            continue
        value = number(report, (*where, key), spec[key], integer=True)
        if value is not None and value < least:
            report.problem((*where, key), f"must be at least {least}, got {value!r}")
        elif value is not None:
            counts[key] = int(value)
    if "interval" in counts and "steps" in counts and counts["steps"] < counts["interval"]:
        report.problem(
            (*where, "steps"), f"must be at least the interval ({counts['interval']}), got {counts['steps']}"
        )
    quantile = number(report, (*where, "quantile"), spec["quantile"]) if "quantile" in spec else 0.25
    if quantile is not None and not 0 < quantile <= 0.5:
        report.problem((*where, "quantile"), f"must be above 0 and at most 0.5, got {quantile!r}")
    resample = spec.get("resample_probability", 0.25)
    resample = number(report, (*where, "resample_probability"), resample)
    if resample is not None and not 0 <= resample <= 1:
        report.problem((*where, "resample_probability"), f"must be between 0 and 1, got {resample!r}")
    perturb = _factors(report, (*where, "perturb"), spec.get("perturb", [0.8, 1.2]))
    if len(report.problems) > before or quantile is None or resample is None or perturb is None:
        return None
    return Pbt(
        population=counts["population"],
        interval=counts["interval"],
        steps=counts["steps"],
        quantile=float(quantile),
        perturb=perturb,
        resample_probability=float(resample),
    )


def _factors(report: Report, where: KeyPath, spec: Any) -> tuple[float, ...] | None:
    if not isinstance(spec, list) or not spec:
        report.problem(where, f"expected a list of factors such as [0.8, 1.2], got {spec!r}")
        return None
    factors: list[float] = []
    for i, item in enumerate(spec):
        value = number(report, (*where, i), item)
        if value is not None and value <= 0:
            report.problem((*where, i), f"must be greater than 0, got {value!r}")
        elif value is not None:
            factors.append(float(value))
    return tuple(factors) if len(factors) == len(spec) else None


def asha(report: Report, spec: dict[str, Any]) -> EarlyTerminate | None:
    """``early_terminate: {type: asha, min_iter: 1, eta: 3, max_iter: 81}``: max_iter is required
    (a run that reaches it finishes), min_iter defaults to 1 and eta to 3."""
    where: KeyPath = ("early_terminate",)
    before = len(report.problems)
    unknown_keys(report, where, spec, ASHA_KEYS)
    counts: dict[str, int] = {}
    for key in ("min_iter", "max_iter"):
        if key not in spec:
            if key == "max_iter":
                report.problem((*where, key), "missing (the iterations at which a run finishes)")
            continue
        value = number(report, (*where, key), spec[key], integer=True)
        if value is not None and value < 1:
            report.problem((*where, key), f"must be at least 1, got {value!r}")
        elif value is not None:
            counts[key] = int(value)
    min_iter = counts.get("min_iter", 1)
    if "max_iter" in counts and counts["max_iter"] <= min_iter:
        report.problem((*where, "max_iter"), f"must be greater than min_iter ({min_iter}), got {counts['max_iter']}")
    eta = number(report, (*where, "eta"), spec["eta"]) if "eta" in spec else 3.0
    if eta is not None and eta <= 1:
        report.problem((*where, "eta"), f"must be greater than 1, got {eta!r}")
    if len(report.problems) > before or eta is None:
        return None
    return EarlyTerminate(type="asha", min_iter=min_iter, max_iter=counts["max_iter"], eta=float(eta))
