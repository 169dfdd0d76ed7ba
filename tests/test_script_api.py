"""The training-script API without an agent, as real processes on a real Redis: ``init()`` and the
environment follow the resume table cell by cell, ``auto`` remembers the run of its directory, a
second process is refused while the first holds the run, and the exit-status table releases it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from support import RedisServer, run_sweepd, wait_until
from sweepd.queue import keys

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from sweepd.agent import run
    from sweepd.queue.errors import UserError

    spec = json.loads(sys.argv[1])
    try:
        r = run.init(**spec.get("init", {}))
    except UserError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        sys.exit(2)
    info = {k: getattr(run, k) for k in ("run_id", "sweep_id", "attempt", "resumed", "resumed_from_step", "step",
                                         "params", "checkpoint_dir")}
    assert r is run.init() and r.run_id == run.run_id  # init() again: the same run
    print(json.dumps(info), flush=True)
    slowest = 0.0
    for i in range(spec.get("rows", 3)):
        t = time.monotonic()
        run.log({"loss": 1.0 / (run.step + 1), "i": i})
        slowest = max(slowest, time.monotonic() - t)
        time.sleep(spec.get("row_pause", 0))
    if spec.get("hold"):  # wait until the test says go on
        open(spec["hold"] + ".ready", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(spec["hold"] + ".go") and not run.preempting and time.monotonic() < deadline:
            time.sleep(0.02)
    print(json.dumps({"slowest_log": slowest, "preempting": run.preempting, "reason": r.preempt_reason}), flush=True)
    if spec.get("mark"):
        run.mark_preempting()
    if spec.get("raise"):
        raise RuntimeError("boom")
    sys.exit(spec.get("exit", 0))
    """
)


class Bench:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.script = tmp_path / "train.py"
        self.script.write_text(SCRIPT)
        self.env = {**env, "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt")}

    def start(self, spec: dict[str, Any], env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
        return subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(spec)],
            env={**self.env, **(env or {})},
            cwd=cwd or self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, spec: dict[str, Any], env: dict[str, str] | None = None, cwd: Path | None = None, code: int = 0
    ) -> dict[str, Any]:
        proc = self.start(spec, env, cwd)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        return dict(json.loads(out.splitlines()[0]))

    def record(self, rid: str) -> dict[str, Any]:
        runs = json.loads(run_sweepd("runs", "manual", "--json", env=self.env).stdout)
        return dict(next(r for r in runs if r["id"] == rid))


def _history(r: redis.Redis, rid: str) -> list[dict[str, Any]]:
    return [json.loads(row) for row in r.lrange(keys.run_history(rid), 0, -1)]


def _snapshot(r: redis.Redis) -> dict[bytes, Any]:
    return {k: r.dump(k) for k in r.keys("*")}


TABLE = {"must": ("resume", "error"), "allow": ("resume", "create"), "never": ("error", "create")}
TABLE["auto"] = ("resume", "create")


@pytest.mark.parametrize("how", ["api", "env"])
@pytest.mark.parametrize("exists", [True, False], ids=["exists", "missing"])
@pytest.mark.parametrize("mode", ["must", "allow", "never", "auto"])
def test_init_follows_every_cell_of_the_resume_table(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis, mode: str, exists: bool, how: str
) -> None:
    bench = Bench(tmp_path, cli_env)
    rid = f"run-{mode}"
    if exists:  # an earlier run with this ID, 3 rows logged (steps 0..2), failed
        first = bench.run({"init": {"id": rid, "resume": "allow"}, "exit": 1}, code=1)
        assert first["attempt"] == 1 and not first["resumed"]
    if how == "api":
        spec, env = {"init": {"id": rid, "resume": mode}}, {}
    else:
        spec, env = {}, {"SWEEPD_RUN_ID": rid, "SWEEPD_RESUME": mode}
    want = TABLE[mode][0 if exists else 1]
    before = _snapshot(r)
    got = bench.run(spec, env, code=2 if want == "error" else 0)
    if want == "error":
        assert got["error"] == ("RunExists" if exists else "RunMissing")
        spelled = f"resume='{mode}'" if how == "api" else f"SWEEPD_RESUME={mode}"
        assert rid in got["message"] and spelled in got["message"]
        assert _snapshot(r) == before  # nothing stored
        return
    assert got["run_id"] == rid and got["sweep_id"] == "manual"
    assert Path(got["checkpoint_dir"]) == tmp_path / "ckpt" / "manual" / rid
    if want == "resume":  # resumed from its last step: one series, the run's summary
        assert (got["attempt"], got["resumed"], got["resumed_from_step"], got["step"]) == (2, True, 2, 3)
        assert [row["_step"] for row in _history(r, rid)] == [0, 1, 2, 3, 4, 5]
    else:
        assert (got["attempt"], got["resumed"], got["resumed_from_step"], got["step"]) == (1, False, None, 0)
        assert [row["_step"] for row in _history(r, rid)] == [0, 1, 2]
    record = bench.record(rid)
    assert record["state"] == "finished" and record["summary"]["_step"] == record["summary"]["i"] + (3 if exists else 0)


