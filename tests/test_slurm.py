"""The SLURM deployment on a real single-node cluster: deploy/slurm/sweepd-agent.sbatch, preempted.

The agent's job runs in the preemptible partition ``low``; a job in ``high`` that needs the whole node
preempts it. SLURM announces the preemption at the start of GraceTime, and the agent must hear it
then, checkpoint its run, requeue it at the front of the sweep's queue and stop, while the script
waits for SLURM to end the job (one that ends first is not requeued). SLURM requeues the job, and its
second start resumes that same run from its checkpoint and finishes the sweep.

Two cluster configurations, because SLURM signals differently in each (docs/deploy-slurm.md):

- ``relay``: no ``send_user_signal`` (SLURM's default). The preemption's SIGTERM goes to job steps
  only, never to the batch shell; the script's relay step passes it on to the agent.
- ``send_user_signal``: the ``--signal=B:USR2@...`` signal goes to the batch shell, the agent itself,
  at preemption.

A requeued job is eligible again only two minutes after it ended (its BeginTime); the test moves that
on with ``scontrol update StartTime=now``, as an operator could.

The last tests run a sweep whose command starts two ranks with ``srun``: the agent must signal that
step's tasks through SLURM (srun itself answers SIGTERM by killing them), end the step at the grace's
end, and leave no task behind a run it lost.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from slurm_cluster import SlurmCluster, clean_env, slurm_cluster
from support import ROOT, alive, run_sweepd
from sweepd.queue import keys

pytestmark = pytest.mark.slurm

SBATCH = ROOT / "deploy" / "slurm" / "sweepd-agent.sbatch"
TRAINER = ROOT / "tests" / "trainer.py"
GRACE_TIME = 10  # the partition's GraceTime: SLURM ends the preempted job this long (and KillWait) after its notice
AGENT_GRACE = 5  # the agent's --grace, below GraceTime
STEPS = 200  # about 0.05 s each: a run is part-way for ten seconds

# The sweep's program: records what SLURM told the run's process, then becomes the trainer.
WRAPPER = f"""\
import json, os, sys
with open(os.path.join(os.environ["OUT_DIR"], "slurm.jsonl"), "a") as fh:
    fh.write(json.dumps({{
        "run": os.environ["SWEEPD_RUN_ID"],
        "attempt": int(os.environ["SWEEPD_ATTEMPT"]),
        "job": os.environ.get("SLURM_JOB_ID"),
        "restart_count": os.environ.get("SLURM_RESTART_COUNT", "0"),
    }}) + "\\n")
