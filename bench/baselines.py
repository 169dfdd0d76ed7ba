"""Baselines users would otherwise pick, measured in the same run where they install:

- rq: a bare ``SimpleWorker`` in burst mode on N no-op jobs (and on N jobs that each run ``true``
  as a sweep's run does), against N runs of ``true`` through one sweepd agent. And what a SIGTERM
  during a long job does to that job under ``rq worker`` (rq's default worker class): SIGTERM, a
  grace period, then SIGKILL of the whole tree (the machine going away), then rq's own clean-up
  of abandoned jobs as if its timeout had passed: is the job lost, failed or requeued, and where
  in the queue.
- Optuna: the trial loop (``study.optimize``) with its Redis journal storage on the same trivial
  objective (a random float; and one that runs ``true``), against the same sweepd figure. And what
  a SIGTERM during a trial does to that trial.

    python bench/baselines.py [--runs 200]

Optuna is a bench-only requirement (pip install optuna); without it those rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from typing import Any

import psutil
import redis
from common import (
    BENCH,
    Row,
    Section,
    bench_env,
    has,
    markdown,
    num,
    private_redis,
    progress,
    ratio,
    show,
    stop,
    wait_for,
)
from dispatch import through_agents

warnings.filterwarnings("ignore", message=".*is experimental.*")  # Optuna's JournalRedisBackend

GRACE = 3.0  # seconds from SIGTERM to the machine going away (a short notice; 1 s in --quick)


def child_env() -> dict[str, str]:
    """The environment of a baseline's process: this directory importable (bench/jobs.py)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(BENCH) + (os.pathsep + path if path else "")}


def helper(*args: str, timeout: float = 600) -> Any:
    """Run one of this file's helper modes in a process of its own; its JSON answer."""
    done = subprocess.run(
        [sys.executable, __file__, *args], env=child_env(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"baseline helper {args[0]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# rq ---------------------------------------------------------------------------------------------


def rq_burst(url: str, n: int, spawn: bool) -> dict[str, float]:
    """(helper) Enqueue n jobs, then time a SimpleWorker working them off in burst mode."""
    import jobs
    from rq import Queue, SimpleWorker

    r = redis.Redis.from_url(url)
    q = Queue(f"bench-{os.getpid()}", connection=r)
    with r.pipeline() as pipe:
        for _ in range(n):
            if spawn:
                q.enqueue(jobs.spawn, ["true"], pipeline=pipe)
            else:
                q.enqueue(jobs.noop, pipeline=pipe)
        pipe.execute()
    worker = SimpleWorker([q], connection=r)
    t0 = time.perf_counter()
    worker.work(burst=True)
    seconds = time.perf_counter() - t0
    done = q.finished_job_registry.get_job_count()
    return {"per_s": done / seconds, "done": done}


def rq_sigterm(url: str, grace: float) -> dict[str, Any]:
    """SIGTERM to ``rq worker`` during a long job, the grace, SIGKILL of the tree, rq's clean-up."""
    import jobs
    from rq import Queue
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    r = redis.Redis.from_url(url)
    q = Queue("bench-long", connection=r)
    long = q.enqueue(jobs.sleep, 600, job_id="long-job", job_timeout=-1)
    for i in range(2):
        q.enqueue(jobs.noop, job_id=f"next-{i}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--path", str(BENCH), "bench-long"],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: long.get_status(refresh=True) == "started", 60, "the long job to start", 0.05)
        time.sleep(0.5)
        worker.send_signal(signal.SIGTERM)
        time.sleep(grace)
        after_term = {
            "status": status(long),
            "worker_alive": worker.poll() is None,
            "queue": [j for j in q.get_job_ids()],
        }
        tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        for p in tree:
            p.send_signal(signal.SIGKILL)
        worker.wait(10)
        time.sleep(0.5)
        after_kill = {
            "status": status(long),
            "queue": q.get_job_ids(),
            "in_started_registry": "long-job" in str(StartedJobRegistry(queue=q).get_job_ids(cleanup=False)),
        }
        # rq's clean-up of abandoned jobs, as a later idle worker runs it once the job's
        # registry entry has expired (worker TTL; at most every 10 minutes): as of a day later
        StartedJobRegistry(queue=q).cleanup(timestamp=time.time() + 86_400)
        job = Job.fetch("long-job", connection=r)
        after_cleanup = {
            "status": status(job),
            "queue": q.get_job_ids(),
            "in_failed_registry": "long-job" in q.failed_job_registry.get_job_ids(),
        }
        return {"after_term": after_term, "after_kill": after_kill, "after_cleanup": after_cleanup}
    finally:
        stop([worker])


def status(job: Any) -> str:
    got = job.get_status(refresh=True)
    return str(getattr(got, "value", got))


def describe_rq(outcome: dict[str, Any]) -> str:
    t, k, c = outcome["after_term"], outcome["after_kill"], outcome["after_cleanup"]
    pos = "not in the queue" if "long-job" not in c["queue"] else f"at position {c['queue'].index('long-job')}"
    return (
        f"SIGTERM: the job runs on (`{t['status']}`, warm shutdown), nothing requeued; machine gone: left "
        f"`{k['status']}` with no one running it{' (in the started registry)' if k['in_started_registry'] else ''}; "
        f"rq's clean-up after its timeout: `{c['status']}`"
        f"{' (failed registry)' if c['in_failed_registry'] else ''}, {pos}: lost, never requeued"
    )


# Optuna -----------------------------------------------------------------------------------------


def optuna_loop(url: str, n: int, spawn: bool) -> dict[str, float]:
    """(helper) Time study.optimize for n trials of a trivial objective on the Redis journal."""
    import jobs
    import optuna
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalRedisBackend(url))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if spawn:
            jobs.spawn(["true", f"--x={x}"])
        return x

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    seconds = time.perf_counter() - t0
    return {"per_s": n / seconds}


