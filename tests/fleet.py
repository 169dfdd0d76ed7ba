"""Agents on a one-run sweep of ckpt_trainer.py whose checkpoint root is an object store (or
``file://``): each agent with a cache directory of its own, as machines without shared storage."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from support import ROOT, run_sweepd, sweepd_cmd, wait_until

TRAINER = ROOT / "tests" / "ckpt_trainer.py"


class Fleet:
    """A one-run grid sweep of ckpt_trainer.py whose checkpoint root is ``root``; agents on it, each
    with a cache directory of its own (a machine of its own)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], root: str, params: str = "") -> None:
        self.dir, self.out = tmp_path, tmp_path / "out"
        self.out.mkdir()
        self.env = {**env, "OUT_DIR": str(self.out), "SWEEPD_CHECKPOINT_ROOT": root}
        config = tmp_path / "sweep.yaml"
        config.write_text(f"method: grid\nprogram: {TRAINER}\nparameters:\n  run: {{value: 1}}\n{params}")
        self.id = self.sweepd("sweep", "create", str(config), "--quiet").strip()
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, str] = {}

    def sweepd(self, *args: str) -> str:
        done = run_sweepd(*args, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def agent(self, cache: Path, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            sweepd_cmd("agent", self.id, "--notices", "none", "--checkpoint-cache", str(cache), *extra),
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def rid(self) -> str:
        return str(wait_until(lambda: next((p.stem for p in self.out.glob("*.ready")), None), timeout=60))

    def events(self, rid: str) -> list[dict[str, Any]]:
        path = self.out / f"{rid}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def event(self, rid: str, kind: str, attempt: int) -> dict[str, Any]:
        found = wait_until(
            lambda: next((e for e in self.events(rid) if e["event"] == kind and e["attempt"] == attempt), None),
            timeout=90,
        )
        return dict(found)  # type: ignore[call-overload]

    def checkpoints(self, rid: str) -> list[dict[str, Any]]:
        return list(json.loads(self.sweepd("checkpoints", rid, "--json")))

    def logged(self, proc: subprocess.Popen[str], event: str) -> list[dict[str, Any]]:
        """The agent's JSON log lines with this event (once it has exited)."""
        text = proc.stderr.read() if proc.stderr else ""
        self.logs[proc.pid] = self.logs.get(proc.pid, "") + text
        out = []
        for line in self.logs[proc.pid].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == event:
                out.append(entry)
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


def resume_elsewhere(fleet: Fleet, tmp_path: Path) -> None:
    """Agent A's run checkpoints every step; SIGTERM to A; A's cache deleted; agent B resumes the
    run from the step it saved at the signal, its files identical byte for byte."""
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"
    a = fleet.agent(cache_a, "--heartbeat", "1", "--grace", "20", "--checkpoint-sync", "0")
    rid = fleet.rid()
    wait_until(lambda: step_of(cache_a / fleet.id / rid / "step.json") >= 2)  # part-way through
    a.send_signal(signal.SIGTERM)
    assert a.wait(60) == 0
    saved = fleet.event(rid, "preempted", 1)
    shutil.rmtree(cache_a)  # the machine is gone, with its disk
    [latest] = fleet.checkpoints(rid)[:1]
    assert latest["attempt"] == 1 and latest["latest"] and latest["files"] == 3
    b = fleet.agent(cache_b, "--heartbeat", "1", "--checkpoint-sync", "0")
    started = fleet.event(rid, "start", 2)
    assert started["step"] == saved["step"] > 0
    assert started["files"] == saved["files"]  # byte for byte: every file's SHA-256
    b.send_signal(signal.SIGTERM)
    assert b.wait(60) == 0
    assert not (cache_b / fleet.id / rid).exists()  # committed, the run moved on: the copy is gone
    run = json.loads(fleet.sweepd("runs", fleet.id, "--json"))[0]
    assert run["checkpoint"]["attempt"] == 2 and set(run["checkpoint"]) == {
        "snapshot",
        "attempt",
        "files",
        "bytes",
        "committed_at",
    }


def step_of(path: Path) -> int:
    """The step a trainer's checkpoint holds (-1 before the first)."""
    try:
        return int(json.loads(path.read_text())["step"])
    except (OSError, ValueError):
        return -1
