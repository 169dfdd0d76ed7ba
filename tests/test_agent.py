"""Agents as real processes on a real Redis: the sweep runs every point exactly once and records it."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import pytest
import redis

from support import Sweeps, run_sweepd

PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    from sweepd.agent import run
    out = os.environ["OUT_DIR"]
    record = {"run_id": run.run_id, "attempt": run.attempt, "params": run.params, "argv": sys.argv[1:],
              "env": {k: v for k, v in os.environ.items() if k.startswith(("SWEEPD_", "WANDB_"))}}
    with open(os.path.join(out, f"{run.run_id}.{run.attempt}.json"), "w") as fh:
        json.dump(record, fh)
    run.log({"score": sum(v for v in run.params.values() if isinstance(v, (int, float)))})
    print("hello from", run.run_id, flush=True)
    code = int(run.params.get("exit", 0))
    if code < 0:
        os.kill(os.getpid(), -code)
    sys.exit(code)
    """
)


@pytest.fixture
def sweeps(tmp_path: Path, cli_env: dict[str, str]) -> Sweeps:
    """Sweeps of PROGRAM, which writes down in ``out/`` (its OUT_DIR) what each run was given."""
    (tmp_path / "out").mkdir()
    return Sweeps(tmp_path, {**cli_env, "OUT_DIR": str(tmp_path / "out")}, PROGRAM)


def test_three_agents_run_each_grid_point_exactly_once(tmp_path: Path, sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: grid
        metric: {name: score, goal: maximize}
        parameters:
          a: {values: [1, 2, 3, 4]}
          b: {values: [10, 20, 30]}
          c: {values: [100, 200]}
        """)
    assert sweeps.agents(3, sid) == [0, 0, 0]
    runs = sweeps.runs(sid)
    points = [(r["params"]["a"], r["params"]["b"], r["params"]["c"]) for r in runs]
    assert len(points) == 24 and len(set(points)) == 24
    assert sorted(points) == sorted(itertools.product([1, 2, 3, 4], [10, 20, 30], [100, 200]))
    assert {r["state"] for r in runs} == {"finished"} and {r["attempt"] for r in runs} == {1}
    assert len(list((tmp_path / "out").iterdir())) == 24  # 24 executions, no more
    status = json.loads(run_sweepd("status", sid, "--json", env=sweeps.env).stdout)
    assert status["complete"] and status["counts"]["finished"] == 24 and status["queue_depth"] == 0
    assert status["best_run"]["value"] == 234 and status["best_run"]["params"] == {"a": 4, "b": 30, "c": 200}


def test_run_cap_holds_with_four_agents_racing(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: random
        run_cap: 9
        parameters:
          x: {min: 0.0, max: 1.0}
        """)
    assert sweeps.agents(4, sid) == [0, 0, 0, 0]
    runs = sweeps.runs(sid)
    assert len(runs) == 9 and {r["state"] for r in runs} == {"finished"}


def test_the_training_process_gets_its_run_and_no_redis_url(tmp_path: Path, sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: grid
        parameters:
          lr: {value: 0.5}
          name: {value: "two words"}
        """)
    assert sweeps.agents(1, sid) == [0]
    (record_file,) = (tmp_path / "out").iterdir()
    record = json.loads(record_file.read_text())
    env = record["env"]
    assert env["SWEEPD_SWEEP_ID"] == sid and env["SWEEPD_RUN_ID"] == record["run_id"] == env["WANDB_RUN_ID"]
    assert env["SWEEPD_ATTEMPT"] == "1" and env["WANDB_RESUME"] == "allow"
    assert "SWEEPD_REDIS_URL" not in env
    assert record["params"] == {"lr": 0.5, "name": "two words"}
    assert record["argv"] == ["--lr=0.5", "--name=two words"]  # W&B's default ${args}, no shell
    logs = run_sweepd("logs", record["run_id"], env=sweeps.env)
    assert f"hello from {record['run_id']}" in logs.stdout.splitlines()


def test_exit_status_decides_the_outcome(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: grid
        parameters:
          exit: {values: [0, 3, -9]}
        """)
    assert sweeps.agents(1, sid) == [0]
    outcome = {r["params"]["exit"]: (r["state"], r["exit_code"]) for r in sweeps.runs(sid)}
    assert outcome == {0: ("finished", 0), 3: ("failed", 3), -9: ("crashed", -9)}


def test_max_retries_requeues_a_failed_run_with_the_same_id(tmp_path: Path, sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: grid
        parameters:
          exit: {value: 4}
        """)
    assert sweeps.agents(1, sid, "--max-retries", "2") == [0]
    (run,) = sweeps.runs(sid)
    assert (run["state"], run["attempt"], run["exit_code"]) == ("failed", 3, 4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{run['id']}.{i}.json" for i in (1, 2, 3)]


def test_an_agent_whose_runs_fail_fast_stops(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: random
        parameters:
          exit: {value: 1}
        """)
    assert sweeps.agents(1, sid, "--fast-failures", "3") == [1]
    assert [r["state"] for r in sweeps.runs(sid)] == ["failed"] * 3


def test_count_stops_the_agent_after_n_runs(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: random
        parameters:
          x: {values: [1, 2, 3]}
        """)
    assert sweeps.agents(1, sid, "--count", "2") == [0]
    assert len(sweeps.runs(sid, "--state", "finished")) == 2


def test_an_invalid_config_is_refused_and_stores_nothing(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters:\n  lr: {min: 0.1, max: 0.01}\n  opt: {valuse: [a, b]}\n")
    before = r.dbsize()
    done = run_sweepd("sweep", "create", str(bad), env=cli_env)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) >= 2 and all(line.startswith("sweepd: error: ") for line in lines)
    assert any("parameters.lr" in line for line in lines) and any("valuse" in line for line in lines)
    assert "Traceback" not in done.stderr
    assert r.dbsize() == before
