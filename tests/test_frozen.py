"""An agent that cannot run never leaves its run running: the watchdog beside it kills the training
process before the lease can lapse, whether the agent is frozen (SIGSTOP), stalled or dead; and a
sweep's own stdout pattern runs in linear time, so reading output never stalls an agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from support import SweepBench, Sweeps, alive, run_sweepd, wait_until
from sweepd.agent.hold.watchdog import Guarded, Watchdog

HEARTBEAT = 1.0
LEASE = 3 * HEARTBEAT


@pytest.fixture
def bench(tmp_path: Path, cli_env: dict[str, str]):  # type: ignore[no-untyped-def]
    # 400 steps of 0.05 s: an attempt that is still running when the agent is frozen and thawed.
    made = SweepBench(tmp_path, cli_env, "  steps: {value: 400}\n")
    yield made
    made.close()


def test_a_frozen_agent_never_leaves_its_run_running(bench: SweepBench) -> None:
    """The agent SIGSTOPped for three leases while its run holds the trainer's lock (which the next
    attempt takes too): the lock is never held twice, the next attempt starts elsewhere while the
    agent is still frozen, and after SIGCONT the frozen agent is fenced and carries on cleanly."""
    frozen = bench.agent("--heartbeat", str(HEARTBEAT), "--grace", "1")
    ((rid, pid),) = bench.ready()
    other = bench.agent("--heartbeat", str(HEARTBEAT), "--grace", "1")
    stopped_at = time.monotonic()
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: not alive(pid), timeout=LEASE + 2)  # the watchdog, the agent being frozen
        killed_after = time.monotonic() - stopped_at
        wait_until(lambda: any(e["event"] == "start" and e["attempt"] == 2 for e in bench.events(rid)), timeout=30)
        wait_until(lambda: time.monotonic() - stopped_at >= 3 * LEASE, timeout=3 * LEASE + 5)  # the fault lasts
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert killed_after < LEASE  # before the lease could lapse, with the agent unable to do anything
    assert frozen.wait(120) == 0 and other.wait(120) == 0
    bench.no_overlap()
    run = bench.run(rid)
    assert run["state"] == "finished" and run["attempt"] == 2
    starts = [e for e in bench.events(rid) if e["event"] == "start"]
    assert [e["attempt"] for e in starts] == [1, 2]
    assert "fencing" in (frozen.stderr.read() if frozen.stderr else "")


def test_the_watchdog_kills_a_tree_whose_deadline_passes_and_spares_a_released_one() -> None:
    dog = Watchdog()
    try:
        doomed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        spared = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        dog.watch(doomed.pid, time.monotonic() + 0.3, group=True)
        dog.watch(spared.pid, time.monotonic() + 0.3, group=True)
        dog.feed(doomed.pid, time.monotonic() + 0.6)  # a renewal moves the deadline on
        dog.release(spared.pid)
        assert doomed.wait(10) == -signal.SIGKILL
        assert spared.poll() is None
        spared.kill()
        spared.wait()
    finally:
        dog.close()


def test_the_watchdog_kills_what_it_guards_when_its_holder_dies(tmp_path: Path) -> None:
    """A holder SIGKILLed: its pipe closes, and the watchdog kills the tree at once, grandchildren
    that left the process group included (the platform's pdeath signal reaches only the child)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from sweepd.agent.hold.watchdog import Watchdog\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import subprocess, sys, time; "
            'g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True); '
            "print(g.pid, flush=True); time.sleep(60)'], start_new_session=True, stdout=sys.stdout)\n"
            "dog = Watchdog(); dog.watch(child.pid, time.monotonic() + 60, group=True)\n"
            "print(child.pid, flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    pids = [int(holder.stdout.readline()), int(holder.stdout.readline())]
    holder.kill()
    holder.wait()
    wait_until(lambda: not any(alive(p) for p in pids), timeout=10)


def test_guarded_reads_only_its_own_lines() -> None:
    guarded = Guarded()
    guarded.apply(b"watch 10 5.0 group")
    guarded.apply(b"feed 10 7.5")
    guarded.apply(b"feed 11 1.0")  # not watched: ignored
    guarded.apply(b"nonsense")
    assert guarded.runs == {10: (7.5, True)}
    guarded.apply(b"release 10")
    assert guarded.runs == {}


STALL = "(?P<name>(x+x+)+)y(?P<value>\\d)"  # minutes of backtracking in Python's re on 30 x's


def test_a_pattern_that_backtracks_costs_one_attempt_and_no_overlap(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, "print('x' * 30, flush=True)\nprint('xxy5', flush=True)\n")
    sid = sweeps.create(f"method: grid\nstdout_metrics: '{STALL}'\nparameters:\n  a: {{value: 1}}\n")
    assert sweeps.agents(1, sid, "--notices", "none", "--heartbeat", "1", timeout=120) == [0]
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished" and run["attempt"] == 1
    assert run["summary"]["xx"] == 5


def test_a_pattern_the_linear_engine_refuses_is_refused_at_create(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    (tmp_path / "sweep.yaml").write_text(
        "program: prog.py\nmethod: grid\nstdout_metrics: '(?<=loss )(?P<name>l)(?P<value>\\d)'\n"
        "parameters:\n  a: {value: 1}\n"
    )
    done = run_sweepd("sweep", "create", "sweep.yaml", env=cli_env, cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "stdout_metrics" in done.stderr and "RE2" in done.stderr
    assert "Traceback" not in done.stderr
    assert r.keys("sweepd:*") == []