os.execv(sys.executable, [sys.executable, {str(TRAINER)!r}, *sys.argv[1:]])
"""


@pytest.fixture(params=[False, True], ids=["relay", "send_user_signal"])
def cluster(request: pytest.FixtureRequest) -> Iterator[SlurmCluster]:
    with slurm_cluster(grace_time=GRACE_TIME, send_user_signal=request.param) as running:
        yield running


def test_a_preempted_agent_job_requeues_its_run_and_resumes_it_when_slurm_requeues_the_job(
    cluster: SlurmCluster, cli_env: dict[str, str], r: redis.Redis, tmp_path: Path
) -> None:
    with cluster.explained():
        preempt_and_resume(cluster, cli_env, r, tmp_path)


def preempt_and_resume(cluster: SlurmCluster, cli_env: dict[str, str], r: redis.Redis, tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    env = job_env(cli_env, tmp_path, cluster)
    program = tmp_path / "wrapper.py"
    program.write_text(WRAPPER)
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"method: grid\nprogram: {program}\nparameters:\n  steps: {{value: {STEPS}}}\n  k: {{values: [1, 2]}}\n"
    )
    created = run_sweepd("sweep", "create", str(config), "--quiet", env=env)
    assert created.returncode == 0, created.stderr
    sid = created.stdout.strip()
    cluster.logs.append(work / "sweepd-agent-*.out")

    # The agent's job: the deploy script as it is; partition, size, sweep and the env file chosen here.
    size = [f"--cpus-per-task={cluster.cpus}", "--mem=512M"]
    job = cluster.sbatch("--partition=low", "--array=1", *size, str(SBATCH), sid, env=env, cwd=work) + "_1"
    ready = cluster.wait_for(lambda: next(out.glob("*.ready"), None), 90, "no run got part-way")
    assert isinstance(ready, Path)
    rid = ready.stem
    assert cluster.job(job)["JobState"] == "RUNNING"

    # A job that needs the whole node, in the partition that preempts.
    high = cluster.sbatch("--partition=high", *size, "--job-name=urgent", "--wrap", "sleep 5", env=env, cwd=work)
    submitted = time.monotonic()

    # The agent heard it in time: the run was marked preempting, checkpointed, and put back at the
    # front of the queue, all while the agent's job is still down (requeued, waiting).
    cluster.wait_for(lambda: run_record(env, sid, rid)["state"] == "queued", 60, "the run was not requeued")
    took = time.monotonic() - submitted
    assert took < GRACE_TIME, f"the run was requeued {took:.1f} s after the urgent job: not at the notice"
    run = run_record(env, sid, rid)
    assert (run["attempt"], run["reason"], run["requeues"]) == (1, "signal", 1), run
    assert r.hget(keys.run(rid), "preempted_at"), "the run was never marked preempting"
    assert r.lindex(keys.rq_queue(sid), 0) == rid.encode(), "the run is not at the head of the queue"
    (preempted,) = [e for e in events(out, rid) if e["event"] == "preempted"]
    assert preempted["step"] > 0 and preempted["flag"] is True, preempted
    # One SIGTERM, the agent's: SLURM itself never signalled the training process.
    assert preempted["terms"] == 1, preempted

    # SLURM requeued the agent's job; once the urgent job is done, start it again.
    cluster.wait_for(lambda: cluster.job(job).get("Restarts") == "1", 60, "SLURM did not requeue the agent's job")
    cluster.wait_for(lambda: hurry(cluster, job), 90, "the requeued agent job did not start again")
    assert cluster.job(high)["JobState"] in ("RUNNING", "COMPLETING", "COMPLETED"), cluster.job(high)

    # The second start resumes the same run from its checkpoint, then finishes the sweep.
    cluster.wait_for(lambda: cluster.job(job).get("JobState") == "COMPLETED", 120, "the agent's job did not complete")
    status = json.loads(run_sweepd("status", sid, "--json", env=env).stdout)
    assert status["complete"] is True, status
    runs = {x["id"]: x for x in json.loads(run_sweepd("runs", sid, "--json", env=env).stdout)}
    assert len(runs) == 2 and all(x["state"] == "finished" for x in runs.values()), runs
    assert runs[rid]["attempt"] == 2
    starts = [e for e in events(out, rid) if e["event"] == "start"]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[1]["step"] == preempted["step"] and starts[1]["resumed"] is True, starts
    seen = {(x["run"], x["attempt"]): x for x in map(json.loads, (out / "slurm.jsonl").read_text().splitlines())}
    assert seen[(rid, 1)]["restart_count"] == "0" and seen[(rid, 2)]["restart_count"] == "1", seen
    assert seen[(rid, 1)]["job"] == seen[(rid, 2)]["job"], "the same SLURM job, requeued"

    # What SLURM and the agent said about it.
    final = cluster.job(job)
    assert (final["Restarts"], final["ExitCode"]) == ("1", "0:0"), final
    log = "".join(p.read_text() for p in work.glob("sweepd-agent-*.out"))
    assert "start 1 (requeued 0 times)" in log and "start 2 (requeued 1 times)" in log, log
    assert "waiting for SLURM to end the job" in log, log
    if not cluster.send_user_signal:
        assert "SIGTERM to the job steps (a preemption notice): passed on to the agent" in log, log
    signals = [e["signal"] for e in agent_log(log) if e.get("event") == "signal received"]
    expected = "SIGUSR2" if cluster.send_user_signal else "SIGTERM"
    assert signals[:1] == [expected], f"the agent heard {signals}, not {expected} first\n{log}"


def job_env(cli_env: dict[str, str], tmp_path: Path, cluster: SlurmCluster, agent_args: str = "") -> dict[str, str]:
    """The submitter's environment (sbatch passes it on): `sweepd` on PATH, the private env file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sweepd"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m sweepd.agent "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        f"SWEEPD_REDIS_URL={cli_env['SWEEPD_REDIS_URL']}\n"
        f"SWEEPD_AGENT_ARGS=--grace {AGENT_GRACE} --notices none {agent_args}\n"
    )
    env_file.chmod(0o600)
    env = {**clean_env(cli_env), **cluster.env}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]]),
        SWEEPD_ENV_FILE=str(env_file),
        OUT_DIR=str(tmp_path / "out"),
        SWEEPD_CHECKPOINT_ROOT=str(tmp_path / "ckpt"),
    )
    return env