def test_auto_resumes_the_run_of_its_directory_and_only_there(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    bench = Bench(tmp_path, cli_env)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    auto = {"init": {"resume": "auto"}}
    first = bench.run({**auto, "exit": 1}, cwd=here, code=1)  # a new run; its ID stays in the directory
    assert (here / ".sweepd-run-id").read_text() == first["run_id"] + "\n"
    again = bench.run(auto, cwd=here)  # the same directory: resumed
    assert (again["run_id"], again["attempt"], again["resumed_from_step"]) == (first["run_id"], 2, 2)
    elsewhere = bench.run(auto, cwd=there)  # another directory: a run of its own
    assert elsewhere["run_id"] != first["run_id"] and not elsewhere["resumed"]
    assert not (here / ".sweepd-run-id").exists()  # the finished run is no candidate any more
    fresh = bench.run(auto, cwd=here)
    assert fresh["run_id"] not in (first["run_id"], elsewhere["run_id"]) and fresh["attempt"] == 1
    via_env = bench.run({**auto, "init": {}, "exit": 3}, env={"SWEEPD_RESUME": "auto"}, cwd=there, code=3)
    assert via_env["run_id"] not in (first["run_id"], elsewhere["run_id"], fresh["run_id"])
    assert bench.record(first["run_id"])["attempt"] == 2


def test_a_second_process_with_the_same_run_id_is_refused_while_the_first_holds_it(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    bench = Bench(tmp_path, cli_env)
    flag = str(tmp_path / "holder")
    first = bench.start({"init": {"id": "shared", "resume": "allow"}, "hold": flag})
    wait_until(lambda: Path(flag + ".ready").exists())
    for spec, env in (({"init": {"id": "shared", "resume": "allow"}}, {}), ({}, {"SWEEPD_RUN_ID": "shared"})):
        env = {**env, "SWEEPD_RESUME": "must"} if env else env
        second = bench.run(spec, env, code=2)
        assert second["error"] == "RunHeld" and "a second process cannot run it at the same time" in second["message"]
    uncaught = subprocess.run(
        [sys.executable, "-c", "from sweepd.agent import run; run.init(id='shared', resume='allow')"],
        env=bench.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert uncaught.returncode == 1
    assert uncaught.stderr.splitlines()[-1].startswith("sweepd.queue.errors.RunHeld: run 'shared' is running under")
    Path(flag + ".go").touch()
    assert first.wait(60) == 0
    assert bench.record("shared")["state"] == "finished" and bench.record("shared")["attempt"] == 1
    assert bench.run({"init": {"id": "shared", "resume": "must"}})["attempt"] == 2  # free again


@pytest.mark.parametrize(
    ("spec", "state", "exit_code", "queued"),
    [
        ({"exit": 0}, "finished", 0, False),
        ({"exit": 3}, "failed", 3, False),
        ({"raise": True}, "failed", 1, False),
        ({"mark": True, "exit": 1}, "queued", None, True),  # marked preempting, non-zero: requeued at the front
        ({"mark": True, "exit": 0}, "finished", 0, False),
    ],
)
def test_the_exit_status_table_releases_a_run_started_by_hand(
    tmp_path: Path,
    cli_env: dict[str, str],
    r: redis.Redis,
    spec: dict[str, Any],
    state: str,
    exit_code: int | None,
    queued: bool,
) -> None:
    bench = Bench(tmp_path, cli_env)
    code = 1 if spec.get("raise") else spec["exit"]
    got = bench.run({"init": {"id": "r1"}, **spec}, code=code)
    record = bench.record("r1")
    assert (record["state"], record["exit_code"]) == (state, exit_code)
    assert r.lrange(keys.rq_queue("manual"), 0, -1) == ([b"r1"] if queued else [])
    assert r.zcard(keys.sweep_held("manual")) == 0 and got["run_id"] == "r1"
    if queued:
        assert bench.run({"init": {"id": "r1", "resume": "must"}})["attempt"] == 2


def test_a_named_sweep_and_params(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bench = Bench(tmp_path, cli_env)
    (tmp_path / "sweep.yaml").write_text("method: grid\nprogram: train.py\nparameters:\n  lr: {values: [0.1]}\n")
    sid = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=bench.env).stdout.strip()
    got = bench.run({"init": {"id": "mine", "sweep": sid, "params": {"lr": 0.5, "batch": 8}}})
    assert got["sweep_id"] == sid and got["params"] == {"lr": 0.5, "batch": 8}
    again = bench.run(
        {"init": {"params": {"lr": 0.9, "extra": 1}}}, env={"SWEEPD_RUN_ID": "mine", "SWEEPD_RESUME": "must"}
    )
    assert again["sweep_id"] == sid and again["params"] == {"lr": 0.5, "batch": 8, "extra": 1}  # the run's own win
    wrong = bench.run({"init": {"id": "mine", "resume": "must", "sweep": "manual"}}, code=2)
    assert "belongs to sweep" in wrong["message"]
    missing = bench.run({"init": {"sweep": "nosuchsweep"}}, code=2)
    assert missing["error"] == "NotFound"
    runs = json.loads(run_sweepd("runs", sid, "--json", env=bench.env).stdout)
    assert [(x["id"], x["origin"], x["attempt"]) for x in runs] == [("mine", "manual", 2)]


def test_an_operator_s_stop_reaches_a_script_run_by_hand(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bench = Bench(tmp_path, cli_env)
    flag = str(tmp_path / "h")
    proc = bench.start({"init": {"id": "r1"}, "hold": flag, "exit": 1}, env={"SWEEPD_HEARTBEAT": "0.2"})
    wait_until(lambda: Path(flag + ".ready").exists())
    assert run_sweepd("stop", "r1", env=bench.env).returncode == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    said = json.loads(out.splitlines()[1])
    assert said["preempting"] and said["reason"] == "operator-stop"  # the flag, from the lease's renewal
    assert bench.record("r1")["state"] == "stopped"


def test_a_script_whose_run_was_taken_over_is_fenced(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    bench = Bench(tmp_path, cli_env)
    flag = str(tmp_path / "h")
    first = bench.start({"init": {"id": "r1"}, "hold": flag}, env={"SWEEPD_HEARTBEAT": "0.2"})
    wait_until(lambda: Path(flag + ".ready").exists())
    first.send_signal(signal.SIGSTOP)  # frozen: its lease lapses
    try:
        wait_until(lambda: (r.zscore(keys.sweep_held("manual"), "r1") or 0) < time.time() * 1000, timeout=10)
        second = bench.start({"init": {"id": "r1", "resume": "must"}, "hold": flag + "2"})
        wait_until(lambda: Path(flag + "2.ready").exists())
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL and "no other can run the same run at once" in err
    Path(flag + "2.go").touch()
    assert second.wait(30) == 0
    record = bench.record("r1")
    assert (record["state"], record["attempt"]) == ("finished", 2)


def test_metrics_survive_a_redis_restart_and_logging_never_waits_for_it(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        env = {**os.environ, "SWEEPD_REDIS_URL": server.url, "SWEEPD_HOME": str(tmp_path / "home")}
        bench = Bench(tmp_path, env)
        proc = bench.start({"init": {"id": "r1"}, "rows": 60, "row_pause": 0.05})
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # started
        server.stop()
        time.sleep(1.0)  # Redis is away while the script logs: the length of the outage, not a wait
        server.start()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["slowest_log"] < 0.1
        client = redis.Redis.from_url(server.url)
        assert [row["i"] for row in _history(client, "r1")] == list(range(60))
        assert client.hget(keys.run("r1"), "state") == b"finished"
    finally:
        server.stop()


def test_without_an_agent_or_init_nothing_is_stored(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    params = tmp_path / "params.json"
    params.write_text('{"lr": 0.1}')
    code = "from sweepd.agent import run; print(run.params, run.run_id, run.step); run.log({'loss': 1.0})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**cli_env, "SWEEPD_PARAMS_FILE": str(params)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["{'lr':", "0.1}", "None", "0"]
    assert json.loads(done.stderr.splitlines()[-1]) == {"loss": 1.0, "_step": 0}
    assert r.keys("*") == []
