"""Machines that vanish and a Redis that goes away: nothing lost, nothing run twice at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from support import RedisServer, SweepBench, alive, run_sweepd, wait_until


def started(
    tmp_path: Path, server: RedisServer, params: str, heartbeat: str
) -> tuple[SweepBench, subprocess.Popen[str], str, int]:
    """A bench on the test's own Redis (one it can stop and start), with a private home, and an agent on
    it that beats every ``heartbeat`` seconds, once its run is part-way through (the only one so far): the
    bench, the agent, and the run's id and its training process's pid."""
    env = {**os.environ, "SWEEPD_REDIS_URL": server.url, "SWEEPD_HOME": str(tmp_path / "home")}
    bench = SweepBench(tmp_path, env, params)
    agent = bench.agent("--heartbeat", heartbeat)
    ((rid, pid),) = bench.ready()
    return bench, agent, rid, pid


@pytest.fixture
def server(tmp_path: Path) -> RedisServer:
    (tmp_path / "redis").mkdir()
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """The machine vanished: SIGKILL the agent and everything under it at once."""
    victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in victims:
        p.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_a_vanished_agent_s_run_is_requeued_and_resumed_elsewhere(tmp_path: Path, server: RedisServer) -> None:
    bench, first, rid, pid = started(tmp_path, server, "  steps: {value: 60}\n", heartbeat="0.5")
    kill_tree(first)
    wait_until(lambda: not alive(pid), timeout=5)
    second = bench.agent("--heartbeat", "0.5")
    assert second.wait(90) == 0
    run = bench.runs()[rid]
    assert (run["state"], run["attempt"], run["requeues"]) == ("finished", 2, 1)
    starts = [e for e in bench.events(rid) if e["event"] == "start"]
    assert starts[1]["step"] > 0  # resumed from its checkpoint
    status = bench.status()
    assert status["recent_events"][-1]["reason"] == "lease-expired"
    bench.no_overlap()


def test_redis_gone_longer_than_a_lease(tmp_path: Path, server: RedisServer) -> None:
    bench, agent, rid, pid = started(tmp_path, server, "  steps: {value: 80}\n", heartbeat="0.5")
    server.stop()
    wait_until(lambda: not alive(pid), timeout=10)  # fenced: stopped before its lease could expire
    assert agent.poll() is None  # the agent itself waits for Redis
    server.start()
    assert agent.wait(90) == 0
    run = bench.runs()[rid]
    assert (run["state"], run["attempt"]) == ("finished", 2)
    starts = [e for e in bench.events(rid) if e["event"] == "start"]
    assert starts[1]["step"] > 0
    bench.no_overlap()


def test_a_redis_restart_shorter_than_a_lease_loses_nothing(tmp_path: Path, server: RedisServer) -> None:
    bench, agent, rid, pid = started(tmp_path, server, "  steps: {value: 60}\n", heartbeat="2")
    server.stop()
    server.start()
    assert alive(pid)  # the training process went on
    assert agent.wait(90) == 0
    run = bench.runs()[rid]
    assert (run["state"], run["attempt"], run["requeues"]) == ("finished", 1, 0)
    history = json.loads(run_sweepd("runs", bench.id, "--json", env=bench.env).stdout)[0]["summary"]
    assert history["loss"] == pytest.approx(1 / 60)  # the last metrics arrived after the blip


def test_operators_stop_and_requeue_running_runs(tmp_path: Path, server: RedisServer) -> None:
    bench, agent, first, pid = started(tmp_path, server, "  steps: {value: 80}\n  k: {values: [1, 2]}\n", heartbeat="1")
    assert "its agent will requeue it" in bench.sweepd("requeue", first)
    wait_until(lambda: bench.runs()[first]["attempt"] == 2, timeout=30)
    assert not alive(pid)
    assert "its agent will stop it" in bench.sweepd("stop", first)
    assert agent.wait(90) == 0
    runs = bench.runs()
    assert (runs[first]["state"], runs[first]["reason"]) == ("stopped", "operator-stop")
    assert [r["state"] for rid, r in runs.items() if rid != first] == ["finished"]
    assert "already stopped" in bench.sweepd("stop", first)
    bench.no_overlap()


def test_pause_resume_and_cancel_a_sweep(tmp_path: Path, server: RedisServer) -> None:
    bench, agent, first, _ = started(
        tmp_path, server, "  steps: {value: 400}\n  k: {values: [1, 2, 3]}\n", heartbeat="1"
    )
    assert "running -> paused" in bench.sweepd("sweep", "pause", bench.id)
    assert "paused -> running" in bench.sweepd("sweep", "resume", bench.id)
    assert "running -> cancelled" in bench.sweepd("sweep", "cancel", bench.id)
    assert agent.wait(60) == 0
    runs = bench.runs()
    assert runs[first]["state"] == "stopped" and runs[first]["reason"] == "sweep-cancelled"
    assert len(runs) == 1  # no new run after the cancel
