"""Grid search: the index-th point of the cartesian product of the parameters' value lists.

Points are addressed by index (mixed-radix digits, last parameter fastest, as ``itertools.product``)
so that a run's point is a pure function of its index: claiming the next index is all the state a
grid needs, and a grid of 10**20 points costs no more than one of ten.

Value lists follow W&B (wandb/sweeps ``src/sweeps/grid_search.py``): a constant is one value; a
categorical its values, duplicates dropped (W&B dedupes points by a hash of each value in which
``3.0`` equals ``3``); ``int_uniform`` is ``min..max`` inclusive; ``q_uniform`` is numpy's
``arange(min, max, q)``, max excluded. Probabilities and continuous distributions are refused.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from typing import Any

from ..space import Param, SweepConfig, set_path
from .distributions import plain

#: One axis of the grid: how many values, and the i-th of them (computed, never listed in full).
Axis = tuple[int, Callable[[int], Any]]


def values(param: Param) -> tuple[Any, ...]:
    """Every value a grid gives ``param``, in order; ValueError when it is not enumerable."""
    n, at = _axis(param)
    return tuple(at(i) for i in range(n))


def size(config: SweepConfig) -> int:
    """How many points the grid has (0 when a q_uniform range is empty)."""
    return math.prod(n for n, _ in map(_axis, config.params))


def point(config: SweepConfig, index: int) -> dict[str, Any]:
    """The params of the ``index``-th grid point, as a nested dict; IndexError outside [0, size)."""
    index = operator.index(index)
    axes = [_axis(p) for p in config.params]
    total = math.prod(n for n, _ in axes)
    if not 0 <= index < total:
        raise IndexError(f"grid index {index} outside [0, {total})")
    digits: list[int] = []
    rest = index
    for n, _ in reversed(axes):
        rest, digit = divmod(rest, n)
        digits.append(digit)
    params: dict[str, Any] = {}
    for param, (_, at), digit in zip(config.params, axes, reversed(digits), strict=True):
        set_path(params, param.path, plain(at(digit)))
    return params


def _axis(param: Param) -> Axis:
    if param.kind == "constant":
        return 1, lambda _i: param.value
    if param.kind == "categorical":
        if param.probabilities is not None:
            raise ValueError(f"{param.name}: a grid cannot honour probabilities (W&B refuses them too)")
        distinct = _distinct(param.values)
        return len(distinct), distinct.__getitem__
    if param.distribution == "int_uniform" and param.min is not None and param.max is not None:
        span = range(int(param.min), int(param.max) + 1)
        return len(span), span.__getitem__
    if param.distribution == "q_uniform" and param.min is not None and param.max is not None:
        return _arange(param.min, param.max, param.q)
    raise ValueError(
        f"{param.name}: a grid can enumerate constant, categorical, int_uniform and q_uniform "
        f"parameters, not {param.distribution}"
    )


def _arange(start: float, stop: float, step: float) -> Axis:
    """numpy's ``arange``, value for value: W&B builds q_uniform's grid with it.

    All-int bounds and step give ints. Otherwise numpy counts ``ceil((stop - start) / step)`` values
    and computes the i-th as ``start + i * ((start + step) - start)``; that rounding is kept so the
    values (and ``arange``'s habit of sometimes including a value a hair above ``stop``) match W&B's.
    """
    if step <= 0:
        raise ValueError("q_uniform needs q > 0")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)):
        count = max(0, -(-(int(stop) - int(start)) // int(step)))
        return count, lambda i: int(start) + i * int(step)
    count = max(0, math.ceil((stop - start) / step))
    first = float(start)
    delta = (first + step) - first
    return count, lambda i: first + i * delta


def _distinct(options: tuple[Any, ...]) -> list[Any]:
    """The values without repeats, first occurrence kept, compared the way W&B hashes them."""
    seen: set[str] = set()
    kept: list[Any] = []
    for option in options:
        key = _key(option)
        if key not in seen:
            seen.add(key)
            kept.append(option)
    return kept


def _key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # W&B's yaml_hash: 3e6 written as a float and 3000000 are one point
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
