"""Pool agents with real processes, signals and Redis: ``sweepd agent --pool`` serves the pool's
sweeps in its order (priority, a requeued run first, weights), never exits because a sweep ended,
and an idle one is woken by a token, not by polling. The order itself: test_pools.py."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from support import sweepd_cmd, wait_until
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.store import Store

PROGRAM = """
import json, os, pathlib, time
out = pathlib.Path(os.environ["OUT_DIR"])
rid, attempt = os.environ["SWEEPD_RUN_ID"], int(os.environ["SWEEPD_ATTEMPT"])
with open(os.environ["SWEEPD_PARAMS_FILE"]) as fh:
    params = json.load(fh)
note = {"run": rid, "attempt": attempt, "sweep": os.environ["SWEEPD_SWEEP_ID"], "params": params,
        "start": time.time(), "agent": os.getppid()}
def put(name, note):
    (out / (name + ".part")).write_text(json.dumps(note))
    os.replace(out / (name + ".part"), out / name)
put(f"{rid}-{attempt}.start", note)
while os.path.exists(os.environ.get("HOLD", "/nonexistent")):
    time.sleep(0.02)
time.sleep(float(os.environ.get("SLEEP", "0")))
note["end"] = time.time()
put(f"{rid}-{attempt}.end", note)
"""


class Pool:
    """Sweeps of PROGRAM in pool ``p`` of the test's Redis, and pool agents on it."""

    def __init__(self, tmp_path: Path, env: dict[str, str], store: Store, **extra: str) -> None:
        self.dir, self.store, self.out = tmp_path, store, tmp_path / "out"
        self.out.mkdir()
        (tmp_path / "prog.py").write_text(PROGRAM)
        self.env = {**env, "OUT_DIR": str(self.out), "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"), **extra}
        self.env.pop("CUDA_VISIBLE_DEVICES", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def sweep(self, n: int, priority: int = 0, weight: float = 1) -> str:
        config = {
            "program": str(self.dir / "prog.py"),
            "method": "grid",
            "parameters": {"a": {"values": list(range(n))}},
        }
        sid = self.store.create_sweep(validate(config))
        self.store.set_pool(sid, pool="p", priority=priority, weight=weight)
        return sid

    def agent(self, *extra: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            sweepd_cmd("agent", "--pool", "p", "--notices", "none", *extra),
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def notes(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.out.glob(f"*.{kind}"))]

    def finished(self, sid: str) -> int:
        return sum(1 for n in self.notes("end") if n["sweep"] == sid)

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def pool(tmp_path: Path, cli_env: dict[str, str], store: Store) -> Iterator[Pool]:
    made = Pool(tmp_path, cli_env, store)
    yield made
    made.close()


def test_the_high_priority_sweep_has_every_slot_until_it_runs_out(pool: Pool) -> None:
    pool.env["SLEEP"] = "1.0"
    high, low = pool.sweep(6, priority=10), pool.sweep(6, priority=1)
    agent = pool.agent("--gpus", "0,1,2", "--heartbeat", "0.5")
    wait_until(lambda: pool.finished(high) + pool.finished(low) == 12, timeout=120)
    assert agent.poll() is None  # a pool agent does not exit because its sweeps are done
    assert pool.stop(agent) == 0
    starts = pool.notes("start")
    assert {n["agent"] for n in starts} == {agent.pid}  # one agent, never restarted
    claimed = {n["run"]: pool.store.run(n["run"]).started_at or 0 for n in starts}  # Redis's clock
    first_low = min(claimed[n["run"]] for n in starts if n["sweep"] == low)
    assert max(claimed[n["run"]] for n in starts if n["sweep"] == high) <= first_low  # none while high had work
    ends = pool.notes("end")
    lows = sorted((n["start"], n["end"]) for n in ends if n["sweep"] == low)
    assert any(sum(1 for s, e in lows if s <= t < e) == 3 for t, _ in lows)  # then all 3 slots went to low


def test_weights_3_to_1_split_the_held_runs_3_to_1(pool: Pool, r: redis.Redis) -> None:
    pool.env["SLEEP"] = "0.2"
    heavy, light = pool.sweep(36, weight=3), pool.sweep(36, weight=1)
    samples: list[tuple[float, int, int, bool]] = []  # when, held by each, both still had points
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with r.pipeline(transaction=False) as pipe:
                pipe.zcard(keys.sweep_held(heavy))
                pipe.zcard(keys.sweep_held(light))
                pipe.hget(keys.sweep(heavy), "next_index")
                pipe.hget(keys.sweep(light), "next_index")
                a, b, x, y = pipe.execute()
            samples.append((time.monotonic(), a, b, int(x) < 36 and int(y) < 36))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    agent = pool.agent("--gpus", "0,1,2,3", "--heartbeat", "0.5")
    try:
        wait_until(lambda: pool.finished(heavy) == 36, timeout=120)
    finally:
        done.set()
        sampler.join()
    assert pool.stop(agent) == 0
    first = next(t for t, a, b, _ in samples if a + b)
    during = [(a, b) for t, a, b, both in samples if t > first + 1 and both]  # the heavy one runs out first
    assert len(during) > 50, "too few samples while both sweeps had points"
    # The held runs split 3:1 within one slot (a slot just freed and not yet refilled included).
    assert all(abs(a - 0.75 * (a + b)) <= 1 and abs(b - 0.25 * (a + b)) <= 1 for a, b in during), sorted(set(during))
    assert sum(a for a, _ in during) > 2.5 * sum(b for _, b in during)


def test_a_preempted_run_goes_first_and_every_point_runs_once_with_agents_racing(pool: Pool) -> None:
    hold = pool.dir / "hold"
    hold.touch()
    pool.env["HOLD"] = str(hold)
    one, two = pool.sweep(8), pool.sweep(8)
    agents = [pool.agent("--heartbeat", "0.5", "--grace", "5") for _ in range(3)]
    wait_until(lambda: len(pool.notes("start")) == 3, timeout=60)
    victim = next(a for a in agents if a.pid == pool.notes("start")[0]["agent"])
    preempted = pool.notes("start")[0]["run"]
    assert pool.stop(victim) == 0  # preempted: its run requeued at the front, the agent exits 0
    assert pool.store.run(preempted).state == "queued"
    requeued_at = pool.store.now_ms()
    hold.unlink()
    wait_until(lambda: pool.finished(one) + pool.finished(two) == 16, timeout=120)
    ended = pool.notes("end")
    wait_until(lambda: all(pool.store.run(n["run"]).state == "finished" for n in ended), timeout=30)
    # Taken before any new run (claim times, on Redis's clock: processes may start in another order).
    again = pool.store.run(preempted).started_at or 0
    new = [pool.store.run(n["run"]).started_at or 0 for n in ended if n["attempt"] == 1]
    assert again <= min(t for t in new if t > requeued_at)
    for sid in (one, two):
        points = sorted(n["params"]["a"] for n in ended if n["sweep"] == sid)
        assert points == list(range(8))  # every grid point exactly once
    runs = [pool.store.run(n["run"]) for n in ended]
    assert {r.state for r in runs} == {"finished"} and sorted(r.attempt for r in runs) == [1] * 15 + [2]
    for agent in agents:
        if agent is not victim:
            assert pool.stop(agent) == 0


def commands(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def test_a_sweep_created_while_pool_agents_idle_is_picked_up_at_once_without_polling(
    pool: Pool, r: redis.Redis
) -> None:
    agents = [pool.agent() for _ in range(2)]  # the default heartbeat: 10 s
    wait_until(lambda: r.zcard(keys.pool_agents("p")) == 2, timeout=60)
    time.sleep(1.0)  # past their start-up: each is in its BLPOP now
    before, t0 = commands(r), time.monotonic()
    time.sleep(3.0)
    idle = (commands(r) - before) / (time.monotonic() - t0)
    assert idle < 2 * 0.5, f"idle pool agents cost {idle:.2f} commands/s"
    listed = subprocess.run(sweepd_cmd("agents", "--json"), env=pool.env, capture_output=True, text=True, timeout=60)
    rows = json.loads(listed.stdout)
    assert sorted((a["pool"], a["alive"], int(a["pid"])) for a in rows) == sorted(("p", True, a.pid) for a in agents)
    sid = pool.sweep(2)
    created = pool.store.now_ms()
    wait_until(lambda: len(pool.notes("start")) == 2, timeout=30)
    started = sorted(pool.store.run(n["run"]).started_at or 0 for n in pool.notes("start"))
    assert started[0] - created < 1000, f"picked up {started[0] - created} ms after the sweep was created"
    assert {n["sweep"] for n in pool.notes("start")} == {sid}
    for agent in agents:
        assert pool.stop(agent) == 0


def test_a_sweep_agent_ignores_pools(pool: Pool) -> None:
    """A sweep in no pool is worked exactly as today: its agent exits when it is complete."""
    sid = pool.store.create_sweep(
        validate({"program": str(pool.dir / "prog.py"), "method": "grid", "parameters": {"a": {"values": [1, 2]}}})
    )
    done = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none"), env=pool.env, cwd=pool.dir, capture_output=True, timeout=120
    )
    assert done.returncode == 0 and pool.finished(sid) == 2
    assert list(itertools.chain(pool.store.r.smembers(keys.POOLS))) == []


def test_a_dead_pool_agents_run_is_reaped_and_resumed_by_an_idle_one(pool: Pool) -> None:
    """Idle pool agents read the pool's leases only when a pool agent goes silent: a SIGKILLed
    one's run still comes back within its lease and a heartbeat, and runs again."""
    hold = pool.dir / "hold"
    hold.touch()
    pool.env["HOLD"] = str(hold)
    sid = pool.sweep(1)
    victim = pool.agent("--heartbeat", "0.5")
    wait_until(lambda: len(pool.notes("start")) == 1, timeout=60)
    rid = pool.notes("start")[0]["run"]
    other = pool.agent("--heartbeat", "0.5")  # idle: the pool's one run is held
    wait_until(lambda: pool.store.r.zcard(keys.pool_agents("p")) == 2, timeout=60)
    for child in psutil.Process(victim.pid).children(recursive=True):
        child.kill()
    victim.kill()
    victim.wait()
    hold.unlink()
    wait_until(lambda: pool.finished(sid) == 1, timeout=60)
    run = pool.store.run(rid)
    assert run.attempt == 2 and pool.notes("end")[0]["agent"] == other.pid
    assert pool.stop(other) == 0
