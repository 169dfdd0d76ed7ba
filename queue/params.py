"""Validation of a sweep's ``parameters`` block, split out of config.py to keep each file readable.

Each parameter is matched to exactly one of W&B's parameter forms (see ``_TAKES``), with W&B's type
rules: ``int_uniform`` wants whole numbers, ``min`` < ``max`` strictly, the ``*_values`` log forms want
``min`` > 0. Where W&B would accept something that cannot work (a legacy exponent that overflows) or
reject something with a cryptic message (a bound YAML 1.1 read as text), the problem says why.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import bounds
from .space import GRID_DISTRIBUTIONS, Param

#: W&B's rule for parameter names (schema.json, ``propertyNames``).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

#: The keys each distribution takes; ``distribution`` itself is always allowed.
_TAKES: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values",),
    "categorical_w_probabilities": ("values", "probabilities"),
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max", "q"),
    "log_uniform": ("min", "max"),
    "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max", "q"),
    "q_log_uniform_values": ("min", "max", "q"),
    "inv_log_uniform": ("min", "max"),
    "inv_log_uniform_values": ("min", "max"),
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b", "q"),
}
_REQUIRED = ("value", "values", "probabilities", "min", "max")
_FORM_KEYS = ("value", "values", "probabilities", "distribution", "min", "max", "mu", "sigma", "q", "a", "b")
_LEGACY = ("log_uniform", "q_log_uniform", "inv_log_uniform")  # min/max are natural-log exponents
_MAX_EXPONENT = math.log(sys.float_info.max)  # e**709.78 is the largest float
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./@-]+")
_EXPONENT_TEXT = re.compile(r"([-+]?)(\d*)(?:\.(\d*))?[eE]([-+]?)(\d+)")
_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")

KeyPath = tuple[str | int, ...]


@dataclass
class Report:
    """Problems (which refuse the config) and notes (which do not), one line each, collected in order."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(f"{render(path)}: {message}")

    def note(self, path: KeyPath, message: str) -> None:
        self.notes.append(f"{render(path)}: {message}")


def render(path: KeyPath) -> str:
    """``('parameters', 'lr', 'min')`` -> ``parameters.lr.min``; ``('command', 3)`` -> ``command[3]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            text = part if isinstance(part, str) and _PLAIN_KEY.fullmatch(part) else repr(part)
            out += f".{text}" if out else text
    return out or "(top level)"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'values'?"`` for the closest choice, or ``""`` when none is close."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    match = difflib.get_close_matches(str(word).strip().lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[match[0]]}'?" if match else ""


def unknown_keys(report: Report, path: KeyPath, spec: Mapping[Any, Any], known: Sequence[str]) -> list[Any]:
    """Report every key of ``spec`` not in ``known``, and return them."""
    unknown = [k for k in spec if isinstance(k, str) and k not in known]  # other keys: see config._plain
    for key in unknown:
        hint = did_you_mean(key, known) or f" (expected {', '.join(known)})"
        report.problem((*path, key), f"unknown key{hint}")
    return unknown


def yaml11_spelling(text: str) -> str | None:
    """How to write a number PyYAML left as text so that YAML 1.1 reads a float: '5e-4' -> '5.0e-4'.

    YAML 1.1 floats need a dot and a signed exponent, so ``1e-5`` and ``1.0e5`` are strings there.
    """
    m = _EXPONENT_TEXT.fullmatch(text)
    if m is None or not (m[2] or m[3]):
        return None
    sign, whole, frac, esign, exp = m.groups()
    return f"{sign}{whole or '0'}.{frac or '0'}e{esign or '+'}{exp}"


def is_number(value: object) -> bool:
    """A finite int or float; YAML's true/false are bools in Python, never numbers here (as in JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= sys.float_info.max if isinstance(value, int) else math.isfinite(value)


def number(report: Report, path: KeyPath, value: object, *, integer: bool = False, why: str = "") -> float | None:
    """``value`` if it is a number (an int when ``integer``), else report why not and return None."""
    if isinstance(value, (int, float)) and is_number(value) and (not integer or isinstance(value, int)):
        return value
    if isinstance(value, str):
        fix = yaml11_spelling(value.strip())
        if fix is not None:
            lacks = "without a dot" if "." not in value else "without a sign after the e"
            hint = f" (YAML 1.1 reads {value.strip()} {lacks} as text: write {fix})"
        else:
            hint = " (remove the quotes)" if _NUMBER_TEXT.fullmatch(value) else ""
        report.problem(path, f"expected a number, got the string {value!r}{hint}")
    elif is_number(value):
        report.problem(path, f"expected a whole number{why}, got {value!r}")
    else:
        report.problem(path, f"expected a {'whole ' if integer else ''}number, got {value!r}")
    return None


