"""Preemption with real signals, real processes and a real Redis: checkpoint, requeue at the front,
resume from the checkpoint on the next start."""

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

from standins import AwsImds, AzureScheduledEvents, GcpMetadata
from support import SweepBench, alive, run_sweepd, wait_until
from sweepd.queue import keys


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    code = proc.wait(timeout=timeout)
    return code


def preempt(sweep: SweepBench, *agent_args: str, signum: int = signal.SIGTERM) -> str:
    """Start an agent with ``agent_args``, send it ``signum`` once its first run is part-way through, and
    wait for it to stop cleanly (exit 0): that run's id."""
    agent = sweep.agent(*agent_args)
    rid, _pid = sweep.ready()[0]
    agent.send_signal(signum)
    assert finish(agent) == 0  # a clean stop
    return rid


def test_sigterm_checkpoints_requeues_at_the_front_and_the_next_agent_resumes(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 30}\n  k: {values: [1, 2, 3]}\n")
    rid = preempt(sweep)
    assert r.lindex(keys.rq_queue(sweep.id), 0) == rid.encode()  # at the head of the queue
    run = sweep.run(rid)
    assert (run["state"], run["attempt"], run["reason"]) == ("queued", 1, "signal")
    preempted = [e for e in sweep.events(rid) if e["event"] == "preempted"]
    assert preempted and preempted[0]["terms"] >= 1 and preempted[0]["flag"] is True  # signal and API flag
    second = sweep.agent()
    assert finish(second, timeout=120) == 0
    run = sweep.run(rid)
    assert (run["state"], run["attempt"]) == ("finished", 2)
    starts = [e for e in sweep.events(rid) if e["event"] == "start"]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[1]["step"] == preempted[0]["step"] > 0 and starts[1]["resumed"] is True
    assert starts[1]["env_attempt"] == "2"
    # the next agent's first run was the requeued one: it started before any other grid point
    runs = json.loads(run_sweepd("runs", sweep.id, "--json", env=sweep.env).stdout)
    second_starts = sorted((x["started_at"], x["id"]) for x in runs if x["id"] != rid)
    assert all(run["started_at"] < s for s, _ in second_starts) and len(runs) == 3


def test_exit_0_while_preempting_is_finished_and_never_run_again(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 60}\n  mode: {value: exit0}\n")
    rid = preempt(sweep)
    run = sweep.run(rid)
    assert (run["state"], run["exit_code"]) == ("finished", 0)
    assert r.llen(keys.rq_queue(sweep.id)) == 0
    assert finish(sweep.agent()) == 0  # the sweep is complete: nothing runs again
    assert [e["event"] for e in sweep.events(rid)] == ["start", "preempted"]


def test_mark_preempting_then_a_non_zero_exit_is_requeued(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 5}\n  mode: {value: mark}\n")
    assert finish(sweep.agent()) == 0
    (rid,) = [p.stem for p in sweep.out.glob("*.jsonl")]
    run = sweep.run(rid)
    assert (run["state"], run["attempt"], run["requeues"]) == ("finished", 2, 1)
    assert [e["event"] for e in sweep.events(rid)] == ["start", "marked", "start", "done"]
    status = sweep.status()
    assert status["recent_events"][0]["reason"] == "child-marked"


def test_a_grace_period_that_runs_out_kills_the_tree_and_still_requeues(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 1000}\n  mode: {value: stubborn}\n")
    agent = sweep.agent("--grace", "1")
    rid, pid = sweep.ready()[0]
    grandchild = int(next(e for e in sweep.events(rid) if e["event"] == "grandchild")["pid"])  # type: ignore[call-overload]
    agent.send_signal(signal.SIGTERM)
    assert finish(agent) == 0
    assert not psutil.pid_exists(pid)  # the agent reaped its child
    wait_until(lambda: not alive(grandchild), timeout=5)  # SIGKILLed too, though it left the group
    run = sweep.run(rid)
    assert (run["state"], run["attempt"], run["reason"]) == ("queued", 1, "signal")


