"""What a training program leaves behind (a grandchild in its process group, one that called setsid)
is killed at the end of its attempt, normal or preempted, and reaped: it never overlaps the next
attempt, and the pipes it holds delay neither the run's record nor a preemption's handoff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from support import Sweeps, alive, sweepd_cmd, wait_until

#: Starts two sleepers that ignore SIGTERM and hold its stdout and stderr: one in its process group,
#: one in a session of its own. Then exits with its ``code`` after 0.5 s (``x`` 2: after 3 s), or,
#: with ``code`` "term", waits for SIGTERM and exits 3 (a preempted run, requeued).
PROGRAM = """
import json, os, signal, subprocess, sys, time
params = json.load(open(os.environ["SWEEPD_PARAMS_FILE"]))
sleeper = ["sh", "-c", "trap '' TERM; exec sleep 600"]
group = subprocess.Popen(sleeper)
session = subprocess.Popen(sleeper, start_new_session=True)
out = os.path.join(os.environ["OUT_DIR"], os.environ["SWEEPD_RUN_ID"])
with open(out + ".tmp", "w") as fh:
    json.dump([group.pid, session.pid], fh)
os.rename(out + ".tmp", out + ".pids")
if params["code"] == "term":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(3))
    time.sleep(600)
time.sleep(3 if params.get("x") == 2 else 0.5)
sys.exit(int(params["code"]))
"""


@pytest.fixture
def sweeps(tmp_path: Path, cli_env: dict[str, str]) -> Sweeps:
    (tmp_path / "out").mkdir()
    return Sweeps(tmp_path, {**cli_env, "OUT_DIR": str(tmp_path / "out")}, PROGRAM)


def start(sweeps: Sweeps, sid: str) -> subprocess.Popen[bytes]:
    err = open(sweeps.dir / "agent.err", "wb")  # noqa: SIM115 - the agent's own for its life
    return subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none"),
        env=sweeps.env,
        cwd=sweeps.dir,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )


def leftovers(sweeps: Sweeps, rid: str) -> list[int]:
    path = sweeps.dir / "out" / f"{rid}.pids"
    wait_until(path.exists, timeout=60)
    return list(json.loads(path.read_text()))


def agent_lines(sweeps: Sweeps, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in (sweeps.dir / "agent.err").read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def gone(pid: int) -> bool:
    """Dead and reaped: no zombie left in the agent."""
    return not psutil.pid_exists(pid)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("code", "state"), [(0, "finished"), (1, "failed")])
def test_leftovers_die_with_their_run_and_hold_nothing_up(sweeps: Sweeps, code: int, state: str) -> None:
    sid = sweeps.create(f"method: grid\nparameters:\n  code: {{value: {code}}}\n  x: {{values: [1, 2]}}\n")
    agent = start(sweeps, sid)
    pids: list[int] = []
    try:
        runs = wait_until(lambda: len(sweeps.runs(sid)) == 2 and sweeps.runs(sid), timeout=60)
        assert isinstance(runs, list)
        first, second = sorted(runs, key=lambda run: run["params"]["x"])
        pids = leftovers(sweeps, first["id"]) + leftovers(sweeps, second["id"])
        assert agent.poll() is None  # the second run still runs: the first one's leftovers are gone
        assert all(gone(pid) for pid in pids[:2]), [psutil.Process(p).status() for p in pids[:2] if not gone(p)]
        assert agent.wait(60) == 0
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=3)
        ended = agent_lines(sweeps, "run ended")
        assert [line["state"] for line in ended] == [state, state]
        assert ended[0]["seconds"] < 3  # 0.5 s of work: no wait on pipes the leftovers held
        runs = sweeps.runs(sid)
        assert all(run["state"] == state for run in runs)
        first = next(run for run in runs if run["params"]["x"] == 1)
        took = datetime.fromisoformat(first["ended_at"]) - datetime.fromisoformat(first["started_at"])
        assert took.total_seconds() < 3
        print(f"run recorded as {ended[0]['seconds']} s (0.5 s of work)")
    finally:
        agent.kill()
        agent.wait(10)
        kill_all(pids)


def test_a_preemption_kills_the_leftovers_and_hands_off_at_once(sweeps: Sweeps) -> None:
    sid = sweeps.create('method: grid\nparameters:\n  code: {value: "term"}\n')
    agent = start(sweeps, sid)
    pids: list[int] = []
    try:
        (run,) = wait_until(lambda: sweeps.runs(sid), timeout=60)  # type: ignore[misc]
        pids = leftovers(sweeps, run["id"])
        sent = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        took = time.monotonic() - sent
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=3)
        (requeued,) = agent_lines(sweeps, "run requeued at the front")
        assert requeued["reason"] == "signal" and requeued["handoff_seconds"] < 3
        assert took < 5  # the agent's whole exit, well under the 10 s the pumps once waited
        (run,) = sweeps.runs(sid)
        assert (run["state"], run["reason"]) == ("queued", "signal")
        print(f"handoff {requeued['handoff_seconds']:.3f} s, agent exit {took:.3f} s after SIGTERM")
    finally:
        agent.kill()
        agent.wait(10)
        kill_all(pids)