def optuna_trial_forever(url: str) -> None:
    """(helper) A study whose one trial sleeps: the process to SIGTERM."""
    import optuna
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalRedisBackend(url))
    study = optuna.create_study(storage=storage, study_name="bench-sigterm", load_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(600)
        return trial.suggest_float("x", 0.0, 1.0)

    study.optimize(objective, n_trials=1)


def optuna_sigterm(url: str) -> str:
    import optuna
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    proc = subprocess.Popen([sys.executable, __file__, "--optuna-trial-forever", url], env=child_env())
    try:
        storage = JournalStorage(JournalRedisBackend(url))

        def running() -> bool:
            try:
                study = optuna.load_study(study_name="bench-sigterm", storage=storage)
            except KeyError:
                return False
            return any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)

        wait_for(running, 60, "the Optuna trial to start", 0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        time.sleep(0.5)
        trials = optuna.load_study(study_name="bench-sigterm", storage=storage).trials
        states = ", ".join(t.state.name for t in trials)
        return (
            f"SIGTERM: the process exits at once; the trial is left `{states}` for good "
            "(the journal storage has no heartbeat), never retried"
        )
    finally:
        stop([proc])


# the benchmark ----------------------------------------------------------------------------------


def measure(quick: bool = False, runs: int | None = None, handoff_ms: float | None = None) -> Section:
    """Throughputs in turns (sweepd, rq, Optuna, sweepd again: sweepd's better round is kept, so
    a burst of other load cannot favour either side), then what a SIGTERM does. ``handoff_ms``:
    the median handoff, when handoff.py measured it in the same run."""
    n = runs or (20 if quick else 200)
    optuna = has("optuna")
    section = Section("baselines")
    detail: list[list[str]] = []
    with private_redis() as server:
        env = bench_env(server.url, server.work)
        progress("baselines: throughput, sweepd, rq and Optuna in turns")
        rates = [through_agents(server.url, env, n, 1, ["true"])[0]]
        noop = helper("--rq-burst", server.url, str(n), "noop")
        spawn = None if quick else helper("--rq-burst", server.url, str(n), "spawn")
        loop = helper("--optuna-loop", server.url, str(n), "noop") if optuna else None
        loop_spawn = None if quick or not optuna else helper("--optuna-loop", server.url, str(n), "spawn")
        if not quick:
            rates.append(through_agents(server.url, env, n, 1, ["true"])[0])
        ours = max(rates)
        mine = f"{num(ours)} (1 agent, `true`)"
        for label, got, what in (
            (f"{n} no-op jobs through rq's SimpleWorker (burst) vs {n} runs of `true`", noop, "rq, no-op in-process"),
            (f"{n} rq jobs that each run `true` (subprocess.run)", spawn, "rq SimpleWorker"),
            (f"{n} Optuna trials of a trivial objective (a random float), JournalRedisBackend", loop, "Optuna"),
            (f"{n} Optuna trials whose objective runs `true`", loop_spawn, "Optuna"),
        ):
            if got is None:
                continue
            section.rows.append(
                Row(f"throughput: {label}, per s", mine, f"{num(got['per_s'])} ({what})", ratio(ours, got["per_s"]))
            )
            detail.append([label, str(n), num(got["per_s"])])
        if not optuna:
            section.rows.append(
                Row("throughput vs Optuna", mine, "skipped: Optuna is not installed (pip install optuna)")
            )
        detail.append([f"sweepd, 1 agent, runs of `true` ({len(rates)} rounds, the better kept)", str(n), num(ours)])
        progress("baselines: rq worker under SIGTERM")
        outcome = helper("--rq-sigterm", server.url, str(1.0 if quick else GRACE))
        ours_text = "requeued at the head of its queue (same run id, attempt + 1)"
        if handoff_ms is not None:
            ours_text += f", {num(handoff_ms)} ms p50"
        section.rows.append(Row("SIGTERM during a long job: what becomes of it", ours_text, describe_rq(outcome)))
        if optuna and not quick:
            progress("baselines: Optuna under SIGTERM")
            section.rows.append(
                Row("SIGTERM during an Optuna trial: what becomes of it", ours_text, optuna_sigterm(server.url))
            )
    section.detail = markdown(detail, ["baseline", "jobs", "per second"])
    section.detail += "\n\nrq under SIGTERM (raw): `" + json.dumps(outcome) + "`"
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rq-burst", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--rq-sigterm", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--optuna-loop", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--optuna-trial-forever", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rq_burst:
        url, n, kind = args.rq_burst
        print(json.dumps(rq_burst(url, int(n), kind == "spawn")))
    elif args.rq_sigterm:
        print(json.dumps(rq_sigterm(args.rq_sigterm[0], float(args.rq_sigterm[1]))))
    elif args.optuna_loop:
        url, n, kind = args.optuna_loop
        print(json.dumps(optuna_loop(url, int(n), kind == "spawn")))
    elif args.optuna_trial_forever:
        optuna_trial_forever(args.optuna_trial_forever)
    else:
        show(measure(args.quick, None if args.quick else args.runs))


if __name__ == "__main__":
    main()
