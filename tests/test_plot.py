"""``sweepd plot``: the figure (pure, from records) and the command writing a real picture from Redis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from support import run_record, run_sweepd
from sweepd.agent.cli.parts import figure as plot
from sweepd.queue.config import validate
from sweepd.queue.errors import UserError
from sweepd.queue.records import Claim, RunRecord
from sweepd.queue.store import Store

RAW: dict[str, Any] = {
    "method": "random",
    "program": "p.py",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
        "optimizer": {"values": ["adam", "sgd", "adamw"]},
        "layers": {"distribution": "int_uniform", "min": 1, "max": 8},
        "tag": {"value": "fixed"},  # a constant: no axis
        "model": {"parameters": {"dropout": {"min": 0.0, "max": 0.5}}},
    },
}
PNG = b"\x89PNG\r\n\x1a\n"


def record(i: int, state: str, loss: float | None, lr: float, optimizer: str, layers: int = 2) -> RunRecord:
    params = {"lr": lr, "optimizer": optimizer, "layers": layers, "tag": "fixed", "model": {"dropout": 0.1 * i}}
    return run_record(f"run{i}", state, params, None if loss is None else {"loss": loss}, index=i)


RUNS = [
    record(0, "finished", 3.0, 1e-4, "adam", 1),
    record(1, "finished", 2.0, 1e-1, "sgd", 8),
    record(2, "failed", None, 1e-2, "adamw"),  # failed before reporting
    record(3, "crashed", 2.5, 1e-3, "sgd"),
    record(4, "finished", 1.0, 1e-2, "adamw", 4),
    record(5, "running", 1.5, 1e-3, "adam"),
]


def panels(fig: Figure) -> tuple[Axes, Axes, Axes]:
    top, bottom, colorbar = fig.axes
    return top, bottom, colorbar


def labels_near(ax: Axes, x: float) -> dict[str, float]:
    """The parallel panel's tick labels beside the axis at ``x``: text -> height (0..1)."""
    return {t.get_text(): t.get_position()[1] for t in ax.texts if abs(t.get_position()[0] - x) < 0.2}


