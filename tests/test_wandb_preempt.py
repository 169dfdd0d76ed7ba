"""Unmodified W&B scripts preempted, marking themselves preempting, and cut by hyperband under real
agents (the real ``wandb`` package, offline): one W&B run across attempts, its steps continuing, and
what an interrupted attempt logged kept in its offline run and in sweepd's history."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import redis

from support import Sweeps, sweepd_cmd, wait_until
from sweepd.agent.daemon.wandb_follow import reader_command
from sweepd.queue import keys

pytest.importorskip("wandb")

TRAIN = textwrap.dedent(
    """
    import os, sys, time
    import wandb
    run = wandb.init()
    for i in range(wandb.config.steps):
        wandb.log({"loss": wandb.config.k + 1.0 / (i + 1), "i": i})
        time.sleep(0.1)
    """
)


@pytest.fixture
def env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    (tmp_path / "out").mkdir()
    return {**cli_env, "OUT_DIR": str(tmp_path / "out"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def records(path: Path) -> list[dict[str, object]]:
    """A .wandb file's records, as wandb's own reader prints them."""
    argv = reader_command({"PATH": ""})
    assert argv is not None
    done = subprocess.run([*argv, "leet", "inspect", "--json", str(path)], capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def first_run(r: redis.Redis, sid: str) -> str:
    rid = wait_until(lambda: (r.zrange(keys.sweep_runs(sid), 0, -1) or [b""])[0].decode(), timeout=60)
    assert isinstance(rid, str)
    return rid


def test_a_preempted_w_and_b_run_keeps_its_rows_and_resumes_as_the_same_run_with_its_steps_continuing(
    tmp_path: Path, env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, env, TRAIN)
    sid = sweeps.create("method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n"
                        "  k: {value: 1}\n  steps: {value: 40}\n")  # fmt: skip
    agent = subprocess.Popen(sweepd_cmd("agent", sid, "--notices", "none"), env=env, cwd=tmp_path)
    try:
        rid = first_run(r, sid)
        wait_until(lambda: r.llen(keys.run_history(rid)) >= 3, timeout=60)  # part-way, read live
        agent.send_signal(signal.SIGTERM)  # the agent is preempted: the script must get to flush
        assert agent.wait(timeout=60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert r.hget(keys.run(rid), "state") == b"queued"  # requeued at the front
    kept = r.llen(keys.run_history(rid))
    assert 3 <= kept < 40
    assert sweeps.agents(1, sid, "--notices", "none") == [0]  # the next agent resumes it
    (done,) = sweeps.runs(sid)
    assert (done["state"], done["attempt"]) == ("finished", 2)
    history = [json.loads(x) for x in r.lrange(keys.run_history(rid), 0, -1)]
    assert [h["_step"] for h in history] == list(range(kept + 40))  # one series across both attempts
    assert [h["i"] for h in history] == list(range(kept)) + list(range(40))
    # one W&B run: every attempt's offline directory carries the sweepd run's id, so `wandb sync`
    # of them gives one run; the interrupted attempt's rows are all in its own offline run
    dirs = sorted((tmp_path / "wandb").glob(f"offline-run-*-{rid}"))
    assert len(dirs) == 2
    ids = set()
    for d in dirs:
        for rec in records(d / f"run-{rid}.wandb"):
            if rec["type"] == "run":
                ids.add(rec["run"]["run_id"])  # type: ignore[index]
    assert ids == {rid}
    first = [rec for rec in records(dirs[0] / f"run-{rid}.wandb") if rec["type"] == "history"]
    assert len(first) == kept


def test_mark_preempting_then_a_non_zero_exit_requeues_the_run_at_the_front(
    tmp_path: Path, env: dict[str, str], r: redis.Redis
) -> None:
    program = textwrap.dedent(
        """
        import os, sys
        import wandb
        run = wandb.init()
        wandb.log({"loss": 1.0})
        once = os.path.join(os.environ["OUT_DIR"], "once")
        if not os.path.exists(once):
            open(once, "w").close()
            run.mark_preempting()
            sys.exit(3)
        """
    )
    sweeps = Sweeps(tmp_path, env, program)
    sid = sweeps.create("method: grid\nparameters:\n  k: {values: [1, 2]}\n")
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    runs = {run["params"]["k"]: run for run in sweeps.runs(sid)}
    assert (runs[1]["state"], runs[1]["attempt"]) == ("finished", 2)  # requeued, and taken before k=2
    assert (runs[2]["state"], runs[2]["attempt"]) == ("finished", 1)
    assert runs[1]["started_at"] < runs[2]["started_at"]
    events = [json.loads(e) for e in r.lrange(keys.sweep_events(sid), 0, -1)]
    assert any(e.get("event") == "requeued" and e.get("reason") == "child-marked" for e in events)


def test_hyperband_stops_a_w_and_b_run_mid_run_shorter_than_a_heartbeat(
    tmp_path: Path, env: dict[str, str], r: redis.Redis
) -> None:
    """As the API's test (test_search_agents): constant curves, eta 2; the k=9 run is cut at bracket 2.
    The runs are shorter than the agent's 10 s heartbeat: judged when their curve reaches a bracket."""
    program = textwrap.dedent(
        """
        import time
        import wandb
        run = wandb.init()
        for step in range(30):
            wandb.log({"loss": wandb.config.k})
            time.sleep(0.1)
        """
    )
    sweeps = Sweeps(tmp_path, env, program)
    sid = sweeps.create("""
        method: grid
        metric: {name: loss, goal: minimize}
        early_terminate: {type: hyperband, min_iter: 2, eta: 2}
        parameters:
          k: {values: [1, 5, 9, 3]}
        """)
    assert sweeps.agents(1, sid, "--notices", "none", "--grace", "5") == [0]
    runs = {run["params"]["k"]: run for run in sweeps.runs(sid)}
    assert {k: run["state"] for k, run in runs.items()} == {1: "finished", 5: "finished", 9: "stopped", 3: "finished"}
    assert runs[9]["reason"] == "hyperband"
    stopped = r.llen(keys.run_history(runs[9]["id"]))
    assert 2 <= stopped < 30  # stopped mid-run