def hurry(cluster: SlurmCluster, job: str) -> bool:
    """True once the requeued job runs again; moves its two-minute BeginTime on to now."""
    info = cluster.job(job)
    if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime":
        cluster.run("scontrol", "update", f"jobid={job}", "StartTime=now")
    # Not COMPLETING: the preempted start is COMPLETING too, for a moment after its requeue.
    return info.get("Restarts") == "1" and info.get("JobState") in ("RUNNING", "COMPLETED")


def run_record(env: dict[str, str], sid: str, rid: str) -> dict[str, Any]:
    runs = json.loads(run_sweepd("runs", sid, "--json", env=env).stdout)
    return dict(next(x for x in runs if x["id"] == rid))


def events(out: Path, rid: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / f"{rid}.jsonl").read_text().splitlines()]


def agent_log(text: str) -> list[dict[str, Any]]:
    """The agent's JSON log lines among the job's output."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


# A run that launches its ranks itself: two tasks of one `srun` step inside the agent's allocation.
# Each task counts steps (0.05 s each) from its rank's checkpoint; on the child signal (SIGTERM) it
# saves for a second and exits 1 (interrupted), unless it is the rank told to ignore the signal.
# Attempt 2 runs 20 more steps and finishes.
RANKS = """\
import json, os, signal, sys, time
from sweepd.agent import run
procid = os.environ["SLURM_PROCID"]
ignore = run.params.get("ignore_rank") == int(procid)
ckpt = os.path.join(run.checkpoint_dir, f"rank-{procid}.json")
start = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
name = os.path.join(os.environ["OUT_DIR"], f"task-{run.run_id}-{run.attempt}-{procid}.jsonl")
got = []
def note(**fields):
    with open(name, "a") as fh:
        fh.write(json.dumps({"t": time.time(), "pid": os.getpid(), **fields}) + "\\n")
signal.signal(signal.SIGTERM, lambda signum, frame: got.append((signum, time.time(), step)))
step = start
note(event="start", step=start, slurm_step=os.environ.get("SLURM_STEP_ID"), params=run.params,
     file_params=json.load(open(os.environ["SWEEPD_PARAMS_FILE"])))
end = start + 20 if run.attempt > 1 else 10**9
while step < end:
    if got and not ignore:
        note(event="signal", signals=[g[0] for g in got], at=got[0][1], step=got[0][2])
        time.sleep(1.0)  # the checkpoint takes a second
        with open(ckpt + ".tmp", "w") as fh:
            json.dump({"step": step}, fh)
        os.replace(ckpt + ".tmp", ckpt)
        note(event="saved", step=step, signals=[g[0] for g in got])
        sys.exit(1)  # interrupted: the run goes back to the queue
    if got and ignore and None not in got:  # noted once, however many signals came at once
        note(event="ignored", at=got[0][1], step=got[0][2])
        got.append(None)
    if step == start + 10:
        note(event="running", step=step)
    time.sleep(0.05)
    step += 1
