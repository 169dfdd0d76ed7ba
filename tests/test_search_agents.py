"""The search algorithms through real agents: bayes never hands two agents the same point, a
reached metric.target stops new runs, and ``suggest --dry-run`` creates nothing."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import redis

from support import Sweeps, run_sweepd, sweepd_cmd
from sweepd.queue import keys

pytest.importorskip("sklearn", reason="bayes needs the bayes extra")

OBJECTIVE = textwrap.dedent(
    """
    from sweepd.agent import run
    x, k = run.params["x"], run.params["k"]
    run.log({"loss": (x - 0.3) ** 2 + 0.1 * k})
    """
)


@pytest.fixture
def sweeps(tmp_path: Path, cli_env: dict[str, str]) -> Sweeps:
    """Sweeps of OBJECTIVE, whose loss is least at x = 0.3, k = 0."""
    return Sweeps(tmp_path, cli_env, OBJECTIVE)


def test_bayes_agents_never_duplicate_a_point(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: bayes
        run_cap: 12
        metric: {name: loss, goal: minimize}
        parameters:
          x: {values: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}
          k: {values: [0, 1]}
        """)
    assert sweeps.agents(3, sid, "--notices", "none") == [0, 0, 0]
    runs = sweeps.runs(sid)
    points = [(r["params"]["x"], r["params"]["k"]) for r in runs]
    assert len(points) == 12 and len(set(points)) == 12  # the whole 12-point space, each once
    assert {r["state"] for r in runs} == {"finished"}


def test_a_reached_target_stops_new_runs(sweeps: Sweeps, r: redis.Redis) -> None:
    sid = sweeps.create("""
        method: grid
        metric: {name: loss, goal: minimize, target: 0.05}
        parameters:
          x: {values: [0.3, 0.0, 0.1, 0.2, 0.4, 0.5]}
          k: {value: 0}
        """)
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    runs = sweeps.runs(sid)
    assert len(runs) == 1 and runs[0]["summary"]["loss"] == 0.0  # the first run reached it: no second
    assert r.hget(keys.sweep(sid), "target_reached") == b"1"


def test_suggest_dry_run_prints_points_and_creates_nothing(sweeps: Sweeps) -> None:
    sid = sweeps.create("""
        method: grid
        parameters:
          x: {values: [0.1, 0.2]}
          k: {values: [0, 1]}
        """)
    done = run_sweepd("suggest", sid, "--dry-run", "-n", "5", "--json", env=sweeps.env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"x": 0.1, "k": 0}, {"x": 0.1, "k": 1}, {"x": 0.2, "k": 0}, {"x": 0.2, "k": 1}]
    assert sweeps.runs(sid) == []
    no_flag = run_sweepd("suggest", sid, env=sweeps.env)
    assert no_flag.returncode == 2


def test_hyperband_stops_the_run_its_cut_off_says_through_the_agent(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Constant curves run one after another, eta 2, brackets 2, 4, 8, 16. Worked by hand, at
    bracket 2 (cut-off = sorted(values)[int(n / 2)]):
    k=1 alone: [1] -> cut-off 1, survives; k=5: [1, 5] -> 5, survives (a tie survives);
    k=9: [1, 5, 9] -> 5, and 9 > 5: stopped; k=3: [1, 3, 5, 9] -> 5, survives."""
    program = tmp_path / "curve.py"
    program.write_text(
        "import time\nfrom sweepd.agent import run\n"
        "for step in range(24):\n    run.log({'loss': run.params['k']})\n    time.sleep(0.1)\n"
    )
    (tmp_path / "sweep.yaml").write_text(
        f"program: {program}\nmethod: grid\nmetric: {{name: loss, goal: minimize}}\n"
        "early_terminate: {type: hyperband, min_iter: 2, eta: 2}\n"
        "parameters:\n  k: {values: [1, 5, 9, 3]}\n"
    )
    sid = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=cli_env).stdout.strip()
    agent = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "5"),
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert agent.returncode == 0, agent.stderr[-2000:]
    runs = {r["params"]["k"]: r for r in json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)}
    assert {k: r["state"] for k, r in runs.items()} == {1: "finished", 5: "finished", 9: "stopped", 3: "finished"}
    assert runs[9]["reason"] == "hyperband" and runs[9]["attempt"] == 1
