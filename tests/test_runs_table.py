"""``sweepd runs``: the table's columns, sorting and filtering (pure), and the command on a real Redis."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import run_record, run_sweepd, sweepd_cmd
from sweepd.agent.cli.parts import table
from sweepd.queue.config import validate
from sweepd.queue.errors import UserError
from sweepd.queue.records import Claim, RunRecord
from sweepd.queue.store import Store

NESTED = {
    "method": "grid",
    "program": "p.py",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "lr": {"values": [0.1, 0.01]},
        "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}, "beta": {"value": 0.9}}},
    },
}


def record(i: int, state: str = "finished", summary: dict[str, Any] | None = None, **params: Any) -> RunRecord:
    code = 0 if state == "finished" else (1 if state == "failed" else None)
    return run_record(f"run{i}", state, params, summary, exit_code=code, index=i)


def ids(runs: list[RunRecord]) -> list[str]:
    return [r.id for r in runs]


# the pure table ------------------------------------------------------------------------------------


def test_columns_are_fixed_then_dotted_params_then_the_sweep_metric_first() -> None:
    config = validate(NESTED)
    runs = [
        record(0, summary={"acc": 0.5, "loss": 1.0, "_step": 3}, lr=0.1, opt={"name": "adam", "beta": 0.9}),
        record(1, summary={"id": 7}, lr=0.01, opt={"name": "sgd", "beta": 0.9}, extra="x"),
    ]
    cols = table.columns(config, runs)
    headers = [c.header for c in cols]
    assert headers == [
        "id",
        "state",
        "attempt",
        "exit_code",
        "lr",
        "opt.name",
        "opt.beta",
        "extra",  # a parameter the config does not have (an enqueued run's): after the config's
        "loss",  # the sweep's metric first, then the others by name, `_`-prefixed last
        "acc",
        "summary:id",  # a metric named like a fixed column keeps a unique header
        "_step",
    ]
    assert [c.title for c in cols][:4] == ["id", "state", "attempt", "exit"]
    assert table.rows(cols, runs)[0] == ["run0", "finished", 1, 0, 0.1, "adam", 0.9, None, 1.0, 0.5, None, 3]


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_sort_by_metric_is_best_first_for_the_goal_and_runs_without_it_last(goal: str) -> None:
    config = validate({**NESTED, "metric": {"name": "loss", "goal": goal}})
    runs = [
        record(0, summary={"loss": 2.0}),
        record(1, "failed"),  # never reported the metric
        record(2, summary={"loss": 1.0}),
        record(3, summary={"loss": 3.0}),
        record(4, "running", summary={"acc": 1}),
        record(5, summary={"loss": 1.0}),  # a tie keeps creation order
    ]
    cols = table.columns(config, runs)
    best_first = ["run2", "run5", "run0", "run3"] if goal == "minimize" else ["run3", "run0", "run2", "run5"]
    assert ids(table.order(config, cols, runs, "metric")) == [*best_first, "run1", "run4"]
    worst_first = ["run3", "run0", "run2", "run5"] if goal == "minimize" else ["run2", "run5", "run0", "run3"]
    assert ids(table.order(config, cols, runs, "-metric")) == [*worst_first, "run1", "run4"]
    assert ids(table.order(config, cols, runs, "metric", reverse=True)) == [*worst_first, "run1", "run4"]
    # By the metric's own name: plain ascending whatever the goal.
    assert ids(table.order(config, cols, runs, "loss")) == ["run2", "run5", "run0", "run3", "run1", "run4"]


def test_sort_by_a_param_a_fixed_column_or_creation() -> None:
    config = validate(NESTED)
    runs = [
        record(0, lr=0.1, opt={"name": "sgd"}),
        record(1, "failed", lr=0.01, opt={"name": "adam"}),
        record(2, "running", lr=0.1),
    ]
    cols = table.columns(config, runs)
    assert ids(table.order(config, cols, runs, None)) == ["run0", "run1", "run2"]
    assert ids(table.order(config, cols, runs, "-created")) == ["run2", "run1", "run0"]
    assert ids(table.order(config, cols, runs, "lr")) == ["run1", "run0", "run2"]
    assert ids(table.order(config, cols, runs, "-lr")) == ["run0", "run2", "run1"]
    assert ids(table.order(config, cols, runs, "opt.name")) == ["run1", "run0", "run2"]  # missing last
    assert ids(table.order(config, cols, runs, "state")) == ["run2", "run0", "run1"]  # the lifecycle's order
    assert ids(table.order(config, cols, runs, "exit")) == ["run0", "run1", "run2"]  # the table's title works


def test_an_unknown_sort_key_names_itself_and_the_known_keys() -> None:
    config = validate(NESTED)
    runs = [record(0, summary={"loss": 1}, lr=0.1)]
    with pytest.raises(UserError) as err:
        table.order(config, table.columns(config, runs), runs, "-acc")
    message = str(err.value)
    assert "unknown sort key 'acc'" in message and "\n" not in message
    assert "known keys: created, metric, id, state, attempt, exit_code, lr, opt.name, opt.beta, loss" in message


def test_select_keeps_creation_order() -> None:
    runs = [record(0), record(1, "failed"), record(2, "crashed"), record(3, "failed")]
    assert ids(table.select(runs, ("failed", "crashed"))) == ["run1", "run2", "run3"]
    assert ids(table.select(runs, ())) == ["run0", "run1", "run2", "run3"]


def test_text_is_aligned_with_short_floats_and_dashes() -> None:
    config = validate(NESTED)
    runs = [
        record(0, summary={"loss": 0.123456789}, lr=0.1, opt={"name": "adam", "beta": 0.9}),
        record(1, "failed", lr=0.01, opt={"name": "sgd", "beta": 0.9}),
    ]
    cols = table.columns(config, runs)
    lines = table.text(cols, table.rows(cols, runs))
    assert lines[0].split() == ["id", "state", "attempt", "exit", "lr", "opt.name", "opt.beta", "loss"]
    assert lines[1].split() == ["run0", "finished", "1", "0", "0.1", "adam", "0.9", "0.12346"]
    assert lines[2].split() == ["run1", "failed", "1", "1", "0.01", "sgd", "0.9", "-"]
    # Numbers are right-aligned, text left-aligned: the columns end (or start) at the same place.
    assert lines[1].index("0.12346") + 7 == lines[0].index("loss") + 4 == len(lines[1])
    assert lines[1].index("adam") == lines[2].index("sgd") == lines[0].index("opt.name")


def test_csv_is_exact_and_quoted() -> None:
    config = validate(NESTED)
    runs = [record(0, summary={"loss": 0.123456789, "note": "a, b"}, lr=0.1, opt={"name": "adam", "beta": 0.9})]
    cols = table.columns(config, runs)
    out = io.StringIO()
    table.write_csv(cols, table.rows(cols, runs), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows == [
        {
            "id": "run0",
            "state": "finished",
            "attempt": "1",
            "exit_code": "0",
            "lr": "0.1",
            "opt.name": "adam",
            "opt.beta": "0.9",
            "loss": "0.123456789",
            "note": "a, b",
        }
    ]


# the command, on a real Redis ----------------------------------------------------------------------

PROGRAM = """\
import json, os, sys
x = json.load(open(os.environ["SWEEPD_PARAMS_FILE"]))["x"]
if x == 5:
    sys.exit(4)  # fails before reporting anything
