"""Parameters a user gives by hand (``sweepd enqueue --param name=value``), pure: parsed, and checked
against the sweep's search space.

- A name must be one of the sweep's parameters (nested ones by their dotted name, ``optim.lr``).
- A value is read as JSON where it is JSON (``0.01``, ``1e-3``, ``true``, ``[1, 2]``, ``"32"``), else
  it is text (``adam``); it must be finite.
- A value outside the search space (not one of ``values``, beyond ``min``/``max``, a float for
  ``int_uniform``) is allowed with a warning: the user asked for it explicitly.
- A new run needs a value for every parameter that is not a constant (constants are filled in);
  a known run keeps the parameters it has, and the given ones replace theirs.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

from . import bounds
from .errors import UserError
from .params import did_you_mean
from .parsing import MAX_DEPTH
from .space import Param, SweepConfig, set_path

_LEGACY = ("log_uniform", "q_log_uniform", "inv_log_uniform")  # bounds are natural-log exponents
_POSITIVE = ("log_normal", "q_log_normal")


def parse(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.01", "opt=adam"]`` -> ``{"lr": 0.01, "opt": "adam"}`` (dotted names kept flat)."""
    out: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UserError(f"--param {item!r}: expected NAME=VALUE, such as lr=0.01")
        if name in out:
            raise UserError(f"--param {name}: given twice")
        out[name] = value(text, name)
        if len(text.encode()) > bounds.PARAM_BYTES:
            raise UserError(
                f"--param {name}: a value of {len(text.encode())} bytes, larger than a parameter may be "
                f"({bounds.PARAM_BYTES} bytes)"
            )
    return out


def value(text: str, name: str = "") -> Any:
    """One value as the command line gives it: JSON where it is JSON, else the text itself; nested
    no deeper than a sweep file may be (``MAX_DEPTH``), before anything recurses through it."""
    too_deep = UserError(f"--param {name}: nested deeper than {MAX_DEPTH} levels")
    try:
        parsed = json.loads(text)
    except RecursionError:  # deeper than the parser's own recursion
        raise too_deep from None
    except ValueError:
        return text
    if _deeper_than(parsed, MAX_DEPTH):
        raise too_deep
    if not _finite(parsed):
        raise UserError(f"--param {name}: {text!r} is not a finite value")
    return parsed


def _deeper_than(value: Any, limit: int) -> bool:
    """Lists and mappings nest more than ``limit`` levels (walked without recursion)."""
    level = [value]
    for _ in range(limit):
        level = [v for item in level if isinstance(item, (list, dict)) for v in _children(item)]
        if not level:
            return False
    return any(isinstance(item, (list, dict)) for item in level)


def _children(item: list[Any] | dict[str, Any]) -> list[Any]:
    return list(item.values()) if isinstance(item, dict) else item


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    return True


def resolve(
    config: SweepConfig, given: dict[str, Any], base: dict[str, Any] | None, sweep_id: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """The run's params and the warnings to print. ``base`` is a known run's params (None: a new run).

    Raises ``UserError`` for a name the sweep does not have, or a new run missing a parameter.
    """
    by_name = {p.name: p for p in config.params}
    where = f"sweep {sweep_id}" if sweep_id else "the sweep"
    for name in given:
        if name not in by_name:
            hint = did_you_mean(name, by_name) or f" (its parameters: {', '.join(by_name)})"
            raise UserError(f"--param {name}: {where} has no parameter {name!r}{hint}")
    if base is None:
        missing = [p.name for p in config.params if p.kind != "constant" and p.name not in given]
        if missing:
            raise UserError(
                f"--param: a new run needs a value for every parameter of {where}: missing {', '.join(missing)}"
            )
    params = copy.deepcopy(base) if base is not None else {}
    warnings: list[str] = []
    for p in config.params:
        if p.name in given:
            set_path(params, p.path, given[p.name])
            why = outside(p, given[p.name])
            if why:
                warnings.append(f"{p.name}={json.dumps(given[p.name])} is outside {where}'s search space ({why})")
        elif base is None:
            set_path(params, p.path, p.value)
    return params, warnings


def outside(param: Param, value: Any) -> str | None:
    """Why ``value`` is outside the parameter's search space, or None when it is inside."""
    if param.kind == "constant":
        return None if _same(value, param.value) else f"the constant is {json.dumps(param.value)}"
    if param.kind == "categorical":
        if any(_same(value, v) for v in param.values):
            return None
        return f"values: {', '.join(json.dumps(v) for v in param.values)}"
    dist = param.distribution or ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{dist} draws numbers"
    if dist == "int_uniform" and not float(value).is_integer():
        return "int_uniform draws whole numbers"
    low, high = _bounds(param)
    if low is not None and high is not None and not low <= value <= high:
        return f"{dist} draws from {low:g} to {high:g}"
    if dist in _POSITIVE and value <= 0:
        return f"{dist} draws numbers greater than 0"
    return None


def _bounds(param: Param) -> tuple[float | None, float | None]:
    dist = param.distribution or ""
    if dist in ("beta", "q_beta"):
        return 0.0, 1.0
    if param.min is None or param.max is None:
        return None, None
    if dist in _LEGACY:
        return math.exp(param.min), math.exp(param.max)
    return param.min, param.max


def _same(a: Any, b: Any) -> bool:
    """Equal as the sweep's values (3 and 3.0 alike, as W&B's grid treats them), never True == 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)