run.log({"procid": int(procid), "step": step})
"""


@pytest.fixture
def relay_cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster(grace_time=GRACE_TIME, send_user_signal=False) as running:
        yield running


class Ranks:
    """A sweep of one run whose command is `srun --ntasks=2 ... ranks.py`, its agent's job submitted."""

    def __init__(
        self, cluster: SlurmCluster, cli_env: dict[str, str], tmp_path: Path, agent_args: str = "", **params: int
    ) -> None:
        self.cluster, self.out, self.work = cluster, tmp_path / "out", tmp_path / "work"
        self.out.mkdir()
        self.work.mkdir()
        self.env = env = job_env(cli_env, tmp_path, cluster, agent_args)
        program = tmp_path / "ranks.py"
        program.write_text(RANKS)
        command = ["srun", "--ntasks=2", "--cpus-per-task=1", "--quiet", sys.executable, "${program}", "${args}"]
        space = {"k": {"value": 7}, **{name: {"value": value} for name, value in params.items()}}
        config = tmp_path / "sweep.yaml"
        config.write_text(
            json.dumps({"method": "grid", "program": str(program), "command": command, "parameters": space})
        )
        created = run_sweepd("sweep", "create", str(config), "--quiet", env=env)
        assert created.returncode == 0, created.stderr
        self.sid = created.stdout.strip()
        cluster.logs.append(self.work / "sweepd-agent-*.out")
        self.size = [f"--cpus-per-task={cluster.cpus}", "--mem=512M"]
        self.job = cluster.sbatch(
            "--partition=low", "--array=1", *self.size, str(SBATCH), self.sid, env=env, cwd=self.work
        )
        self.job += "_1"

    def notes(self, attempt: int) -> dict[str, list[dict[str, Any]]]:
        """Each rank's notes ("0", "1") in an attempt."""
        found = {}
        for path in sorted(self.out.glob(f"task-*-{attempt}-*.jsonl")):
            found[path.stem.rsplit("-", 1)[1]] = [json.loads(line) for line in path.read_text().splitlines()]
        return found

    def event(self, attempt: int, rank: str, name: str) -> dict[str, Any] | None:
        return next((e for e in self.notes(attempt).get(rank, []) if e["event"] == name), None)

    def running(self) -> str:
        """The run id, once both tasks of attempt 1 are part-way."""
        self.cluster.wait_for(
            lambda: all(self.event(1, rank, "running") for rank in "01"), 90, "the run's two tasks did not both run"
        )
        starts = [self.event(1, rank, "start") for rank in "01"]
        assert all(s and s["params"] == s["file_params"] and s["params"]["k"] == 7 for s in starts), starts
        assert len({s["slurm_step"] for s in starts if s}) == 1, starts  # one step, two tasks
        return next(self.out.glob("task-*-1-0.jsonl")).stem[len("task-") : -len("-1-0")]

    def preempt(self) -> tuple[str, float]:
        """Once both tasks of attempt 1 are part-way, the urgent job; the run id and when it was submitted."""
        rid = self.running()
        at = time.time()
        self.cluster.sbatch(
            "--partition=high", *self.size, "--job-name=urgent", "--wrap", "sleep 5", env=self.env, cwd=self.work
        )
        return rid, at

    def agent_log(self) -> list[dict[str, Any]]:
        return agent_log("".join(p.read_text() for p in self.work.glob("sweepd-agent-*.out")))


def test_a_run_whose_srun_step_has_two_tasks_gets_the_child_signal_in_every_task_and_resumes(
    cluster: SlurmCluster, cli_env: dict[str, str], r: redis.Redis, tmp_path: Path
) -> None:
    with cluster.explained():
        ranks = Ranks(cluster, cli_env, tmp_path)
        rid, urgent_at = ranks.preempt()
        sid, env = ranks.sid, ranks.env
        cluster.wait_for(lambda: run_record(env, sid, rid)["state"] == "queued", 60, "the run was not requeued")
        requeued_at = time.time()
        run = run_record(env, sid, rid)
        assert (run["attempt"], run["reason"]) == (1, "signal"), run
        assert r.lindex(keys.rq_queue(sid), 0) == rid.encode(), "the run is not at the head of the queue"

        # Both tasks got the child signal, saved for a second the step they were at, and exited.
        ckpt = tmp_path / "ckpt"
        for rank in "01":
            got, saved = ranks.event(1, rank, "signal"), ranks.event(1, rank, "saved")
            assert got and saved, ranks.notes(1)
            assert (
                got["signals"][0] == signal.SIGTERM
                and got["step"] <= saved["step"] <= got["step"] + 1
                and got["step"] > 10
            ), (got, saved)
            saved_file = json.loads(next(ckpt.rglob(f"rank-{rank}.json")).read_text())
            assert saved_file == {"step": saved["step"]}
            if cluster.send_user_signal:  # SLURM gave the step nothing: the agent's signal alone, once
                assert saved["signals"] == [signal.SIGTERM], saved
        # No task outlives its run.
        pids = [ranks.notes(1)[rank][0]["pid"] for rank in "01"]
        cluster.wait_for(lambda: not any(alive(pid) for pid in pids), 30, "a task outlived its run")
        lines = ranks.agent_log()
        told = [e for e in lines if e.get("event") == "child signal sent to the run's SLURM steps"]
        assert told and told[0]["signal"] == "SIGTERM" and len(told[0]["steps"]) == 1, lines
        assert not any(e.get("event") == "grace period over: killing the process tree" for e in lines), lines
        (requeue,) = [e for e in lines if e.get("event") == "run requeued at the front"]
        assert requeue["exit_code"] == 1, requeue  # the tasks' own exit, not srun's kill (137)
        signalled = min(ranks.event(1, rank, "signal")["at"] for rank in "01")  # type: ignore[index]
        saved_at = max(ranks.event(1, rank, "saved")["t"] for rank in "01")  # type: ignore[index]
        print(
            f"\n[{'send_user_signal' if cluster.send_user_signal else 'relay'}] urgent job -> tasks signalled "
            f"{signalled - urgent_at:.2f} s; saved {saved_at - signalled:.2f} s after; run requeued "
            f"{requeued_at - urgent_at:.2f} s after the urgent job (polled)"
        )

        # SLURM requeues the agent's job; attempt 2's tasks resume each from its rank's checkpoint.
        job = ranks.job
        cluster.wait_for(lambda: cluster.job(job).get("Restarts") == "1", 60, "SLURM did not requeue the agent's job")
        cluster.wait_for(lambda: hurry(cluster, job), 90, "the requeued agent job did not start again")
        cluster.wait_for(
            lambda: cluster.job(job).get("JobState") == "COMPLETED", 120, "the agent's job did not complete"
        )
        for rank in "01":
            start = ranks.event(2, rank, "start")
            assert start and start["step"] == ranks.event(1, rank, "saved")["step"], ranks.notes(2)  # type: ignore[index]
        runs = json.loads(run_sweepd("runs", sid, "--json", env=env).stdout)
        assert [(x["id"], x["state"], x["attempt"]) for x in runs] == [(rid, "finished", 2)]
        assert runs[0]["summary"].get("procid") == 0  # rank 0's log() alone was recorded


