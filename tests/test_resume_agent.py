"""Resuming under an agent, with real agents, processes and Redis: a preempted run's history goes on
as one series, ``init()`` follows the table for the agent's run, programs that are not Python report
metrics by printing them, and ``sweepd enqueue`` re-runs a grid point."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import redis

from support import ROOT, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue import keys

TRAINER = ROOT / "tests" / "trainer.py"


def create(tmp_path: Path, env: dict[str, str], body: str) -> str:
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent(body))
    done = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def agent(sid: str, env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none", *extra),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs(sid: str, env: dict[str, str]) -> list[dict[str, Any]]:
    return list(json.loads(run_sweepd("runs", sid, "--json", env=env).stdout))


def history(r: redis.Redis, rid: str) -> list[dict[str, Any]]:
    return [json.loads(row) for row in r.lrange(keys.run_history(rid), 0, -1)]


def test_steps_continue_across_a_preemption(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {**cli_env, "OUT_DIR": str(out), "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt")}
    sid = create(tmp_path, env, f"method: grid\nprogram: {TRAINER}\nparameters:\n  steps: {{value: 30}}\n")
    first = agent(sid, env, tmp_path)
    ready = wait_until(lambda: next(out.glob("*.ready"), None), timeout=60)
    assert isinstance(ready, Path)
    rid = ready.stem
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0
    logged = history(r, rid)
    assert logged and runs(sid, env)[0]["state"] == "queued"
    assert agent(sid, env, tmp_path).wait(120) == 0
    (run,) = runs(sid, env)
    assert (run["state"], run["attempt"]) == ("finished", 2)
    rows = history(r, rid)
    assert [row["_step"] for row in rows] == list(range(30))  # one series, no gap, nothing twice
    assert [row["loss"] for row in rows] == [1.0 / (step + 1) for step in range(30)]
    assert run["summary"]["_step"] == 29  # the run's summary, not the attempt's


AGENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from sweepd.agent import run
    from sweepd.queue.errors import UserError
    out = {}
    for name, kwargs in [("id", {"id": "someone-else"}), ("never", {"resume": "never"}),
                         ("must", {"resume": "must"}), ("plain", {"params": {"lr": 9, "batch": 32}})]:
        try:
            r = run.init(**kwargs)
            out[name] = {"run_id": r.run_id, "params": dict(r.params), "from": r.resumed_from_step, "step": r.step}
        except UserError as exc:
            out[name] = type(exc).__name__
    out["env_step"] = os.environ.get("SWEEPD_RESUME_STEP")
    with open(os.path.join(os.environ["OUT_DIR"], f"{run.run_id}.{run.attempt}.json"), "w") as fh:
        json.dump(out, fh)
    run.log({"loss": 0.5})
    print("loss=123 (printed, not counted: the API reports this run)", flush=True)
    sys.exit(1 if run.attempt == 1 else 0)
    """
)


def test_init_under_an_agent_is_the_agent_s_run_and_follows_the_table(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "script.py").write_text(AGENT_SCRIPT)
    env = {**cli_env, "OUT_DIR": str(out)}
    sid = create(tmp_path, env, "method: grid\nprogram: script.py\nparameters:\n  lr: {value: 0.1}\n")
    assert agent(sid, env, tmp_path, "--max-retries", "1").wait(120) == 0
    (run,) = runs(sid, env)
    rid = run["id"]
    first = json.loads((out / f"{rid}.1.json").read_text())
    second = json.loads((out / f"{rid}.2.json").read_text())
    assert first["id"] == second["id"] == "UserError"  # another run ID than the agent's
    assert (first["never"], first["must"]) == (
        {"run_id": rid, "params": {"lr": 0.1}, "from": None, "step": 0},
        "RunMissing",
    )  # first start: the run did not exist before
    assert (second["never"], second["must"]["from"]) == ("RunExists", 0)  # a later start: it did
    assert first["plain"]["params"] == {"lr": 0.1, "batch": 32}  # defaults under the sweep's params
    assert (first["env_step"], second["env_step"]) == (None, "0")
    assert [row["_step"] for row in history(r, rid)] == [0, 1]  # the printed loss=123 is not a row
    assert run["summary"] == {"loss": 0.5, "_step": 1}


