"""Agents as real processes on a real Redis: the sweep runs every point exactly once and records it."""

from __future__ import annotations

import itertools
import json
import subprocess
import textwrap
from pathlib import Path

import redis

from support import run_sweepd, sweepd_cmd

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


def write_sweep(tmp_path: Path, body: str) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "out").mkdir(exist_ok=True)
    path = tmp_path / "sweep.yaml"
    path.write_text(f"program: prog.py\n{textwrap.dedent(body)}")
    return path


def create(tmp_path: Path, env: dict[str, str], body: str) -> str:
    done = run_sweepd("sweep", "create", str(write_sweep(tmp_path, body)), "--quiet", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def runs_json(sid: str, env: dict[str, str], *extra: str) -> list[dict[str, object]]:
    done = run_sweepd("runs", sid, "--json", *extra, env=env)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def agents(n: int, sid: str, env: dict[str, str], cwd: Path, *extra: str) -> list[int]:
    env = {**env, "OUT_DIR": str(cwd / "out")}
    procs = [
        subprocess.Popen(
            sweepd_cmd("agent", sid, *extra),
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    return [p.wait(timeout=180) for p in procs]


def test_three_agents_run_each_grid_point_exactly_once(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: grid
        metric: {name: score, goal: maximize}
        parameters:
          a: {values: [1, 2, 3, 4]}
          b: {values: [10, 20, 30]}
          c: {values: [100, 200]}
        """,
    )
    assert agents(3, sid, cli_env, tmp_path) == [0, 0, 0]
    runs = runs_json(sid, cli_env)
    points = [(r["params"]["a"], r["params"]["b"], r["params"]["c"]) for r in runs]  # type: ignore[index]
    assert len(points) == 24 and len(set(points)) == 24
    assert sorted(points) == sorted(itertools.product([1, 2, 3, 4], [10, 20, 30], [100, 200]))
    assert {r["state"] for r in runs} == {"finished"} and {r["attempt"] for r in runs} == {1}
    assert len(list((tmp_path / "out").iterdir())) == 24  # 24 executions, no more
    status = json.loads(run_sweepd("status", sid, "--json", env=cli_env).stdout)
    assert status["complete"] and status["counts"]["finished"] == 24 and status["queue_depth"] == 0
    assert status["best_run"]["value"] == 234 and status["best_run"]["params"] == {"a": 4, "b": 30, "c": 200}


def test_run_cap_holds_with_four_agents_racing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: random
        run_cap: 9
        parameters:
          x: {min: 0.0, max: 1.0}
        """,
    )
    assert agents(4, sid, cli_env, tmp_path) == [0, 0, 0, 0]
    runs = runs_json(sid, cli_env)
    assert len(runs) == 9 and {r["state"] for r in runs} == {"finished"}


def test_the_training_process_gets_its_run_and_no_redis_url(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: grid
        parameters:
          lr: {value: 0.5}
          name: {value: "two words"}
        """,
    )
    assert agents(1, sid, cli_env, tmp_path) == [0]
    (record_file,) = (tmp_path / "out").iterdir()
    record = json.loads(record_file.read_text())
    env = record["env"]
    assert env["SWEEPD_SWEEP_ID"] == sid and env["SWEEPD_RUN_ID"] == record["run_id"] == env["WANDB_RUN_ID"]
    assert env["SWEEPD_ATTEMPT"] == "1" and env["WANDB_RESUME"] == "allow"
    assert "SWEEPD_REDIS_URL" not in env
    assert record["params"] == {"lr": 0.5, "name": "two words"}
    assert record["argv"] == ["--lr=0.5", "--name=two words"]  # W&B's default ${args}, no shell
    logs = run_sweepd("logs", record["run_id"], env=cli_env)
    assert f"hello from {record['run_id']}" in logs.stdout.splitlines()


def test_exit_status_decides_the_outcome(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: grid
        parameters:
          exit: {values: [0, 3, -9]}
        """,
    )
    assert agents(1, sid, cli_env, tmp_path) == [0]
    outcome = {r["params"]["exit"]: (r["state"], r["exit_code"]) for r in runs_json(sid, cli_env)}  # type: ignore[index]
    assert outcome == {0: ("finished", 0), 3: ("failed", 3), -9: ("crashed", -9)}


def test_max_retries_requeues_a_failed_run_with_the_same_id(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: grid
        parameters:
          exit: {value: 4}
        """,
    )
    assert agents(1, sid, cli_env, tmp_path, "--max-retries", "2") == [0]
    (run,) = runs_json(sid, cli_env)
    assert (run["state"], run["attempt"], run["exit_code"]) == ("failed", 3, 4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{run['id']}.{i}.json" for i in (1, 2, 3)]


def test_an_agent_whose_runs_fail_fast_stops(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: random
        parameters:
          exit: {value: 1}
        """,
    )
    assert agents(1, sid, cli_env, tmp_path, "--fast-failures", "3") == [1]
    assert [r["state"] for r in runs_json(sid, cli_env)] == ["failed"] * 3


def test_count_stops_the_agent_after_n_runs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = create(
        tmp_path,
        cli_env,
        """
        method: random
        parameters:
          x: {values: [1, 2, 3]}
        """,
    )
    assert agents(1, sid, cli_env, tmp_path, "--count", "2") == [0]
    assert len(runs_json(sid, cli_env, "--state", "finished")) == 2


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