def validate_parameters(report: Report, spec: object, method: str | None) -> tuple[Param, ...]:
    """All the leaves of the ``parameters`` block, in the order written (depth-first when nested)."""
    out: list[Param] = []
    _block(report, ("parameters",), (), spec, method, out)
    return tuple(out)


def _block(
    report: Report,
    where: KeyPath,
    prefix: tuple[str, ...],
    spec: object,
    method: str | None,
    out: list[Param],
) -> None:
    if not isinstance(spec, dict) or not spec:
        got = "nothing" if spec is None or spec == {} else repr(spec)
        report.problem(where, f"expected a non-empty mapping of parameter names, got {got}")
        return
    for name, param in spec.items():
        label = name if isinstance(name, str) else repr(name)  # other keys: see config._plain
        if isinstance(name, str) and not NAME.fullmatch(name):
            report.problem((*where, name), f"a parameter name must match {NAME.pattern}")
        _param(report, (*where, label), (*prefix, str(name)), param, method, out)


def _param(
    report: Report, where: KeyPath, path: tuple[str, ...], spec: object, method: str | None, out: list[Param]
) -> None:
    if not isinstance(spec, dict):
        report.problem(where, f"expected a mapping such as {{value: {spec!r}}}, got {spec!r}")
        return
    if "parameters" in spec:
        if len(spec) > 1:
            others = ", ".join(str(k) for k in spec if k != "parameters")
            report.problem(where, f"a nested 'parameters' block cannot be combined with {others}")
        else:
            _block(report, (*where, "parameters"), path, spec["parameters"], method, out)
        return
    typos = unknown_keys(report, where, spec, (*_FORM_KEYS, "parameters"))
    if typos and not set(spec) & set(_FORM_KEYS):
        return  # the unknown key was the whole parameter (a typo such as "values:"): one line is enough
    dist = _distribution(report, where, spec)
    if dist is None:
        return
    extra = [k for k in _FORM_KEYS if k in spec and k != "distribution" and k not in _TAKES[dist]]
    if extra:
        takes = " and ".join(_TAKES[dist])
        if "distribution" in spec:
            hint = " (or drop distribution)" if dist == "categorical" and extra == ["probabilities"] else ""
            report.problem(
                where,
                f"{', '.join(extra)} cannot be combined with distribution '{dist}', which takes {takes}{hint}",
            )
        else:
            report.problem(where, f"{', '.join(extra)} cannot be combined with {takes}")
        return
    missing = [k for k in _TAKES[dist] if k in _REQUIRED and k not in spec]
    for key in missing if not typos else ():  # a typo ("mxa") already explains a missing key
        report.problem((*where, key), f"missing (distribution '{dist}' needs {' and '.join(_TAKES[dist])})")
    if missing:
        return
    param = _build(report, where, path, spec, dist)
    if (
        param is not None
        and method == "grid"
        and param.kind == "distribution"
        and param.distribution not in GRID_DISTRIBUTIONS
    ):
        report.problem(
            where,
            f"grid search cannot enumerate distribution '{dist}' (use values, int_uniform or q_uniform)",
        )
    elif param is not None and method == "grid" and param.probabilities is not None:
        report.problem(
            (*where, "probabilities"),
            "grid search tries every value once, so probabilities apply only to random and bayes",
        )
    elif param is not None:
        out.append(param)


def _distribution(report: Report, where: KeyPath, spec: Mapping[str, Any]) -> str | None:
    """The distribution named or, without one, the one W&B infers from the keys present."""
    if "distribution" in spec:
        dist = spec["distribution"]
        if isinstance(dist, str) and dist in _TAKES:
            return dist
        report.problem((*where, "distribution"), f"unknown distribution {dist!r}{did_you_mean(dist, _TAKES)}")
        return None
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec and "max" in spec:
        low = number(report, (*where, "min"), spec["min"])
        high = number(report, (*where, "max"), spec["max"])
        if low is None or high is None:
            return None
        if isinstance(low, int) and isinstance(high, int):
            return "int_uniform"
        if isinstance(low, float) and isinstance(high, float):
            return "uniform"
        report.problem(
            where,
            f"min {low!r} and max {high!r} mix an integer and a float, which W&B calls "
            "ambiguous: write both as floats (0.0) for uniform, both as integers for "
            "int_uniform, or name the distribution",
        )
        return None
    if "min" in spec or "max" in spec:
        given, lacking = ("min", "max") if "min" in spec else ("max", "min")
        report.problem((*where, lacking), f"missing ({given} is given; a range needs both)")
        return None
    report.problem(where, "expected value, values, min and max, or a distribution")
    return None