def test_repeated_signals_neither_cut_the_checkpoint_short_nor_skip_the_requeue(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 100}\n  slow_checkpoint: {value: 1.0}\n")
    agent = sweep.agent()
    rid, _ = sweep.ready()[0]
    for signum in (signal.SIGTERM, signal.SIGCONT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        agent.send_signal(signum)
        time.sleep(0.05)  # spacing between the signals themselves, not a wait for a result
    assert finish(agent) == 0
    assert sweep.run(rid)["state"] == "queued"
    assert [e["event"] for e in sweep.events(rid)] == ["start", "preempted"]


def test_a_notice_signal_preempts_like_sigterm(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 100}\n")
    rid = preempt(sweep, "--notice-signal", "USR2", signum=signal.SIGUSR2)
    assert sweep.run(rid)["state"] == "queued"
    preempted = [e for e in sweep.events(rid) if e["event"] == "preempted"]
    assert preempted[0]["terms"] == 1  # the training process got SIGTERM, the default --child-signal


def test_sighup_preempts_like_sigterm(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    """A closed terminal or ssh session (SIGHUP) is a preemption: grace, requeue at the front, exit 0."""
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 100}\n  k: {values: [1, 2]}\n")
    rid = preempt(sweep, signum=signal.SIGHUP)
    run = sweep.run(rid)
    assert (run["state"], run["reason"]) == ("queued", "signal")
    assert r.lindex(keys.rq_queue(sweep.id), 0) == rid.encode()
    preempted = [e for e in sweep.events(rid) if e["event"] == "preempted"]
    assert preempted and preempted[0]["terms"] >= 1  # the training process was told, and checkpointed


def test_the_training_process_dies_with_a_sigkilled_agent(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 1000}\n")
    agent = sweep.agent()
    _rid, pid = sweep.ready()[0]
    agent.kill()
    agent.wait(10)
    wait_until(lambda: not alive(pid), timeout=2)  # the bound: gone within 2 s


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_cloud_notice_triggers_the_same_handoff(tmp_path: Path, cli_env: dict[str, str], cloud: str) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 1000}\n")
    standin: AwsImds | GcpMetadata | AzureScheduledEvents
    standin = {"aws": AwsImds, "gcp": GcpMetadata, "azure": AzureScheduledEvents}[cloud]()
    with standin:
        env = {f"SWEEPD_{cloud.upper()}_METADATA_URL": standin.url}
        agent = sweep.agent("--notices", cloud, "--notice-interval", "0.2", env=env)
        rid, _ = sweep.ready()[0]
        if isinstance(standin, AwsImds):
            standin.set_notice("terminate")
        elif isinstance(standin, GcpMetadata):
            standin.preempt()
        else:
            standin.add_event("other-vm-event", ["some-other-vm"])
            standin.add_event("our-event", [standin.vm_name])
        assert finish(agent) == 0
        run = sweep.run(rid)
        assert (run["state"], run["reason"]) == ("queued", f"{cloud}-notice")
        preempted = [e for e in sweep.events(rid) if e["event"] == "preempted"]
        assert preempted and preempted[0]["terms"] == 1
        if isinstance(standin, AzureScheduledEvents):
            assert standin.acknowledged == ["our-event"]  # acknowledged once the run was safe


def test_status_shows_preempting_and_requeued_runs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 100}\n  slow_checkpoint: {value: 30}\n")
    agent = sweep.agent("--grace", "60")
    rid, _ = sweep.ready()[0]
    agent.send_signal(signal.SIGTERM)
    wait_until(lambda: sweep.run(rid)["state"] == "preempting")
    status = sweep.status()
    assert status["counts"]["preempting"] == 1
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)


def test_a_platform_that_signals_the_training_process_too_still_gets_a_requeue(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """SLURM at the end of GraceTime and Kubernetes signal every process at once: the training
    process may exit before the agent has told it anything; the run must still be requeued."""
    sweep = SweepBench(tmp_path, cli_env, "  steps: {value: 100}\n")
    agent = sweep.agent()
    rid, pid = sweep.ready()[0]
    os.kill(pid, signal.SIGKILL)  # the training process dies first, as a platform may make it
    agent.send_signal(signal.SIGTERM)
    assert finish(agent) == 0
    run = sweep.run(rid)
    assert (run["state"], run["reason"]) == ("queued", "signal")
