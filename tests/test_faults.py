"""Machines that vanish and a Redis that goes away: nothing lost, nothing run twice at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from support import ROOT, RedisServer, run_sweepd, sweepd_cmd, wait_until

TRAINER = ROOT / "tests" / "trainer.py"


class Bench:
    """One sweep of the test trainer on a given Redis, and the agents working it."""

    def __init__(self, tmp_path: Path, url: str, params: str) -> None:
        self.dir, self.out = tmp_path, tmp_path / "out"
        self.out.mkdir()
        self.env = {
            **os.environ,
            "SWEEPD_REDIS_URL": url,
            "SWEEPD_HOME": str(tmp_path / "home"),
            "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"),
            "OUT_DIR": str(self.out),
        }
        config = tmp_path / "sweep.yaml"
        config.write_text(f"method: grid\nprogram: {TRAINER}\nparameters:\n{params}")
        self.id = self.sweepd("sweep", "create", str(config), "--quiet").strip()

    def sweepd(self, *args: str) -> str:
        done = run_sweepd(*args, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def agent(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            sweepd_cmd("agent", self.id, "--notices", "none", *extra),
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ready(self, n: int = 1) -> list[tuple[str, int]]:
        wait_until(lambda: len(list(self.out.glob("*.ready"))) >= n, timeout=60)
        return [(p.stem, int(str(wait_until(p.read_text, timeout=5)))) for p in sorted(self.out.glob("*.ready"))]

    def events(self, rid: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in (self.out / f"{rid}.jsonl").read_text().splitlines()]

    def runs(self) -> dict[str, dict[str, object]]:
        return {r["id"]: r for r in json.loads(self.sweepd("runs", self.id, "--json"))}

    def no_overlap(self) -> None:
        for path in self.out.glob("*.jsonl"):
            assert "overlap" not in path.read_text(), f"two executions of {path.stem} at once"


@pytest.fixture
def server(tmp_path: Path) -> RedisServer:
    (tmp_path / "redis").mkdir()
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """The machine vanished: SIGKILL the agent and everything under it at once."""
    victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in victims:
        p.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_a_vanished_agent_s_run_is_requeued_and_resumed_elsewhere(tmp_path: Path, server: RedisServer) -> None:
    bench = Bench(tmp_path, server.url, "  steps: {value: 60}\n")
    first = bench.agent("--heartbeat", "0.5")
    ((rid, pid),) = bench.ready()
    kill_tree(first)
    wait_until(lambda: not alive(pid), timeout=5)
    second = bench.agent("--heartbeat", "0.5")
    assert second.wait(90) == 0
    run = bench.runs()[rid]
    assert (run["state"], run["attempt"], run["requeues"]) == ("finished", 2, 1)
    starts = [e for e in bench.events(rid) if e["event"] == "start"]
    assert starts[1]["step"] > 0  # resumed from its checkpoint
    status = json.loads(bench.sweepd("status", bench.id, "--json"))
    assert status["recent_events"][-1]["reason"] == "lease-expired"
    bench.no_overlap()


def test_redis_gone_longer_than_a_lease(tmp_path: Path, server: RedisServer) -> None:
    bench = Bench(tmp_path, server.url, "  steps: {value: 80}\n")
    agent = bench.agent("--heartbeat", "0.5")
    ((rid, pid),) = bench.ready()
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
    bench = Bench(tmp_path, server.url, "  steps: {value: 60}\n")
    agent = bench.agent("--heartbeat", "2")
    ((rid, pid),) = bench.ready()
    server.stop()
    server.start()
    assert alive(pid)  # the training process went on
    assert agent.wait(90) == 0
    run = bench.runs()[rid]
    assert (run["state"], run["attempt"], run["requeues"]) == ("finished", 1, 0)
    history = json.loads(run_sweepd("runs", bench.id, "--json", env=bench.env).stdout)[0]["summary"]
    assert history["loss"] == pytest.approx(1 / 60)  # the last metrics arrived after the blip


def test_operators_stop_and_requeue_running_runs(tmp_path: Path, server: RedisServer) -> None:
    bench = Bench(tmp_path, server.url, "  steps: {value: 80}\n  k: {values: [1, 2]}\n")
    agent = bench.agent("--heartbeat", "1")
    ((first, pid),) = bench.ready()
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
    bench = Bench(tmp_path, server.url, "  steps: {value: 400}\n  k: {values: [1, 2, 3]}\n")
    agent = bench.agent("--heartbeat", "1")
    ((first, _),) = bench.ready()
    assert "running -> paused" in bench.sweepd("sweep", "pause", bench.id)
    assert "paused -> running" in bench.sweepd("sweep", "resume", bench.id)
    assert "running -> cancelled" in bench.sweepd("sweep", "cancel", bench.id)
    assert agent.wait(60) == 0
    runs = bench.runs()
    assert runs[first]["state"] == "stopped" and runs[first]["reason"] == "sweep-cancelled"
    assert len(runs) == 1  # no new run after the cancel
