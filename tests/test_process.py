"""The training process's spawn: its own process group and death with the agent, on both spawn paths
(util-linux ``setpriv``, and the ``preexec_fn`` fallback where setpriv is missing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from support import alive, run_sweepd, sweepd_cmd, wait_until
from sweepd.agent.daemon import process

#: A stand-in agent: starts one Child (sleep 60) and prints its pid, then waits to be killed.
PARENT = """
import sys, time
from sweepd.agent.daemon import process
if sys.argv[1] == "fallback":
    process._setpriv = lambda: None
child = process.Child(["sleep", "60"], {"PATH": "/usr/bin:/bin"}, lambda lines: None)
print(child.pid, flush=True)
time.sleep(60)
"""

PATHS = ["setpriv", "fallback"]


@pytest.mark.parametrize("path", PATHS)
def test_the_child_has_its_own_group_and_dies_with_its_parent(path: str) -> None:
    if path == "setpriv" and process._setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig on this machine")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, path], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        assert os.getpgid(pid) == pid  # its own group: a preemption signal reaches its whole tree
        # setpriv execs the command in the same process: the pid is the run's (once exec'd: Popen
        # returns when setpriv starts, a moment before it execs the command)
        wait_until(lambda: psutil.Process(pid).name() == "sleep", timeout=5)
        parent.kill()
        parent.wait(10)
        wait_until(lambda: not alive(pid), timeout=2)
    finally:
        parent.kill()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_spawn_options_prefer_setpriv() -> None:
    argv, options = process.spawn_options(["train", "--lr", "0.1"])
    if process._setpriv() is None or sys.version_info < (3, 11):
        assert argv == ["train", "--lr", "0.1"] and "preexec_fn" in options
    else:
        assert argv[-4:] == ["--", "train", "--lr", "0.1"] and options == {"process_group": 0}


@pytest.mark.parametrize(("name", "code"), [("missing", 127), ("not-executable", 126)])
def test_a_command_that_cannot_start_fails_its_run_like_a_shell(
    tmp_path: Path, cli_env: dict[str, str], name: str, code: int
) -> None:
    command = tmp_path / name
    if name == "not-executable":
        command.write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "s.yaml").write_text(f"method: grid\ncommand: [{command}]\nparameters:\n  x: {{values: [1]}}\n")
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    agent = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none"), env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert agent.returncode == 0, agent.stderr
    (run,) = json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)
    assert (run["state"], run["exit_code"]) == ("failed", code)


def test_a_command_of_the_agents_own_is_never_taken_for_a_runs_leftover() -> None:
    """scontrol and scancel (slurm_steps.py) may run on the guard's thread, or another slot's, while an
    attempt's end kills what its run left behind: a run_own command is not among it."""
    child = process.Child([sys.executable, "-c", "pass"], dict(os.environ), lambda lines: None)
    child.wait(30)
    results: list[subprocess.CompletedProcess[str]] = []
    aside = threading.Thread(target=lambda: results.append(process.run_own(["sleep", "0.5"], 10)))
    aside.start()
    wait_until(lambda: any(p.name() == "sleep" for p in psutil.Process().children()), 10)
    child.end()  # kills every child of ours created since the run started but the live ones
    aside.join(10)
    child.close()
    assert [r.returncode for r in results] == [0]