def _build(report: Report, where: KeyPath, path: tuple[str, ...], spec: Mapping[str, Any], dist: str) -> Param | None:
    """The Param for a spec whose keys fit ``dist``, or None after reporting bad numbers."""
    if dist == "constant":
        _note_text_numbers(report, (*where, "value"), [spec["value"]])
        if _too_big(report, (*where, "value"), [spec["value"]]):
            return None
        return Param(path=path, kind="constant", value=spec["value"])
    if dist.startswith("categorical"):
        return _categorical(report, where, path, spec)
    before = len(report.problems)
    nums: dict[str, float] = {}
    for key in _TAKES[dist]:
        if key in spec:
            value = number(
                report,
                (*where, key),
                spec[key],
                integer=dist == "int_uniform",
                why=" (int_uniform draws integers; use uniform for a real range)",
            )
            if value is not None and key in ("sigma", "q", "a", "b") and value <= 0:
                report.problem((*where, key), f"must be greater than 0, got {value!r}")
            elif value is not None:
                nums[key] = value
    low, high = nums.get("min"), nums.get("max")
    if low is not None and high is not None and low >= high:
        report.problem((*where, "min"), f"{low!r} is not less than max {high!r}")
    if low is not None and dist.endswith("_values") and low <= 0:
        report.problem((*where, "min"), f"{dist} needs min > 0 (it takes logarithms), got {low!r}")
    if dist in _LEGACY:
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and abs(bound) > _MAX_EXPONENT:
                report.problem(
                    (*where, key),
                    f"{dist} bounds are natural-log exponents, and e^{bound!r} "
                    f"does not fit in a float (for the values use {dist}_values)",
                )
    if len(report.problems) > before:
        return None
    if dist in _LEGACY and low is not None and high is not None:
        report.note(
            where,
            f"{dist} is deprecated: min/max are exponents, so it draws from "
            f"e^{low!r}..e^{high!r} ({math.exp(low):.3g}..{math.exp(high):.3g}); "
            f"{dist}_values takes the values themselves",
        )
    return Param(
        path=path,
        kind="distribution",
        distribution=dist,
        min=low,
        max=high,
        mu=nums.get("mu", 0.0),
        sigma=nums.get("sigma", 1.0),
        q=nums.get("q", 1.0),
        a=nums.get("a", 1.0),
        b=nums.get("b", 1.0),
    )


def _categorical(report: Report, where: KeyPath, path: tuple[str, ...], spec: Mapping[str, Any]) -> Param | None:
    values = spec["values"]
    if not isinstance(values, list) or not values:
        hint = f" (for one value write value: {values!r})" if not isinstance(values, list) else ""
        report.problem((*where, "values"), f"expected a non-empty list, got {values!r}{hint}")
        return None
    _note_text_numbers(report, (*where, "values"), values)
    if _too_big(report, (*where, "values"), values):
        return None
    if "probabilities" not in spec:
        return Param(path=path, kind="categorical", values=tuple(values))
    probs = spec["probabilities"]
    if not isinstance(probs, list) or len(probs) != len(values):
        count = f"{len(probs)} probabilities" if isinstance(probs, list) else repr(probs)
        report.problem(
            (*where, "probabilities"), f"expected a list of {len(values)} numbers, one per value, got {count}"
        )
        return None
    before = len(report.problems)
    checked = [number(report, (*where, "probabilities", i), p) for i, p in enumerate(probs)]
    for i, p in enumerate(checked):
        if p is not None and p < 0:
            report.problem((*where, "probabilities", i), f"must not be negative, got {p!r}")
    if len(report.problems) > before:
        return None
    total = math.fsum(p for p in checked if p is not None)
    if abs(total - 1.0) > 1e-6:
        report.problem((*where, "probabilities"), f"sum to {total!r}, not 1")
        return None
    return Param(
        path=path,
        kind="categorical",
        values=tuple(values),
        probabilities=tuple(float(p) for p in checked if p is not None),
    )


def _too_big(report: Report, path: KeyPath, values: Sequence[Any]) -> bool:
    """Report each value larger than a run's parameter may be (bounds.PARAM_BYTES as JSON)."""
    problems = [(i, why) for i, v in enumerate(values) if (why := bounds.check_param("", v)) is not None]
    for i, why in problems:
        report.problem((*path, i) if len(values) > 1 or path[-1] == "values" else path, why.removeprefix(": "))
    return bool(problems)


def _note_text_numbers(report: Report, path: KeyPath, values: Sequence[Any]) -> None:
    """Note values PyYAML read as text although they look like numbers (W&B passes them on as text)."""
    texts = [v for v in values if isinstance(v, str) and yaml11_spelling(v) is not None]
    if texts:
        shown = ", ".join(repr(t) for t in texts[:3]) + (", ..." if len(texts) > 3 else "")
        one = len(texts) == 1
        report.note(
            path,
            f"{shown} {'is' if one else 'are'} text, as in W&B (YAML 1.1 reads "
            f"{'it' if one else 'them'} so); for a number write {yaml11_spelling(texts[0])}",
        )