SHELL = """#!/bin/sh
echo "training: $# arguments"
i=0
while [ $i -lt 3 ]; do
  i=$((i + 1))
  echo "epoch=$i loss=0.$i acc=9.${i}e-1"
done
echo "done: val_loss: 0.05"
"""


def test_a_shell_script_reports_metrics_by_printing_them(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    script = tmp_path / "train.sh"
    script.write_text(SHELL)
    script.chmod(0o755)
    body = f"method: grid\ncommand: [{script}, '${{args_no_hyphens}}']\nparameters:\n  lr: {{values: [1, 2]}}\n"
    sid = create(tmp_path, cli_env, body)
    assert agent(sid, cli_env, tmp_path).wait(120) == 0
    for run in runs(sid, cli_env):
        assert run["state"] == "finished"
        assert history(r, run["id"]) == [
            {"epoch": 1, "loss": 0.1, "acc": 0.91, "_step": 0},
            {"epoch": 2, "loss": 0.2, "acc": 0.92, "_step": 1},
            {"epoch": 3, "loss": 0.3, "acc": 0.93, "_step": 2},
        ]
        assert run["summary"] == {"epoch": 3, "loss": 0.3, "acc": 0.93, "_step": 2}
        rid = run["id"]
    # A pattern of the sweep's own, and a resumed run's printed rows continue its history.
    own = tmp_path / "own"
    own.mkdir()
    body += "stdout_metrics: '(?P<name>val_loss): (?P<value>\\S+)'\n"
    sid2 = create(own, cli_env, body)
    assert agent(sid2, cli_env, own).wait(120) == 0
    assert {json.dumps(history(r, x["id"])) for x in runs(sid2, cli_env)} == {'[{"val_loss": 0.05, "_step": 0}]'}
    done = run_sweepd("enqueue", sid, "--id", rid, "--resume", "must", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert agent(sid, cli_env, tmp_path).wait(120) == 0
    assert [row["_step"] for row in history(r, rid)] == [0, 1, 2, 3, 4, 5]
    off = tmp_path / "off"
    off.mkdir()
    sid3 = create(
        off, cli_env, body.replace("stdout_metrics: '(?P<name>val_loss): (?P<value>\\S+)'", "stdout_metrics: false")
    )
    assert agent(sid3, cli_env, off).wait(120) == 0
    assert all(history(r, x["id"]) == [] for x in runs(sid3, cli_env))


def test_enqueue_re_runs_a_failed_grid_point_and_continues_its_history(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    (tmp_path / "prog.py").write_text(
        "import sys\nfrom sweepd.agent import run\nrun.log({'x': run.params['x']})\n"
        "sys.exit(1 if run.params['x'] == 2 and run.attempt == 1 else 0)\n"
    )
    sid = create(tmp_path, cli_env, "method: grid\nprogram: prog.py\nparameters:\n  x: {values: [1, 2, 3]}\n")
    assert agent(sid, cli_env, tmp_path).wait(120) == 0
    failed = [run for run in runs(sid, cli_env) if run["state"] == "failed"]
    assert len(failed) == 1
    rid = failed[0]["id"]
    done = run_sweepd("enqueue", sid, "--id", rid, "--resume", "must", "--front", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"run {rid} enqueued at the front of sweep {sid}'s queue (attempt 2, continuing from step 0)"
    )
    assert agent(sid, cli_env, tmp_path).wait(120) == 0
    again = next(run for run in runs(sid, cli_env) if run["id"] == rid)
    assert (again["state"], again["attempt"], again["params"]) == ("finished", 2, {"x": 2})
    assert [row["_step"] for row in history(r, rid)] == [0, 1]
    assert len(runs(sid, cli_env)) == 3  # the same run, not a new one
