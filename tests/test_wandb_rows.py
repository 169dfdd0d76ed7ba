"""What an unmodified W&B script logs reaches sweepd's history and summary while it runs, read with
wandb's own reader from wandb's own transaction log (the real ``wandb`` package, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import redis

from support import Sweeps, sweepd_cmd, wait_until
from sweepd.agent.daemon.wandb_follow import Follower
from sweepd.agent.daemon.wandb_records import Records, numbers
from sweepd.queue import keys

# the pure part: records -> rows ------------------------------------------------------------------


def history(num: int, step: int, **metrics: object) -> dict[str, object]:
    return {"num": num, "type": "history", "history": {"item": {"_step": step, "_runtime": 0.1, **metrics}}}


def test_history_records_become_rows_of_the_users_numbers() -> None:
    records = Records()
    assert records.feed(history(3, 0, loss=0.5, acc=True, name="x", img={"_type": "image"}, l=[1])) == [
        {"loss": 0.5, "acc": True, "_step": 0}
    ]
    assert records.feed(history(4, 1, **{"val.loss": 1, "inf": "Infinity"})) == [{"val.loss": 1, "_step": 1}]
    assert records.feed(history(4, 1, loss=9)) == []  # a record read twice (the final read) counts once
    assert records.feed({"num": 5, "type": "stats", "stats": {"item": {"cpu": 3}}}) == []
    assert records.feed({"num": 6, "type": "history", "history": {"item": {"_step": 2}}}) == []  # no metric
    assert numbers({"a": float("nan"), "b": 2}) == {"b": 2}


def test_a_resumed_attempt_continues_the_runs_steps_where_offline_wandb_counts_from_zero() -> None:
    records = Records(last_step=9)
    rows = [records.feed(history(10 + i, i, loss=i)) for i in range(3)]
    assert [r[0]["_step"] for r in rows] == [10, 11, 12]
    online = Records(last_step=9)  # online, wandb continues from the server's step
    assert online.feed(history(1, 10, loss=1)) == [{"loss": 1, "_step": 10}]
    gap = Records(last_step=9)
    assert gap.feed(history(1, 20, loss=1)) == [{"loss": 1, "_step": 20}]
    assert gap.feed(history(2, 15, loss=1)) == []  # back before the last step: dropped, as W&B does


def test_summary_sets_preempting_and_exit_are_noted() -> None:
    records = Records()
    records.feed({"num": 1, "type": "summary", "summary": {"update": {"_step": 0, "loss": 1}}})  # a row's mirror
    records.feed({"num": 2, "type": "summary", "summary": {"update": {"best": 0.1, "_wandb.runtime": 3}}})
    assert records.take_summary() == {"best": 0.1} and records.take_summary() == {}
    assert not records.preempting and not records.exited
    records.feed({"num": 3, "type": "preempting", "preempting": {}})
    records.feed({"num": 4, "type": "exit", "exit": {"exit_code": 0}})
    assert records.preempting and records.exited
    assert records.feed("not a record") == [] and records.feed({"type": None}) == []


def test_the_follower_finds_this_attempts_run_file_not_an_earlier_attempts(tmp_path: Path) -> None:
    runs = tmp_path / "wandb"
    old = runs / "offline-run-20260101_000000-r1"
    old.mkdir(parents=True)
    (old / "run-r1.wandb").write_bytes(b"")
    (runs / "offline-run-20260101_000000-r2").mkdir()  # another run's
    follower = Follower("r1", str(tmp_path), None, {"PATH": ""}, str(tmp_path), on_rows=lambda rows: None)
    follower.pid = os.getpid()  # its open files hold no run file
    assert follower._find() is None  # the earlier attempt's file is not this attempt's
    new = runs / "offline-run-20260101_000100-r1"
    new.mkdir()
    assert follower._find() is None  # wandb made the directory, not yet the file
    (new / "run-r1.wandb").write_bytes(b"")
    assert follower._find() == str(new / "run-r1.wandb")


# the real thing ----------------------------------------------------------------------------------

pytest.importorskip("wandb")

LIVE = textwrap.dedent(
    """
    import os, time
    import wandb
    run = wandb.init()
    for i in range(5):
        wandb.log({"loss": 1.0 / (i + 1), "epoch": i})
    release = os.path.join(os.environ["OUT_DIR"], "release")
    while not os.path.exists(release):  # the test lets it end once it saw the rows live
        time.sleep(0.05)
    wandb.log({"loss": 0.01, "epoch": 5})
    run.summary["best_loss"] = 0.001
    """
)


@pytest.fixture
def wandb_env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    (tmp_path / "out").mkdir()
    return {**cli_env, "OUT_DIR": str(tmp_path / "out"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def test_rows_reach_the_history_while_the_run_is_going(
    tmp_path: Path, wandb_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, wandb_env, LIVE)
    sid = sweeps.create("method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  a: {value: 1}\n")
    agent = subprocess.Popen(sweepd_cmd("agent", sid, "--notices", "none"), env=wandb_env, cwd=tmp_path)
    try:
        rid = wait_until(lambda: (r.zrange(keys.sweep_runs(sid), 0, -1) or [b""])[0].decode(), timeout=60)
        assert isinstance(rid, str)
        wait_until(lambda: r.llen(keys.run_history(rid)) == 5, timeout=60)
        assert r.hget(keys.run(rid), "state") == b"running"  # live, not at the end
        (tmp_path / "out" / "release").touch()
        assert agent.wait(timeout=60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    history = [json.loads(x) for x in r.lrange(keys.run_history(rid), 0, -1)]
    assert [h["_step"] for h in history] == [0, 1, 2, 3, 4, 5]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4, 5]
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished" and run["summary"]["loss"] == 0.01
    assert run["summary"]["best_loss"] == 0.001  # set in run.summary alone: in the summary, not the history
    curve = [float(v) for v in r.lrange(keys.run_curve(rid), 0, -1)]  # hyperband's iterations
    assert curve == pytest.approx([1.0 / (i + 1) for i in range(5)] + [0.01])


def test_a_script_that_logs_both_through_sweepds_api_and_to_wandb_is_counted_once(
    tmp_path: Path, wandb_env: dict[str, str], r: redis.Redis
) -> None:
    program = textwrap.dedent(
        """
        import wandb
        from sweepd.agent import run
        wb = wandb.init()
        assert wb.id == run.run_id  # one run for both
        for i in range(3):
            run.log({"loss": float(i)})
            wandb.log({"loss": float(i)})
        """
    )
    sweeps = Sweeps(tmp_path, wandb_env, program)
    sid = sweeps.create("method: grid\nparameters:\n  a: {value: 1}\n")
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished"
    assert [json.loads(x)["_step"] for x in r.lrange(keys.run_history(run["id"]), 0, -1)] == [0, 1, 2]


def test_a_run_the_script_puts_in_a_directory_of_its_own_is_read_too(
    tmp_path: Path, wandb_env: dict[str, str], r: redis.Redis
) -> None:
    program = textwrap.dedent(
        """
        import os, time
        import wandb
        run = wandb.init(dir=os.environ["OUT_DIR"])  # not under WANDB_DIR: found among wandb's open files
        for i in range(5):
            wandb.log({"loss": 1.0 / (i + 1)})
            time.sleep(0.3)
        """
    )
    sweeps = Sweeps(tmp_path, wandb_env, program)
    sid = sweeps.create("method: grid\nparameters:\n  a: {value: 1}\n")
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    (run,) = sweeps.runs(sid)
    assert list((tmp_path / "out" / "wandb").glob(f"offline-run-*-{run['id']}"))  # where the script put it
    assert r.llen(keys.run_history(run["id"])) == 5 and run["summary"]["loss"] == 0.2
