"""Careless and hostile use of the agent itself: the Redis password out of a training process's
reach, a checkpoint root that cannot be written, and a signal repeated while the agent shuts down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import redis

from sentinels import Topology
from support import RedisServer, SweepBench, alive, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue import command, connections
from sweepd.queue.errors import ConfigError

SECRET = "s3cr3t-pass-word"

SNOOP = """
import json, os, sys, time
seen = {"env": dict(os.environ), "argv": sys.argv}
for pid in {os.getppid(), *(p for p in os.environ.get("SNOOP_PIDS", "").split(",") if p)}:
    try:
        seen[f"environ:{pid}"] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        seen[f"cmdline:{pid}"] = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError as exc:
        seen[f"environ:{pid}"] = str(exc)
open(os.environ["SNOOP_OUT"], "w").write(json.dumps(seen))
time.sleep(30)
"""


@pytest.mark.parametrize("via", ["env", "file", "sentinel", "query"])
def test_a_training_process_cannot_read_the_redis_password(tmp_path: Path, via: str) -> None:
    """Not in its environment, its argv, its agent's environment (/proc/<agent>/environ is the
    environment the agent was started with) or command line, nor in the agent's log, nor in the
    watchdog's environment. Behind Sentinel, the sentinels' own password (SWEEPD_SENTINEL_PASSWORD)
    neither. ``query``: the password as redis-py's ``?password=`` option."""
    (tmp_path / "redis").mkdir()
    server: RedisServer | Topology
    if via == "sentinel":
        server = Topology(tmp_path / "redis", password=SECRET, sentinel_password=SECRET + "-sentinel").start()
    else:
        server = RedisServer(tmp_path / "redis", password=SECRET).start()
    try:
        (tmp_path / "p.py").write_text(SNOOP)
        (tmp_path / "sweep.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPD_REDIS")}
        env.update(SNOOP_OUT=str(tmp_path / "seen.json"), SWEEPD_HOME=str(tmp_path / "home"))
        if via == "sentinel":
            env.update(SWEEPD_REDIS_URL=server.url, SWEEPD_SENTINEL_PASSWORD=SECRET + "-sentinel")
        elif via == "env":
            env["SWEEPD_REDIS_URL"] = server.url
        elif via == "query":
            assert isinstance(server, RedisServer)
            env["SWEEPD_REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0?password={SECRET}"
        else:
            (tmp_path / "url").write_text(server.url + "\n")
            env["SWEEPD_REDIS_URL_FILE"] = str(tmp_path / "url")
        sid = run_sweepd("sweep", "create", "sweep.yaml", "--quiet", env=env, cwd=tmp_path).stdout.strip()
        agent = subprocess.Popen(
            sweepd_cmd("agent", sid, "--notices", "none"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen_file = tmp_path / "seen.json"
        wait_until(lambda: seen_file.exists() and seen_file.read_text(), timeout=60)
        seen = seen_file.read_text()
        assert f"environ:{agent.pid}" in json.loads(seen)  # the agent itself was read
        assert SECRET not in seen
        assert not any(name in json.loads(seen)["env"] for name in command.AGENT_ONLY_ENV)
        tree = [psutil.Process(agent.pid), *psutil.Process(agent.pid).children(recursive=True)]
        assert all(SECRET not in " ".join(p.cmdline()) for p in tree)
        assert any("watchdog" in " ".join(p.cmdline()) for p in tree)  # the watchdog is among them
        assert all(SECRET not in Path(f"/proc/{p.pid}/environ").read_bytes().decode(errors="replace") for p in tree)
        agent.terminate()
        out, err = agent.communicate(timeout=60)
        assert agent.returncode == 0 and SECRET not in out + err
    finally:
        server.close() if isinstance(server, Topology) else server.stop()


def test_sweepd_run_hands_the_url_to_its_agents_by_a_pipe(tmp_path: Path) -> None:
    """No process of `sweepd run`'s tree (itself, its agents, their watchdogs, the run) has the
    password in its environment or command line, whatever form the URL gives it in."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", password=SECRET).start()
    try:
        (tmp_path / "p.py").write_text(SNOOP)
        (tmp_path / "sweep.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPD_REDIS")}
        env.update(SNOOP_OUT=str(tmp_path / "seen.json"), SWEEPD_HOME=str(tmp_path / "home"))
        env["SWEEPD_REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0?password={SECRET}"
        run = subprocess.Popen(
            sweepd_cmd("run", "sweep.yaml"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen_file = tmp_path / "seen.json"
        wait_until(lambda: seen_file.exists() and seen_file.read_text(), timeout=60)
        assert SECRET not in seen_file.read_text()
        tree = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
        assert len(tree) >= 4  # sweepd run, its agent, the agent's watchdog, the run
        for proc in tree:
            assert SECRET not in Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace")
            assert SECRET not in " ".join(proc.cmdline())
        run.terminate()
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0 and SECRET not in out + err, err
    finally:
        server.stop()


def test_a_password_given_as_an_option_is_in_no_message() -> None:
    """``?password=PW`` is a password as ``:PW@`` is: redacted wherever a URL is named."""
    url = f"redis://127.0.0.1:1/0?db=0&password={SECRET}&socket_keepalive=true"
    assert connections.has_password(url) and not connections.has_password("redis://h:1/0?password=")
    assert connections.redact(url) == "redis://127.0.0.1:1/0?db=0&password=***&socket_keepalive=true"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPD_REDIS")}
    done = run_sweepd("check", env={**env, "SWEEPD_REDIS_URL": url})
    assert done.returncode == 3 and SECRET not in done.stdout + done.stderr and "password=***" in done.stderr
    odd = run_sweepd("check", env={**env, "SWEEPD_REDIS_URL": url + "&no_such_option=1"})  # redis-py's TypeError
    assert odd.returncode == 2 and SECRET not in odd.stderr and len(odd.stderr.splitlines()) == 1, odd.stderr


def test_the_redis_url_is_no_macro_a_command_may_use() -> None:
    with pytest.raises(ConfigError, match="agent's own"):
        command.expand(
            ["python", "t.py", "--db=${envvar:SWEEPD_REDIS_URL}"],
            program=None,
            params={},
            environ={"SWEEPD_REDIS_URL": f"redis://:{SECRET}@h/0"},
            interpreter="python",
        )


@pytest.mark.parametrize("name", command.AGENT_ONLY_ENV)
def test_a_sweep_naming_the_redis_url_in_its_command_is_refused_when_created(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis, name: str
) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "method: grid\nprogram: t.py\nparameters:\n  a: {value: 1}\n"
        f"command: [python, t.py, '--db=${{envvar:{name}}}', '${{args}}']\n"
    )
    done = run_sweepd("sweep", "create", str(config), env=cli_env)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"${{envvar:{name}}}" in done.stderr and "agent's own" in done.stderr
    assert r.dbsize() == 0  # nothing stored


def test_a_checkpoint_root_that_cannot_be_written_is_one_line_before_any_run(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    bench = SweepBench(tmp_path, cli_env, "  steps: {value: 5}\n")
    (tmp_path / "a-file").write_text("")
    done = run_sweepd(
        "agent", bench.id, "--notices", "none", "--checkpoint-root", str(tmp_path / "a-file" / "ckpt"), env=bench.env
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--checkpoint-root" in done.stderr
    assert "Traceback" not in done.stderr
    assert bench.runs() == {}  # nothing claimed, no grid point burnt


@pytest.mark.parametrize("front", ["agent", "run"])
def test_a_signal_repeated_while_the_agent_shuts_down_never_kills_it(
    tmp_path: Path, cli_env: dict[str, str], front: str
) -> None:
    """SLURM signals again after the grace; systemd and Kubernetes may too. The run is requeued at
    the front as for one signal, and the process still exits 0 (not 143, not 241)."""
    bench = SweepBench(tmp_path, cli_env, "  steps: {value: 400}\n  slow_checkpoint: {value: 0.5}\n")
    if front == "agent":
        proc = bench.agent("--grace", "5")
    else:
        config = tmp_path / "sweep.yaml"
        proc = subprocess.Popen(
            sweepd_cmd("run", str(config)),
            env=bench.env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        bench.procs.append(proc)
    ((rid, _),) = bench.ready()
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:  # a storm of signals until it has gone
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)  # the storm's own pace
    assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
    runs = (
        bench.runs()
        if front == "agent"
        else {r["id"]: r for r in json.loads(run_sweepd("runs", _sweep_of(bench, rid), "--json", env=bench.env).stdout)}
    )
    assert (runs[rid]["state"], runs[rid]["reason"]) == ("queued", "signal")
    assert [e["event"] for e in bench.events(rid)] == ["start", "preempted"]


def test_a_signal_repeated_later_shortens_the_grace_and_the_run_is_still_requeued(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """SLURM's second SIGTERM (after its GraceTime) or an operator's second Ctrl-C: the run that
    ignores its signal is killed sooner than the grace, and still goes back to the queue."""
    bench = SweepBench(tmp_path, cli_env, "  steps: {value: 400}\n  mode: {value: stubborn}\n")
    agent = bench.agent("--grace", "20")
    ((rid, _),) = bench.ready()
    agent.send_signal(signal.SIGTERM)
    wait_until(lambda: bench.run(rid)["state"] == "preempting", timeout=10)
    for _ in range(2):
        time.sleep(1.2)  # spacing the repeats beyond one burst (1 s), not a wait for a result
        agent.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    lines = [json.loads(line) for line in (agent.stderr.read() if agent.stderr else "").splitlines()]
    left = [line["grace_left"] for line in lines if line.get("event") == "signal repeated: grace shortened"]
    assert len(left) == 2 and left[1] < left[0] < 10  # each repeat halved what was left of 20 s
    assert any(line.get("event") == "grace period over: killing the process tree" for line in lines)
    run = bench.run(rid)
    assert (run["state"], run["reason"]) == ("queued", "signal")


def _sweep_of(bench: SweepBench, rid: str) -> str:
    return str(redis.Redis.from_url(bench.env["SWEEPD_REDIS_URL"]).hget(f"sweepd:run:{rid}", "sweep_id").decode())


def test_a_run_whose_redis_lost_its_data_is_stopped_and_says_so(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    bench = SweepBench(tmp_path, cli_env, "  steps: {value: 400}\n")
    agent = bench.agent("--heartbeat", "0.5")
    ((_, pid),) = bench.ready()
    r.flushall()  # Redis lost everything, the held run included
    wait_until(lambda: not alive(pid), timeout=10)
    agent.wait(30)
    err = agent.stderr.read() if agent.stderr else ""
    assert "no longer exists in Redis" in err and "requeued elsewhere" not in err