print(f"loss={abs(x - 3.4):.2f} acc={x / 10}", flush=True)
"""


def test_runs_on_a_sweep_a_real_agent_ran(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "s.yaml").write_text(
        "method: grid\nprogram: prog.py\nmetric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {values: [1, 2, 3, 4, 5, 6]}\n  tag: {value: 'a, b'}\n"
    )
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    agent = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none"), env=cli_env, cwd=tmp_path, capture_output=True, timeout=120
    )
    assert agent.returncode == 0, agent.stderr

    def runs(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_sweepd("runs", sid, *args, env=cli_env)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done

    by_x = {r["params"]["x"]: r for r in json.loads(runs("--json").stdout)}
    assert sorted(by_x) == [1, 2, 3, 4, 5, 6] and by_x[5]["state"] == "failed"

    # --json keeps its shape (the public contract) and follows --sort and --limit.
    best = json.loads(runs("--json", "--sort", "metric", "--limit", "4").stdout)
    assert [r["params"]["x"] for r in best] == [3, 4, 2, 1]  # loss 0.4, 0.6, 1.4, 2.4
    assert list(best[0]) == [*record(0).to_json(), "checkpoint"]  # the record, then its latest snapshot
    assert best[0]["checkpoint"] is None  # a plain checkpoint root keeps no snapshots
    assert best[0] == by_x[3]
    assert json.loads(runs("--json", "--sort-by", "metric", "--limit", "4").stdout) == best  # the alias

    # The text table: a header, then the runs best first, the one without a loss last.
    lines = runs("--sort", "metric").stdout.splitlines()
    assert lines[0].split() == ["id", "state", "attempt", "exit", "x", "tag", "loss", "acc", "_step"]
    assert [line.split()[0] for line in lines[1:]] == [by_x[x]["id"] for x in (3, 4, 2, 1, 6, 5)]
    assert lines[-1].split() == [by_x[5]["id"], "failed", "1", "4", "5", "a,", "b", "-", "-", "-"]

    # --state filters; repeatable; the columns stay the sweep's.
    failed = runs("--state", "failed").stdout.splitlines()
    assert len(failed) == 2 and failed[1].split()[:2] == [by_x[5]["id"], "failed"]
    both = json.loads(runs("--state", "failed", "--state", "finished", "--json", "--sort", "-x").stdout)
    assert [r["params"]["x"] for r in both] == [6, 5, 4, 3, 2, 1]

    # --csv: the csv module reads it back, exact values, the comma in the constant quoted.
    rows = list(csv.reader(io.StringIO(runs("--csv", "--sort", "-acc").stdout)))
    assert rows[0] == ["id", "state", "attempt", "exit_code", "x", "tag", "loss", "acc", "_step"]
    assert [row[4] for row in rows[1:]] == ["6", "4", "3", "2", "1", "5"]
    assert rows[1] == [by_x[6]["id"], "finished", "1", "0", "6", "a, b", "2.6", "0.6", "0"]
    assert rows[-1] == [by_x[5]["id"], "failed", "1", "4", "5", "a, b", "", "", ""]


def finish(store: Store, sid: str, state: str, summary: dict[str, Any] | None) -> Claim:
    claim = store.create_next(sid, "agent-1", 30)
    assert isinstance(claim, Claim)
    if summary:
        assert store.log_metrics(claim, [summary])
    assert store.complete(claim, state, 0 if state == "finished" else 1, "test")
    return claim


def test_runs_sorts_a_maximize_sweep_best_first(store: Store, cli_env: dict[str, str]) -> None:
    sid = store.create_sweep(
        validate(
            {
                "method": "grid",
                "program": "p.py",
                "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"k": {"values": [1, 2, 3, 4]}},
            }
        )
    )
    made = [
        finish(store, sid, "finished", {"acc": 0.7}),
        finish(store, sid, "failed", None),
        finish(store, sid, "finished", {"acc": 0.9}),
        finish(store, sid, "crashed", {"acc": 0.8}),
    ]
    done = run_sweepd("runs", sid, "--sort", "metric", "--csv", env=cli_env)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [row["id"] for row in rows] == [made[i].run_id for i in (2, 3, 0, 1)]
    assert [row["acc"] for row in rows] == ["0.9", "0.8", "0.7", ""]
    top = run_sweepd("runs", sid, "--sort", "metric", "-n", "1", env=cli_env).stdout.splitlines()
    assert len(top) == 2 and top[1].startswith(made[2].run_id)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sort", "nope"), "unknown sort key 'nope'; known keys: created, metric, id, state, attempt, exit_code"),
        (("--json", "--csv"), "--json and --csv cannot be used together"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    store: Store, cli_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    sid = store.create_sweep(validate(NESTED))
    finish(store, sid, "finished", {"loss": 1.0})
    done = run_sweepd("runs", sid, *args, env=cli_env)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr and "Traceback" not in done.stderr
