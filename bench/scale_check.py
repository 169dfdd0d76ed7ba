"""bench/scale.py's check of its load: real ``sweepd agent`` processes and generated agents
(bench/scale_load.py) on the same workload, and the commands Redis executes per agent for each,
command by command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import redis
from common import Row, bench_env, markdown, new_sweep, num, private_redis, ratio, stop, verdict, wait_for
from common import agent as start_agent
from scale_load import Workload, start_generators

from sweepd.agent.daemon.heartbeat import CLOCK_EVERY
from sweepd.agent.daemon.options import Options
from sweepd.queue import keys
from sweepd.queue.store import Store

FIDELITY = 0.10  # the generated agents' rate of each command, against real agents'


def per_agent_rates(r: redis.Redis, agents: int, seconds: float) -> dict[str, float]:
    """Commands Redis executed over ``seconds`` (from a CONFIG RESETSTAT now), per agent per second."""
    r.config_resetstat()
    time.sleep(seconds)
    stats = r.info("commandstats")
    skip = ("cmdstat_info", "cmdstat_config|resetstat")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) / seconds / agents for k, v in stats.items() if k not in skip}


def fidelity(kind: str, agents: int = 4) -> tuple[dict[str, float], dict[str, float]]:
    """(real agents' commands per agent per second, the generated agents'), for the same workload:
    busy at --heartbeat 1 with runs of about 2 s, or idle at the default heartbeat; over a window of
    whole heartbeats, six of them at least (an idle agent reads Redis's clock every sixth), once
    every agent is past its start."""
    heartbeat, length = (1.0, 2.0) if kind == "busy" else (Options.heartbeat, 60.0)
    seconds = CLOCK_EVERY * heartbeat * (3 if kind == "busy" else 1)  # busy: many runs' ends
    if kind == "busy":
        config: dict[str, Any] = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
        command = [sys.executable, "-c", f"import time; time.sleep({length})", "${args}"]
    else:
        config = {"method": "grid", "parameters": {"x": {"value": 1}}}
        command = ["true", "${args}"]
    results = []
    for real in (True, False):
        with private_redis() as server:
            r = server.client()
            sid = new_sweep(server.url, {**config, "command": command})
            if kind == "idle":
                Store(r).create_next(sid, "bench-holder", lease_s=3600)  # nothing to hand out, not complete
            procs: list[subprocess.Popen[Any]] = []
            try:
                if real:
                    env = bench_env(server.url, server.work)
                    for _ in range(agents):  # runs' ends spread, as the generated agents' are
                        procs.append(start_agent(env, sid, "--heartbeat", str(heartbeat)))
                        time.sleep(length / agents if kind == "busy" else 0.0)
                    key = keys.sweep_agents(sid)
                    wait_for(lambda c=r, k=key: c.zcard(k) == agents, 60, "the agents", 0.05)
                    time.sleep(2.0)  # past start-up and the first run
                else:  # their starts are spread over a heartbeat: wait for the last one
                    w = Workload(f"check-{kind}", kind, heartbeat)
                    procs = start_generators(server.url, sid, w, [agents], length + 0.1)
                    now = time.time()
                    schedule = {"activate": [now], "windows": [[now, now + 1]], "stop": now + 600, "spread": heartbeat}
                    for p in procs:
                        assert p.stdin is not None
                        p.stdin.write(json.dumps(schedule) + "\n")
                        p.stdin.flush()
                    time.sleep(heartbeat + 2.0)
                results.append(per_agent_rates(r, agents, seconds))
            finally:
                stop(procs)
    return results[0], results[1]


def fidelity_rows(kind: str) -> tuple[Row, str]:
    real, sim = fidelity(kind)
    total_real, total_sim = sum(real.values()), sum(sim.values())
    names = sorted(set(real) | set(sim), key=lambda k: -real.get(k, 0))
    worst = max(abs(sim.get(k, 0) - real.get(k, 0)) / max(real.get(k, 0), 0.05) for k in names)
    what = "busy, --heartbeat 1, 2 s runs" if kind == "busy" else "idle, default heartbeat"
    row = Row(
        f"scale generator fidelity ({what}): Redis commands per agent per second, generated vs real agents",
        f"{num(total_sim, 2)} (generated)",
        f"{num(total_real, 2)} (4 `sweepd agent` processes)",
        ratio(total_sim, total_real),
        f"every command within 10%: {verdict(worst <= FIDELITY)}",
    )
    table_rows = [[f"`{k.upper()}`", num(real.get(k, 0), 3), num(sim.get(k, 0), 3)] for k in names]
    detail = f"Generator fidelity, {what} (largest difference in one command: {100 * worst:.0f}%):\n\n"
    detail += markdown(table_rows, ["command", "real agent per s", "generated agent per s"])
    return row, detail