def test_a_task_that_ignores_the_child_signal_is_killed_at_the_graces_end_and_the_run_requeued(
    relay_cluster: SlurmCluster, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = relay_cluster
    with cluster.explained():
        ranks = Ranks(cluster, cli_env, tmp_path, ignore_rank=1)
        rid, _ = ranks.preempt()
        cluster.wait_for(lambda: run_record(ranks.env, ranks.sid, rid)["state"] == "queued", 60, "not requeued")
        requeued_at = time.time()
        run = run_record(ranks.env, ranks.sid, rid)
        assert (run["attempt"], run["reason"]) == (1, "signal"), run
        assert ranks.event(1, "0", "saved"), ranks.notes(1)  # rank 0 saved and exited
        ignored = ranks.event(1, "1", "ignored")
        assert ignored and not ranks.event(1, "1", "saved"), ranks.notes(1)
        # Killed at the grace's end, not before: the run was requeued only then.
        waited = requeued_at - ignored["at"]
        assert waited >= AGENT_GRACE - 0.5, f"requeued {waited:.2f} s after the signal, within the grace"
        pids = [ranks.notes(1)[rank][0]["pid"] for rank in "01"]
        cluster.wait_for(lambda: not any(alive(pid) for pid in pids), 30, "a task outlived its run")
        lines = ranks.agent_log()
        assert any(e.get("event") == "grace period over: killing the process tree" for e in lines), lines
        (ended,) = [e for e in lines if e.get("event") == "the run's SLURM steps ended"]
        (requeue,) = [e for e in lines if e.get("event") == "run requeued at the front"]
        assert requeue["reason"] == "signal" and requeue["exit_code"] != 0, requeue
        print(
            f"\nignoring task: requeued {waited:.2f} s after its signal (grace {AGENT_GRACE} s), steps {ended['steps']}"
        )


def test_a_run_lost_by_its_agent_has_no_task_left(
    relay_cluster: SlurmCluster, cli_env: dict[str, str], r: redis.Redis, tmp_path: Path
) -> None:
    """The guard's kill (the run is no longer the agent's: another token holds it) ends the run's tree
    and its steps, told nothing: no task of a lost run goes on, and the SLURM commands the agent runs
    meanwhile are its own, never taken for the run's leftovers."""
    cluster = relay_cluster
    with cluster.explained():
        ranks = Ranks(cluster, cli_env, tmp_path, agent_args="--heartbeat 1")
        rid = ranks.running()
        r.hset(keys.run(rid), "token", "someone-else")
        pids = [ranks.notes(1)[rank][0]["pid"] for rank in "01"]
        cluster.wait_for(lambda: not any(alive(pid) for pid in pids), 30, "a task outlived its lost run")
        assert not any(ranks.event(1, rank, "signal") for rank in "01"), ranks.notes(1)  # killed, not told
        lines = ranks.agent_log()
        assert any(e.get("event", "").startswith("the run's lease could not be renewed") for e in lines), lines
        failed = [e for e in lines if e.get("event") == "SLURM command failed" and e.get("level") == "warning"]
        assert not failed, failed
