"""The chaos test: agents preempted, killed and frozen (SIGSTOP, longer than a lease) at random, Redis
restarted, and still every grid point finishes, no run is executed twice at once, and every resumed
attempt starts from its checkpoint.

The schedule is seeded (``SWEEPD_CHAOS_SEED``, default 1) so a failure can be replayed:
``SWEEPD_CHAOS_SEED=7 python -m pytest tests/test_chaos.py -s``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import psutil
import redis

from support import ROOT, RedisServer, run_sweepd, sweepd_cmd
from sweepd.queue import keys

TRAINER = ROOT / "tests" / "trainer.py"
AGENTS = 4
CHAOS_SECONDS = 35.0
DEADLINE_SECONDS = 100.0


class Fleet:
    """Agents as systemd's Restart= would keep them: whatever exits is started again."""

    def __init__(self, sid: str, env: dict[str, str], cwd: Path) -> None:
        self.sid, self.env, self.cwd = sid, env, cwd
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.cwd / f"agent-{len(self.procs)}.log", "wb") as log:  # kept for a failure's story
            proc = subprocess.Popen(
                sweepd_cmd("agent", self.sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "2"),
                env=self.env,
                cwd=self.cwd,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def top_up(self) -> None:
        for _ in range(AGENTS - len(self.live())):
            self.start()

    def stop_all(self) -> None:
        for p in self.live():
            p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(10)


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait(10)


def held_run(r: redis.Redis, sid: str, pid: int) -> str | None:
    """The run the agent with this pid holds, from its heartbeat record."""
    for aid in r.zrange(keys.sweep_agents(sid), 0, -1):
        info = r.hgetall(keys.agent(aid.decode()))
        if info.get(b"pid") == str(pid).encode() and info.get(b"run_id"):
            return str(info[b"run_id"].decode())
    return None


def story(tmp_path: Path, runs: list[dict[str, object]], events: dict[str, list[dict[str, object]]]) -> str:
    """What happened to these runs: their records, the trainer's events, the agents' log lines."""
    lines = []
    for run in runs:
        rid = str(run["id"])
        lines += [json.dumps(run), *map(json.dumps, events.get(rid, []))]
        for log in sorted(tmp_path.glob("agent-*.log")):
            lines += [f"{log.name}: {line}" for line in log.read_text().splitlines() if rid in line]
    return "\n".join(lines)


def test_chaos(tmp_path: Path) -> None:
    seed = int(os.environ.get("SWEEPD_CHAOS_SEED", "1"))
    rng = random.Random(seed)
    (tmp_path / "redis").mkdir()
    (tmp_path / "out").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    env = {
        **os.environ,
        "SWEEPD_REDIS_URL": server.url,
        "SWEEPD_HOME": str(tmp_path / "home"),
        "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"),
        "OUT_DIR": str(tmp_path / "out"),
    }
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"method: grid\nprogram: {TRAINER}\nparameters:\n  steps: {{value: 40}}\n  k: {{values: {list(range(24))}}}\n"
    )
    sid = run_sweepd("sweep", "create", str(config), "--quiet", env=env).stdout.strip()
    r = redis.Redis.from_url(server.url)
    fleet = Fleet(sid, env, tmp_path)
    counts = {"preemptions": 0, "kills": 0, "freezes": 0, "redis_restarts": 0}
    frozen: list[tuple[float, subprocess.Popen[bytes]]] = []  # (when to thaw, agent)
    kills: list[tuple[float, str]] = []  # (when, run held by the killed agent)
    restart_at = rng.uniform(3.0, 10.0)  # early enough that the sweep is still running
    started = time.monotonic()
    try:
        fleet.top_up()
        while time.monotonic() - started < DEADLINE_SECONDS:
            elapsed = time.monotonic() - started
            for thaw in [f for f in frozen if f[0] <= time.monotonic()]:
                frozen.remove(thaw)
                thaw[1].send_signal(signal.SIGCONT)
            complete = json.loads(run_sweepd("status", sid, "--json", env=env).stdout)["complete"]
            if complete and not fleet.live():
                break
            if elapsed < CHAOS_SECONDS and not complete:
                if counts["redis_restarts"] == 0 and elapsed >= restart_at:
                    server.stop()
                    time.sleep(rng.uniform(0.2, 1.0))  # Redis is down for a moment
                    server.start()
                    counts["redis_restarts"] += 1
                elif fleet.live():
                    victim = rng.choice(fleet.live())
                    fault = rng.random()
                    if any(victim is f[1] for f in frozen):
                        pass  # frozen already: it thaws on its own schedule
                    elif fault < 0.4:
                        victim.send_signal(signal.SIGTERM)  # a preemption notice
                        counts["preemptions"] += 1
                    elif fault < 0.65:
                        victim.send_signal(signal.SIGSTOP)  # frozen longer than its lease (1.5 s), then thawed
                        frozen.append((time.monotonic() + rng.uniform(2.0, 4.0), victim))
                        counts["freezes"] += 1
                    else:
                        rid = held_run(r, sid, victim.pid)
                        kill_tree(victim)  # the machine vanished
                        counts["kills"] += 1
                        if rid:
                            kills.append((time.time(), rid))
            if not complete:
                fleet.top_up()
            time.sleep(rng.uniform(0.3, 1.2))
    finally:
        for _, agent in frozen:
            agent.send_signal(signal.SIGCONT)
        fleet.stop_all()
        server_url = server.url
    try:
        runs = json.loads(run_sweepd("runs", sid, "--json", env={**env, "SWEEPD_REDIS_URL": server_url}).stdout)
        events = {
            p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in (tmp_path / "out").glob("*.jsonl")
        }
        points = sorted(run["params"]["k"] for run in runs)
        assert points == list(range(24)), "every grid point has exactly one run"
        unfinished = [r for r in runs if r["state"] != "finished"]
        assert not unfinished, story(tmp_path, unfinished, events)
        assert r.llen(keys.rq_queue(sid)) == 0 and r.zcard(keys.sweep_held(sid)) == 0
        worst_recovery = 0.0
        for run in runs:
            seen = events[run["id"]]
            overlap = [e for e in seen if e["event"] == "overlap"]
            assert not overlap, f"two executions of {run['id']} at once\n" + story(tmp_path, [run], events)
            starts = [e for e in seen if e["event"] == "start"]
            attempts = [e["attempt"] for e in starts]
            assert attempts == sorted(set(attempts)) and attempts[-1] == run["attempt"], (run["id"], attempts)
            for before, after in itertools.pairwise(starts):
                assert after["step"] >= before["step"], f"{run['id']} went back in its checkpoints"
            for i, e in enumerate(seen):
                if e["event"] == "preempted":
                    nxt = next((x for x in seen[i + 1 :] if x["event"] == "start"), None)
                    assert nxt is None or nxt["step"] == e["step"], f"{run['id']} did not resume from its checkpoint"
        for when, rid in kills:
            nxt = [e["t"] for e in events.get(rid, []) if e["event"] == "start" and e["t"] > when]
            if nxt:
                worst_recovery = max(worst_recovery, min(nxt) - when)
        total_attempts = sum(run["attempt"] for run in runs)
        print(
            f"chaos seed={seed}: runs={len(runs)} attempts={total_attempts} preemptions={counts['preemptions']} "
            f"kills={counts['kills']} freezes={counts['freezes']} redis_restarts={counts['redis_restarts']} "
            f"worst_recovery={worst_recovery:.2f}s elapsed={time.monotonic() - started:.1f}s"
        )
    finally:
        server.stop()
