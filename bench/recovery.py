"""Dead-agent recovery: from SIGKILL of a whole agent tree (the machine vanished) to the run's next
start on another agent, for the default heartbeat and ``--heartbeat 1``, next to the bound in the
docs: lease (3 heartbeats) + one reap interval (1 heartbeat) = 4 heartbeats, plus the pickup.

Each trial is a sweep of its own: a victim agent holds its one run, an idle rescuer waits beside
it; all victims are SIGKILLed with their trees at once, and each run's program records the wall
clock when it starts again. Several trials run at once (the waits dominate, not the CPU): all of
them at the default heartbeat, 10 at a time at ``--heartbeat 1``, where 20 programs starting again
within the same second would slow each other down on 2 cores (``--parallel`` sets it).

    python bench/recovery.py [--trials 20] [--heartbeats 10,1] [--parallel N]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import redis
from common import (
    Row,
    Section,
    agent,
    bench_env,
    kill_tree,
    markdown,
    median,
    new_sweep,
    num,
    one_point,
    private_redis,
    ratio,
    show,
    stop,
    verdict,
    wait_for,
)

from sweepd.agent.daemon.options import Options
from sweepd.agent.hold.hold import LEASE_HEARTBEATS
from sweepd.queue import keys
from sweepd.queue.store import Store

SLEEPER = """
import os, time
name = os.environ["SWEEPD_RUN_ID"] + "." + os.environ["SWEEPD_ATTEMPT"]
with open(os.path.join(os.environ["MARKS"], name), "w") as fh:
    fh.write(repr(time.time()))
time.sleep(3600)
"""
BOUND_HEARTBEATS = LEASE_HEARTBEATS + 1
DEFAULT = f"default heartbeat ({Options.heartbeat:g} s)"


def round_of(url: str, env: dict[str, str], work: Path, n: int, heartbeat: float, settle: float = 1.5) -> list[float]:
    """n sweeps at once, each with two agents: one holds the sweep's one run, the other waits idle.
    Once all are up and settled, each holder is SIGKILLed with its tree (whichever agent it is), at
    a random moment within one heartbeat."""
    marks = Path(env["MARKS"])
    hb = ["--heartbeat", str(heartbeat)]
    r = redis.Redis.from_url(url)
    store = Store(r)
    sweeps = [new_sweep(url, one_point(str(work / "sleeper.py"))) for _ in range(n)]
    agents = [agent(env, sid, *hb) for sid in sweeps for _ in range(2)]
    try:
        wait_for(lambda: len(list(marks.glob("*.1"))) >= n, 120, "the runs to start", 0.01)
        wait_for(lambda: all(r.zcard(keys.sweep_agents(s)) == 2 for s in sweeps), 60, "every agent", 0.05)
        time.sleep(settle)  # past start-up: every agent in its loop
        if list(marks.glob("*.2")):
            raise RuntimeError("a run started twice before the kill (a lease expired during start-up)")
        holders: list[tuple[float, str, int]] = []  # (when to kill, run id, agent pid)
        base = time.time() + 0.05
        for mark in marks.glob("*.1"):
            rid = mark.name.split(".")[0]
            aid = store.run(rid).agent_id or ""
            holders.append((base + random.uniform(0, heartbeat), rid, int(r.hget(keys.agent(aid), "pid") or 0)))
        killed: dict[str, float] = {}
        for at, rid, pid in sorted(holders):  # kills spread over a heartbeat: phases at random
            time.sleep(max(0.0, at - time.time()))
            killed[rid] = time.time()
            kill_tree(pid)
        deadline = time.monotonic() + (BOUND_HEARTBEATS + 2) * heartbeat + 30
        while len(list(marks.glob("*.2"))) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        starts = {p.name.split(".")[0]: float(p.read_text()) for p in marks.glob("*.2")}
        if len(starts) < n:
            raise RuntimeError(f"recovery: only {len(starts)} of {n} runs started again")
        return [starts[rid] - killed[rid] for rid in starts]
    finally:
        stop(agents)
        r.close()
        for p in marks.iterdir():
            p.unlink()


def recover(heartbeat: float, trials: int, parallel: int, settle: float = 1.5) -> list[float]:
    with private_redis() as server:
        work = server.work
        (work / "sleeper.py").write_text(SLEEPER)
        (work / "marks").mkdir()
        env = bench_env(server.url, work, MARKS=str(work / "marks"))
        times: list[float] = []
        while len(times) < trials:
            times += round_of(server.url, env, work, min(parallel, trials - len(times)), heartbeat, settle)
        return times


def measure(
    quick: bool = False, trials: int | None = None, parallel: int | None = None, heartbeats: tuple[float, ...] = ()
) -> Section:
    n = trials or (4 if quick else 20)
    heartbeats = heartbeats or ((1.0,) if quick else (Options.heartbeat, 1.0))
    section = Section("recovery")
    detail = []
    for heartbeat in heartbeats:
        times = recover(heartbeat, n, parallel or (n if heartbeat >= 5 else 10), 0.8 if quick else 1.5)
        bound = BOUND_HEARTBEATS * heartbeat
        label = DEFAULT if heartbeat == Options.heartbeat else f"--heartbeat {heartbeat:g}"
        section.rows.append(
            Row(
                f"dead-agent recovery, {label}: SIGKILL of the agent tree to the run's next start, s p50 / max",
                f"{num(median(times), 2)} / {num(max(times), 2)}",
                f"{bound:g} s (bound: {BOUND_HEARTBEATS} x heartbeat, + pickup)",
                ratio(max(times), bound) + " (max)",
                f"max <= bound + 0.5 s (pickup): {verdict(max(times) <= bound + 0.5)}",
            )
        )
        detail.append([label, len(times), num(median(times), 2), num(max(times), 2), f"{bound:g} s + pickup"])
    if quick:
        section.rows.append(
            Row(
                f"dead-agent recovery, {DEFAULT}",
                f"skipped in --quick ({BOUND_HEARTBEATS * Options.heartbeat:g} s a trial)",
            )
        )
    section.detail = markdown(detail, ["dead-agent recovery", "n", "p50 s", "max s", f"bound: {BOUND_HEARTBEATS} x hb"])
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=None)
    parser.add_argument("--heartbeats", default=f"{Options.heartbeat:g},1")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        section = measure(True)
    else:
        hbs = tuple(float(h) for h in args.heartbeats.split(","))
        section = measure(False, args.trials, args.parallel, hbs)
    show(section)


if __name__ == "__main__":
    main()
