"""The dashboard's pure parts: what the page is sent (agent/ui/data.py), parameter importance
(agent/ui/importance.py) and the rule on which addresses need a token (agent/cli/ui.py)."""

from __future__ import annotations

import math
import random

import pytest

from support import run_record
from sweepd.agent.cli.ui import check_exposure, is_loopback
from sweepd.agent.ui import data, hosts, importance
from sweepd.queue.config import validate
from sweepd.queue.errors import UserError
from ui_support import CONFIG

SWEEP = validate(CONFIG)


def test_host_is_the_live_agents_else_the_agent_ids_host_part() -> None:
    agents = {"a1": {"host": "gpu-node-7"}}
    assert data.host_of("a1", agents) == "gpu-node-7"
    assert data.host_of("node3-4242-beef", {}) == "node3"
    assert data.host_of("my-host-name-17-ab12", {}) == "my-host-name"
    assert data.host_of("manual-script", {}) == "manual-script"
    assert data.host_of(None, agents) is None


def test_snapshot_rows_follow_the_fields_and_the_parameter_columns() -> None:
    runs = [
        run_record(
            "r1", "finished", {"lr": 0.01, "dropout": 0.1, "optimizer": "adam"}, {"loss": 0.5}, agent_id="h-1-a"
        ),
        run_record("r2", "running", {"lr": 0.001, "dropout": 0.2, "optimizer": "sgd", "extra": [1, 2]}, {}),
        run_record("r3", "failed", {"lr": 0.1, "dropout": 0.3, "optimizer": "sgd"}, {"loss": float("nan")}),
        run_record("r4", "finished", {"lr": 0.02, "dropout": 0.0, "optimizer": "adam"}, {"loss": 0.7}),
    ]
    status = {"id": "s", "agents": [{"id": "h-1-a", "host": "box"}], "counts": {"finished": 2}, "ignored": 1}
    snap = data.sweep_snapshot(status, SWEEP, runs)
    assert snap["params"] == ["lr", "dropout", "optimizer", "extra"]  # config order, then the rest
    assert snap["fields"] == list(data.RUN_FIELDS)
    assert snap["log_params"] == ["lr"]  # log_uniform_values: drawn on a log axis
    assert "ignored" not in snap["status"] and snap["status"]["counts"] == {"finished": 2}
    f = {name: i for i, name in enumerate(snap["fields"])}
    rows = snap["runs"]
    assert [r[f["id"]] for r in rows] == ["r1", "r2", "r3", "r4"]  # creation order
    assert rows[0][f["host"]] == "box" and rows[0][f["value"]] == 0.5
    assert rows[1][f["params"]] == [0.001, 0.2, "sgd", "[1, 2]"]  # a list shown as its text
    assert rows[0][f["params"]][3] is None  # a run without the parameter
    assert rows[2][f["value"]] is None  # NaN is no value (and no JSON)
    assert snap["best_so_far"] == [0.5, 0.5, 0.5, 0.5]


def test_best_so_far_follows_the_goal() -> None:
    values = [3.0, None, 1.0, 2.0, 0.5]
    assert data.best_so_far(values, "minimize") == [3.0, 3.0, 1.0, 1.0, 0.5]
    assert data.best_so_far(values, "maximize") == [3.0, 3.0, 3.0, 3.0, 3.0]
    assert data.best_so_far([None, 2.0], "minimize") == [None, 2.0]


def test_history_keeps_numbers_names_the_metrics_and_blanks_non_finite_values() -> None:
    rows = [{"_step": 0, "loss": 1.0, "acc": 0.1, "note": "x"}, {"_step": 1, "loss": float("inf"), "_runtime": 2}]
    out = data.history_json("r1", rows)
    assert out["metrics"] == ["acc", "loss", "_runtime"]
    assert out["rows"] == [{"_step": 0, "loss": 1.0, "acc": 0.1}, {"_step": 1, "loss": None, "_runtime": 2}]


def test_the_parameter_that_drives_the_metric_is_the_most_important() -> None:
    rng = random.Random(1)
    names = ["lr", "noise", "optimizer"]
    points, values = [], []
    for _ in range(300):
        lr, noise, opt = rng.uniform(0, 1), rng.uniform(0, 1), rng.choice(["adam", "sgd"])
        points.append([lr, noise, opt])
        values.append(3 * lr + 0.01 * noise + rng.gauss(0, 0.05))
    out = importance.importance(names, points, values)
    assert out["runs"] == 300
    by = {row["param"]: row for row in out["rows"]}
    assert out["rows"][0]["param"] == "lr"
    assert set(by) == {"lr", "noise", "optimizer=adam", "optimizer=sgd"}  # one column per value, as W&B
    assert by["lr"]["importance"] > 0.8
    assert math.isclose(sum(row["importance"] for row in out["rows"]), 1.0, rel_tol=1e-6)
    assert by["lr"]["correlation"] > 0.95
    assert abs(by["noise"]["correlation"]) < 0.2
    assert math.isclose(by["optimizer=adam"]["correlation"], -by["optimizer=sgd"]["correlation"])


def test_a_falling_metric_correlates_negatively_and_runs_without_it_take_no_part() -> None:
    points = [[float(i)] for i in range(10)] + [[100.0]]
    values: list[float | None] = [10.0 - i for i in range(10)] + [None]
    out = importance.importance(["x"], points, values)
    assert out["runs"] == 10
    assert out["rows"][0]["correlation"] == pytest.approx(-1.0)


def test_too_few_runs_give_no_forest_and_a_constant_no_correlation() -> None:
    out = importance.importance(["x", "c"], [[1.0, 5.0], [2.0, 5.0]], [1.0, 2.0])
    assert all(row["importance"] is None for row in out["rows"])
    by = {row["param"]: row for row in out["rows"]}
    assert by["c"]["correlation"] is None and by["x"]["correlation"] == pytest.approx(1.0)
    assert importance.importance([], [], []) == {"runs": 0, "rows": []}


def test_missing_values_in_a_numeric_parameter_are_filled_for_the_forest() -> None:
    rng = random.Random(2)
    points = [[rng.random() if i % 5 else None, rng.random()] for i in range(60)]
    values: list[float | None] = [p[1] for p in points]
    out = importance.importance(["sometimes", "drives"], points, values)
    assert out["rows"][0]["param"] == "drives"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org"])
def test_any_other_address_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UserError, match="--token"):
        check_exposure(host, None)
    check_exposure(host, "s3cret-long-en0ugh")


@pytest.mark.parametrize(
    ("token", "why"),
    [("a", "has 1 characters"), (" " * 20, "is blank"), ("x" * 15, "has 15 characters: give 16 or more")],
)
def test_a_token_off_loopback_has_real_strength(token: str, why: str) -> None:
    with pytest.raises(UserError, match=f"--token {why}.*reachable from other machines"):
        check_exposure("0.0.0.0", token)
    check_exposure("127.0.0.1", token)  # only this machine: any token guards it
    check_exposure("0.0.0.0", "x" * hosts.MIN_TOKEN)


@pytest.mark.parametrize("header", ["127.0.0.1", "127.0.0.1:8765", "localhost", "LOCALHOST:80", "[::1]", "[::1]:8765"])
def test_loopback_host_names_are_answered_without_a_token(header: str) -> None:
    assert hosts.loopback_host(header)


@pytest.mark.parametrize(
    "header", ["evil.example", "evil.example:8765", "localhost.evil.example", "127.0.0.1.nip.io:8765", "", "[::1"]
)
def test_any_other_host_name_is_not(header: str) -> None:
    assert not hosts.loopback_host(header)
