"""Parameter importance, as W&B's panel shows it: for each parameter, its linear correlation with the
metric and a random forest's importance (the forest predicts the metric from the parameters). Pure.

As W&B does, a categorical parameter becomes one column per value (``optimizer=adam``: 1 or 0), so
both figures read per value; numbers stay numbers. Runs without a value of the metric, or without the
parameter, take no part. The forest is scikit-learn's (the ``bayes`` extra), small and seeded: the
same runs give the same figures, and a 10,000-run sweep is fit on a seeded sample of 2,000.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

#: Above this many runs the forest is fit on a seeded sample: importance, not precision, is wanted.
SAMPLE = 2000
TREES = 50


def warm() -> None:
    """Import scikit-learn's forest ahead of the first request (it takes about a second)."""
    with contextlib.suppress(ImportError):
        import sklearn.ensemble  # type: ignore[import-untyped]  # noqa: F401


def encode(names: list[str], points: list[list[Any]]) -> tuple[list[str], list[list[float]]]:
    """Columns of numbers from parameter values: a numeric parameter as one column (a missing value
    as NaN), any other as one 0/1 column per value seen (``name=value``), sorted by value's text."""
    out_names: list[str] = []
    cols: list[list[float]] = []
    for j, name in enumerate(names):
        values = [p[j] for p in points]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            out_names.append(name)
            cols.append([float(v) if v is not None else math.nan for v in values])
            continue
        for level in sorted({str(v) for v in present}):
            out_names.append(f"{name}={level}")
            cols.append([(1.0 if str(v) == level else 0.0) if v is not None else math.nan for v in values])
    return out_names, [list(row) for row in zip(*cols, strict=True)] if cols else [[] for _ in points]


def correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's correlation over the pairs where x is a number; None when either side is constant."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(x)]
    if len(pairs) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    if sxx <= 0 or syy <= 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def forest(matrix: list[list[float]], ys: list[float], seed: int = 0) -> list[float] | None:
    """The random forest's importance of each column (they sum to 1); None without scikit-learn
    or with too few runs to fit."""
    if len(ys) < 3 or not matrix or not matrix[0]:
        return None
    try:
        import numpy as np
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        return None
    x = np.array(matrix, dtype=float)
    y = np.array(ys, dtype=float)
    if len(y) > SAMPLE:
        pick = np.random.default_rng(seed).choice(len(y), SAMPLE, replace=False)
        x, y = x[pick], y[pick]
    with warnings.catch_warnings():  # a column missing in every sampled run: its mean is NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nan_to_num(np.nanmean(x, axis=0))
    x = np.where(np.isnan(x), means[None, :], x)
    model = RandomForestRegressor(n_estimators=TREES, random_state=seed, n_jobs=1, min_samples_leaf=2)
    model.fit(x, y)
    return [float(v) for v in model.feature_importances_]


def importance(names: list[str], points: list[list[Any]], values: list[float | None]) -> dict[str, Any]:
    """``{"runs": n, "rows": [{"param", "importance", "correlation"}]}``, most important first,
    from each run's parameter values (``names``' order) and metric value (None: left out)."""
    keep = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    ys = [float(values[i]) for i in keep]  # type: ignore[arg-type]  # None was left out just above
    columns, matrix = encode(names, [points[i] for i in keep])
    weights = forest(matrix, ys)
    scored = [
        (name, None if weights is None else weights[j], correlation([row[j] for row in matrix], ys))
        for j, name in enumerate(columns)
    ]
    scored.sort(key=lambda s: (-(s[1] or 0.0), -abs(s[2] or 0.0), s[0]))
    rows = [{"param": name, "importance": w, "correlation": c} for name, w, c in scored]
    return {"runs": len(ys), "rows": rows}
