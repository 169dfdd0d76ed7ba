"""The picture behind ``sweepd plot``: the metric over runs, and parameters against the metric.

Pure: from run records and the config to a matplotlib ``Figure`` drawn on the Agg canvas (no display,
no pyplot state), so it is tested without Redis and works on a headless machine. matplotlib is the
``plot`` extra: only this module imports it, and only ``sweepd plot`` imports this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweepd.queue import bounds
from sweepd.queue.errors import UserError
from sweepd.queue.records import RunRecord
from sweepd.queue.space import Metric, Param, SweepConfig
from sweepd.queue.summary import metric_value

from .table import flatten

Scale = Literal["categorical", "linear", "log"]

#: How each state is drawn in the metric-over-runs panel: (legend label, marker, colour, filled).
STYLES: dict[str, tuple[str, str, str, bool]] = {
    "finished": ("finished", "o", "tab:blue", True),
    "queued": ("in progress", "o", "tab:blue", False),
    "running": ("in progress", "o", "tab:blue", False),
    "preempting": ("in progress", "o", "tab:blue", False),
    "stopped": ("stopped", "v", "tab:orange", True),
    "failed": ("failed/crashed", "x", "tab:red", True),
    "crashed": ("failed/crashed", "x", "tab:red", True),
}


@dataclass(frozen=True)
class Axis:
    """One vertical axis of the parallel coordinates: where a value sits on it (0 bottom, 1 top) and
    its tick labels in real units. ``lo``/``hi`` are the range, in log10 units on a log axis."""

    label: str
    scale: Scale
    lo: float = 0.0
    hi: float = 1.0
    categories: tuple[str, ...] = ()
    integer: bool = False

    def position(self, value: Any) -> float | None:
        if self.scale == "categorical":
            key = _key(value)
            if key not in self.categories:
                return None
            return self.categories.index(key) / (len(self.categories) - 1) if len(self.categories) > 1 else 0.5
        x = _finite(value)
        if x is None or (self.scale == "log" and x <= 0):
            return None
        x = math.log10(x) if self.scale == "log" else x
        return 0.5 if self.hi == self.lo else (x - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[tuple[float, str]]:
        if self.scale == "categorical":
            return [(self.position_of_index(i), _label(c)) for i, c in enumerate(self.categories)]
        if self.hi == self.lo:
            real = 10**self.lo if self.scale == "log" else self.lo
            return [(0.5, f"{real:.4g}")]
        lo, hi = (10**self.lo, 10**self.hi) if self.scale == "log" else (self.lo, self.hi)
        if self.scale == "log":
            values = _log_ticks(lo, hi)
        else:
            values = [float(v) for v in MaxNLocator(nbins=5, integer=self.integer).tick_values(lo, hi)]
        # Round values inside, and the ends always (a reader needs the range), unless a round one is there.
        inside = [(p, v) for v in values if (p := self.position(v)) is not None and -1e-9 <= p <= 1 + 1e-9]
        inside = [(p, v) for p, v in inside if min(p, 1 - p) < 1e-9 or min(p, 1 - p) >= 0.07]
        for end, v in ((0.0, lo), (1.0, hi)):
            if not any(abs(p - end) < 1e-9 for p, _ in inside):
                inside.append((end, v))
        return sorted((min(max(p, 0.0), 1.0), f"{v:.4g}") for p, v in inside)

    def position_of_index(self, i: int) -> float:
        return i / (len(self.categories) - 1) if len(self.categories) > 1 else 0.5


def figure(config: SweepConfig, runs: list[RunRecord], *, sweep_id: str, name: str = "") -> Figure:
    """Two panels: (a) the sweep's metric per run in creation order with the best-so-far line for its
    goal; (b) parallel coordinates, one axis per searched parameter plus the metric, a line per run
    coloured by its metric. A sweep without a metric, or whose runs never reported it, is a UserError."""
    metric = config.metric
    if metric is None:
        raise UserError(f"sweep {sweep_id} has no metric: nothing to plot (add metric: {{name: ..., goal: ...}})")
    values = [_finite(metric_value(config, r)) for r in runs]
    if all(v is None for v in values):
        raise UserError(f"no run of sweep {sweep_id} has reported {metric.name!r} yet: nothing to plot")
    reported = [v for v in values if v is not None]
    log_metric = min(reported) > 0 and max(reported) / min(reported) >= 100

    searched = [p for p in config.params if p.kind != "constant"]
    width = max(11.0, 1.5 * (len(searched) + 1) + 3.5)
    fig = Figure(figsize=(width, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.25]})
    title = f"sweep {sweep_id}" + (f" ({name})" if name else "")
    fig.suptitle(f"{title}: {config.method}, {metric.name} ({metric.goal}), {len(runs)} runs", fontsize=13)
    _metric_panel(top, metric, runs, values, log_metric)
    _parallel_panel(fig, bottom, metric, searched, runs, values, log_metric)
    return fig


def _metric_panel(ax: Axes, metric: Metric, runs: list[RunRecord], values: list[float | None], log: bool) -> None:
    groups: dict[tuple[str, str, str, bool], list[tuple[int, float]]] = {}
    for i, (run, v) in enumerate(zip(runs, values, strict=True)):
        if v is not None:
            groups.setdefault(STYLES.get(run.state, STYLES["finished"]), []).append((i + 1, v))
    for style in dict.fromkeys(STYLES.values()):  # a fixed legend order
        if style in groups:
            label, marker, colour, filled = style
            xs, ys = zip(*groups[style], strict=True)
            if marker == "x":  # a marker without a face: it takes one colour
                ax.scatter(xs, ys, marker=marker, s=30, color=colour, label=label, zorder=3)
            else:
                face = colour if filled else "none"
                ax.scatter(xs, ys, marker=marker, s=28, facecolors=face, edgecolors=colour, label=label, zorder=3)
    lost = [i + 1 for i, (run, v) in enumerate(zip(runs, values, strict=True)) if v is None and run.state in _BROKE]
    if lost:  # failed before reporting: a mark on the x axis itself (no value), so the picture shows they were tried
        ax.scatter(
            lost,
            [0.0] * len(lost),
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            marker="x",
            s=30,
            color="tab:red",
            alpha=0.6,
            label="failed, no value",
            zorder=4,
        )
    best_x: list[int] = []
    best_y: list[float] = []
    for i, v in enumerate(values):
        if v is not None and (not best_y or metric.better(v, best_y[-1])):
            best_x.append(i + 1)
            best_y.append(v)
        elif best_y:
            best_x.append(i + 1)
            best_y.append(best_y[-1])
    best = best_y[-1]
    ax.step(
        best_x,
        best_y,
        where="post",
        color="black",
        lw=1.5,
        label="best so far",
        zorder=2,
        gid="best-so-far",
    )
    at = next(i for i, v in enumerate(values) if v == best)
    ax.scatter([at + 1], [best], marker="*", s=220, color="gold", edgecolors="black", zorder=4, label="best run")
    ax.annotate(  # beside the star, on the side away from the other runs
        f"{runs[at].id}: {metric.name}={best:.5g}",
        (at + 1, best),
        xytext=(10, -16 if metric.goal == "maximize" else 8),
        textcoords="offset points",
        fontsize=8.5,
    )
    ax.margins(y=0.12)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("run (creation order)")
    ax.set_ylabel(metric.name)
    ax.set_xlim(0.5, len(runs) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    # One row between the title and the panel: never over a point, and both panels keep the same width.
    entries = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=entries, fontsize=8.5, frameon=False, borderaxespad=0.1)
    ax.set_title(f"(a) {metric.name} per run, best so far ({metric.goal})", fontsize=11, loc="left", pad=24)


def _parallel_panel(
    fig: Figure,
    ax: Axes,
    metric: Metric,
    params: list[Param],
    runs: list[RunRecord],
    values: list[float | None],
    log: bool,
) -> None:
    plotted = [(r, v) for r, v in zip(runs, values, strict=True) if v is not None]
    flat = [flatten(r.params) for r, _ in plotted]
    axes = [_param_axis(p, [f.get(p.name) for f in flat]) for p in params]
    reported = [v for _, v in plotted]
    axes.append(_numeric_axis(f"{metric.name}\n({metric.goal})", reported, log=log))
    lines: list[tuple[float, list[tuple[float, float]]]] = []
    for f, (_, v) in zip(flat, plotted, strict=True):
        positions = [a.position(f.get(p.name)) for a, p in zip(axes[:-1], params, strict=True)]
        positions.append(axes[-1].position(v))
        if all(y is not None for y in positions):
            lines.append((v, [(float(i), float(y)) for i, y in enumerate(positions) if y is not None]))
    # Worst first, so the best runs are drawn on top; yellow is always the best end of the colour map.
    lines.sort(key=lambda vl: vl[0], reverse=metric.goal == "minimize")
    norm = LogNorm(min(reported), max(reported)) if log else Normalize(min(reported), max(reported))
    cmap = "viridis_r" if metric.goal == "minimize" else "viridis"
    collection = LineCollection(
        [s for _, s in lines], cmap=cmap, norm=norm, linewidths=1.3, alpha=0.85 if len(lines) <= 50 else 0.6
    )
    collection.set_array([v for v, _ in lines])
    collection.set_gid("runs")
    ax.add_collection(collection)
    if lines:
        xs, ys = zip(*lines[-1][1], strict=True)
        ax.plot(xs, ys, color="black", lw=3.2, zorder=2.9, gid="best")  # an outline under the best run
        ax.plot(xs, ys, color=collection.cmap(norm(lines[-1][0])), lw=2.0, zorder=3, gid="best")
    ticks: list[list[tuple[float, float]]] = []
    for i, a in enumerate(axes):
        for pos, label in a.ticks():
            ticks.append([(i - 0.03, pos), (i, pos)])
            ax.text(i - 0.045, pos, label, ha="right", va="center", fontsize=8, zorder=5, bbox=_LABEL_BOX)
    ax.vlines(range(len(axes)), 0, 1, colors="black", lw=1.2, zorder=4)
    ax.add_collection(LineCollection(ticks, colors="black", linewidths=1.0, zorder=4))
    ax.set_xlim(-0.45, len(axes) - 0.75)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xticks(range(len(axes)), [a.label for a in axes], fontsize=9, rotation=20 if len(axes) > 7 else 0)
    ax.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", length=0)
    fig.colorbar(collection, ax=ax, label=f"{metric.name} ({metric.goal}; yellow is best)", pad=0.01)
    n = len(lines)
    ax.set_title(f"(b) parameters against {metric.name}: {n} run{'s' * (n != 1)}", fontsize=11, loc="left")


_BROKE = ("failed", "crashed")
_LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _param_axis(param: Param, values: list[Any]) -> Axis:
    """A categorical parameter: its values evenly spaced (numbers ascending, else the config's order),
    then any other value a run has. A distribution: numeric, on a log axis for the log distributions."""
    if param.kind == "categorical":
        cats = list(param.values)
        if all(_finite(c) is not None for c in cats):
            cats.sort(key=float)
        keys = [_key(c) for c in cats]
        keys += sorted({_key(v) for v in values if v is not None} - set(keys))
        return Axis(param.name, "categorical", categories=tuple(dict.fromkeys(keys)))
    dist = param.distribution or ""
    integer = dist == "int_uniform" or (dist.startswith("q_") and float(param.q).is_integer())
    numbers = [v for v in (_finite(x) for x in values) if v is not None]
    return _numeric_axis(param.name, numbers, log="log" in dist, integer=integer)


def _numeric_axis(label: str, values: list[float], *, log: bool, integer: bool = False) -> Axis:
    log = log and bool(values) and min(values) > 0
    scaled = [math.log10(v) if log else v for v in values] or [0.0]
    return Axis(label, "log" if log else "linear", min(scaled), max(scaled), integer=integer)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Round values (1, 2, 5 times a power of ten) inside [lo, hi]; only powers of ten when that is
    too many; the ends when fewer than two fit."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    inside = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if lo * 0.999 <= m * 10.0**e <= hi * 1.001]
    if len(inside) > 6:
        inside = [v for v in inside if math.isclose(10 ** round(math.log10(v)), v)]
    if len(inside) > 6:
        inside = inside[:: math.ceil(len(inside) / 6)]
    return inside if len(inside) >= 2 else [lo, hi]


def _finite(value: Any) -> float | None:
    return bounds.finite(value)


def _key(value: Any) -> str:
    """A category as text: strings as they are, anything else (numbers, lists) as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _label(key: str, limit: int = 14) -> str:
    return key if len(key) <= limit else key[: limit - 1] + "…"
