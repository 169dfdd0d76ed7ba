"""The watchdog's cost: what the process outside the agent that kills a run when its lease deadline
passes unfed (agent/hold/watchdog.py) takes, beside what the agent itself takes.

- memory and CPU: an agent at ``--heartbeat 1`` holds a run that sleeps; over a window the
  watchdog's RSS and CPU are sampled beside the agent's own (the baseline). One watchdog serves
  every run its agent holds, so this is also the cost per held run of a one-run agent.
- start-up: what a run's start costs because of it. The watchdog process starts once per agent,
  when the agent starts; each run then adds one pipe write (``watch``), timed here beside a bare spawn
  of ``true`` (the run's own start). Pickup (bench/pickup.py) measures a real agent, watchdog
  included, against its 10 ms target.

    python bench/watchdog.py [--seconds 20] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from common import (
    Row,
    Section,
    agent,
    bench_env,
    markdown,
    median,
    new_sweep,
    num,
    one_point,
    percentile,
    private_redis,
    ratio,
    show,
    stop,
    wait_for,
)

from sweepd.agent.hold.watchdog import Watchdog

SLEEPER = "import time\ntime.sleep(3600)\n"
WATCHES = 2000


def _watchdog_of(agent_pid: int) -> psutil.Process | None:
    for child in psutil.Process(agent_pid).children():
        if any(part.endswith("watchdog.py") for part in child.cmdline()):
            return child
    return None


def held_cost(seconds: float) -> dict[str, float]:
    """RSS (MiB) and CPU (% of one core) of an agent holding a sleeping run, and of its watchdog."""
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="sweepd-bench-") as tmp:
        work = Path(tmp)
        (work / "sleep.py").write_text(SLEEPER)
        sid = new_sweep(server.url, one_point(str(work / "sleep.py")))
        proc = agent(bench_env(server.url, work), sid, "--heartbeat", "1")
        try:
            dog = wait_for(lambda: _watchdog_of(proc.pid), 30, "the agent's watchdog")
            me = psutil.Process(proc.pid)
            time.sleep(2.0)  # settled: the run started, a renewal or two fed
            cpu0 = me.cpu_times(), dog.cpu_times()
            t0 = time.monotonic()
            rss: dict[str, list[float]] = {"agent": [], "watchdog": []}
            while time.monotonic() - t0 < seconds:
                rss["agent"].append(me.memory_info().rss / 2**20)
                rss["watchdog"].append(dog.memory_info().rss / 2**20)
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            cpu1 = me.cpu_times(), dog.cpu_times()
        finally:
            stop([proc])

    def pct(a: Any, b: Any) -> float:
        return float(100 * ((b.user - a.user) + (b.system - a.system)) / elapsed)

    return {
        "agent_rss": median(rss["agent"]),
        "watchdog_rss": median(rss["watchdog"]),
        "agent_cpu": pct(cpu0[0], cpu1[0]),
        "watchdog_cpu": pct(cpu0[1], cpu1[1]),
    }


def startup_cost(n: int) -> dict[str, float]:
    """The watchdog's first start (ms, once per agent), one ``watch`` line (µs), and a bare spawn of
    ``true`` (ms): the run's own start, the baseline."""
    dog = Watchdog()
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
    try:
        t0 = time.perf_counter()
        dog.watch(sleeper.pid, time.monotonic() + 3600, group=True)
        first_ms = (time.perf_counter() - t0) * 1000
        lines: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            dog.watch(sleeper.pid, time.monotonic() + 3600, group=True)
            lines.append((time.perf_counter() - t0) * 1e6)
        dog.release(sleeper.pid)
    finally:
        dog.close()
        sleeper.kill()
        sleeper.wait()
    spawns: list[float] = []
    for _ in range(50):
        t0 = time.perf_counter()
        subprocess.Popen(["true"]).wait()
        spawns.append((time.perf_counter() - t0) * 1000)
    return {
        "first_ms": first_ms,
        "line_p50_us": percentile(lines, 50),
        "line_p99_us": percentile(lines, 99),
        "spawn_p50_ms": percentile(spawns, 50),
    }


def measure(quick: bool, seconds: float | None = None) -> Section:
    window = seconds or (5.0 if quick else 20.0)
    held = held_cost(window)
    start = startup_cost(200 if quick else WATCHES)
    line_ms = start["line_p50_us"] / 1000
    rows = [
        Row(
            f"watchdog: RSS, MiB (one per agent; an agent holding one run at --heartbeat 1, {window:g} s)",
            num(held["watchdog_rss"]),
            f"{num(held['agent_rss'])} (the agent itself)",
            ratio(held["watchdog_rss"], held["agent_rss"]),
        ),
        Row(
            "watchdog: CPU, % of one core (same run)",
            num(held["watchdog_cpu"], 3),
            f"{num(held['agent_cpu'], 3)} (the agent itself)",
            ratio(held["watchdog_cpu"], held["agent_cpu"]) if held["agent_cpu"] > 0 else "n/a",
        ),
        Row(
            "watchdog: added start-up per run (one `watch` line), µs p50 / p99",
            f"{num(start['line_p50_us'])} / {num(start['line_p99_us'])}",
            f"{num(start['spawn_p50_ms'], 2)} ms (bare spawn of `true`)",
            ratio(line_ms, start["spawn_p50_ms"]),
            "pickup p50 < 10 ms (bench/pickup.py, watchdog included)",
        ),
        Row(
            "watchdog: starting its process, once per agent (at the agent's start, before any run), ms",
            num(start["first_ms"], 2),
            f"{num(start['spawn_p50_ms'], 2)} (bare spawn of `true`)",
            ratio(start["first_ms"], start["spawn_p50_ms"]),
        ),
    ]
    detail = markdown(
        [
            ["agent RSS MiB", num(held["agent_rss"])],
            ["watchdog RSS MiB", num(held["watchdog_rss"])],
            ["agent CPU %", num(held["agent_cpu"], 3)],
            ["watchdog CPU %", num(held["watchdog_cpu"], 3)],
            ["watch line µs p50 / p99", f"{num(start['line_p50_us'])} / {num(start['line_p99_us'])}"],
            ["watchdog start ms", num(start["first_ms"], 2)],
            ["bare spawn of `true` ms p50", num(start["spawn_p50_ms"], 2)],
        ],
        ["measure", "value"],
    )
    return Section("watchdog", rows, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="the sampling window (default 20, quick 5)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, args.seconds))


if __name__ == "__main__":
    main()