def test_the_figure_has_the_two_panels_and_a_colorbar() -> None:
    fig = plot.figure(validate(RAW), RUNS, sweep_id="abc123de", name="demo")
    top, bottom, colorbar = panels(fig)
    assert fig.get_suptitle() == "sweep abc123de (demo): random, loss (minimize), 6 runs"
    assert (top.get_xlabel(), top.get_ylabel()) == ("run (creation order)", "loss")
    assert [t.get_text() for t in bottom.get_xticklabels()] == [
        "lr",
        "optimizer",
        "layers",
        "model.dropout",
        "loss\n(minimize)",
    ]
    assert colorbar.get_ylabel() == "loss (minimize; yellow is best)"
    # (a): best so far over every run that reported the metric, in creation order.
    (step,) = [line for line in top.get_lines() if line.get_gid() == "best-so-far"]
    assert list(step.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(step.get_ydata()) == [3.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend == [
        "finished",
        "in progress",
        "failed/crashed",
        "failed, no value",
        "best so far",
        "best run",
    ]
    crashed = next(c for c in top.collections if isinstance(c, PathCollection) and c.get_label() == "failed/crashed")
    assert crashed.get_offsets().tolist() == [[4.0, 2.5]]
    # (b): a line per run that reported the metric, across every searched parameter and the metric.
    (lines,) = [c for c in bottom.collections if isinstance(c, LineCollection) and c.get_gid() == "runs"]
    segments = lines.get_segments()
    assert len(segments) == 5 and all(len(s) == 5 for s in segments)
    assert segments[-1][-1].tolist() == [4.0, 0.0]  # the best (lowest) loss drawn last, at the bottom
    assert {line.get_gid() for line in bottom.get_lines()} == {"best"}


def test_log_params_sit_on_a_log_axis_and_categories_on_even_ticks() -> None:
    fig = plot.figure(validate(RAW), RUNS, sweep_id="abc123de")
    bottom = panels(fig)[1]
    lr = labels_near(bottom, 0)
    assert lr == pytest.approx({"0.0001": 0.0, "0.001": 1 / 3, "0.01": 2 / 3, "0.1": 1.0})
    assert labels_near(bottom, 1) == pytest.approx({"adam": 0.0, "sgd": 0.5, "adamw": 1.0})  # the config's order
    layers = labels_near(bottom, 2)
    assert layers["1"] == 0.0 and layers["8"] == 1.0 and all(float(k).is_integer() for k in layers)
    loss = labels_near(bottom, 4)  # linear, labelled in real units: the ends, and round values between
    assert loss["1"] == 0.0 and loss["3"] == 1.0 and len(loss) >= 4
    assert all(pos == pytest.approx((float(text) - 1) / 2) for text, pos in loss.items())


def test_a_maximize_sweep_keeps_the_running_maximum() -> None:
    config = validate({**RAW, "metric": {"name": "loss", "goal": "maximize"}})
    top = panels(plot.figure(config, RUNS, sweep_id="abc123de"))[0]
    (step,) = [line for line in top.get_lines() if line.get_gid() == "best-so-far"]
    assert list(step.get_ydata()) == [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]


def test_nothing_to_plot_is_a_user_error() -> None:
    with pytest.raises(UserError, match="has no metric"):
        plot.figure(validate({k: v for k, v in RAW.items() if k != "metric"}), RUNS, sweep_id="s")
    with pytest.raises(UserError, match="no run of sweep s has reported 'loss' yet"):
        plot.figure(validate(RAW), [record(0, "failed", None, 1e-3, "adam")], sweep_id="s")


# the command, on a real Redis ----------------------------------------------------------------------


def make_sweep(store: Store, raw: dict[str, Any], losses: list[float | None]) -> str:
    sid = store.create_sweep(validate(raw), seed=3)
    for loss in losses:
        claim = store.create_next(sid, "agent-1", 30)
        assert isinstance(claim, Claim)
        if loss is not None:
            assert store.log_metrics(claim, [{"loss": loss * 2}, {"loss": loss}])
        assert store.complete(claim, "finished" if loss is not None else "failed", 0 if loss is not None else 1, "test")
    return sid


def test_plot_writes_a_png(tmp_path: Path, store: Store, cli_env: dict[str, str]) -> None:
    sid = make_sweep(store, RAW, [0.9, 0.5, None, 0.7, 0.2, 0.3, 0.25, None])
    out = tmp_path / "sweep.png"
    done = run_sweepd("plot", sid, "-o", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == PNG
    height, width, channels = matplotlib.image.imread(out).shape
    assert 900 <= height <= 1400 and 1100 <= width <= 2000 and channels in (3, 4)
    svg = tmp_path / "sweep.svg"
    assert run_sweepd("plot", sid, "--output", str(svg), env=cli_env).returncode == 0
    assert svg.read_text().lstrip().startswith("<?xml")


def one_line_error(done: Any, text: str) -> None:
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert len(done.stderr.splitlines()) == 1 and text in done.stderr and "Traceback" not in done.stderr


def test_plot_refuses_a_sweep_without_a_metric_or_values(tmp_path: Path, store: Store, cli_env: dict[str, str]) -> None:
    out = tmp_path / "x.png"
    no_metric = make_sweep(store, {k: v for k, v in RAW.items() if k != "metric"}, [])
    one_line_error(run_sweepd("plot", no_metric, "-o", str(out), env=cli_env), f"sweep {no_metric} has no metric")
    unreported = make_sweep(store, RAW, [None, None])
    one_line_error(run_sweepd("plot", unreported, "-o", str(out), env=cli_env), "has reported 'loss' yet")
    assert not out.exists()
    missing_dir = tmp_path / "nowhere" / "x.png"
    reported = make_sweep(store, RAW, [0.5])
    one_line_error(run_sweepd("plot", reported, "-o", str(missing_dir), env=cli_env), f"cannot write {missing_dir}")


def test_without_matplotlib_plot_says_what_to_install(tmp_path: Path, store: Store, cli_env: dict[str, str]) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), cli_env.get("PYTHONPATH")]))}
    sid = make_sweep(store, RAW, [0.5])
    one_line_error(run_sweepd("plot", sid, "-o", str(tmp_path / "x.png"), env=env), 'pip install "sweepd[plot]"')
    assert run_sweepd("runs", sid, env=env).returncode == 0  # the rest of sweepd works without it
