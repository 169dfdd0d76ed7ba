"""PBT on the toy problem of Jaderberg et al. 2017 (figure 2), through real agents and a real Redis.

Q(theta) = 1.2 - (theta0^2 + theta1^2); each member does gradient ascent on 1.2 - (h0 theta0^2 +
h1 theta1^2) from theta = (0.9, 0.9), step 0.01, h its parameters (examples/pbt_toy.py, which
checkpoints theta every step). Two sweeps of ``method: pbt`` (interval 5, steps 200, perturb
[0.8, 1.2]), each worked by as many agents as members:

- the paper's two members, h = (1, 0) and (0, 1), enqueued as the first generation (quantile 0.5,
  resample_probability 0.5); the baseline: each trained alone (the same arithmetic, in this
  process) stalls at Q = 0.39;
- examples/pbt-sweep.yaml as it is (population 4, quantile 0.25, resample 0.25) from random
  starts; the baseline: the best member of its first generation trained alone for 200 steps.

The figure is the best Q any run of the sweep logged.

    python bench/pbt.py [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from common import Row, Section, agent, bench_env, markdown, new_sweep, num, private_redis, ratio, show, stop

from sweepd.queue.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "examples" / "pbt_toy.py"
STEPS = 200


def alone(h0: float, h1: float, steps: int = STEPS) -> float:
    """Q after ``steps`` steps of the toy's gradient ascent with h fixed (what the script does)."""
    theta = [0.9, 0.9]
    for _ in range(steps):
        theta = [theta[0] - 0.01 * 2 * h0 * theta[0], theta[1] - 0.01 * 2 * h1 * theta[1]]
    return 1.2 - (theta[0] ** 2 + theta[1] ** 2)


def config(population: int, quantile: float, resample: float) -> dict[str, Any]:
    return {
        "program": str(TOY),
        "command": [sys.executable, "${program}"],
        "method": "pbt",
        "metric": {"name": "Q", "goal": "maximize"},
        "parameters": {
            "h0": {"distribution": "uniform", "min": 0.0, "max": 1.0},
            "h1": {"distribution": "uniform", "min": 0.0, "max": 1.0},
        },
        "pbt": {
            "population": population,
            "interval": 5,
            "steps": STEPS,
            "quantile": quantile,
            "perturb": [0.8, 1.2],
            "resample_probability": resample,
        },
    }


def work(url: str, sid: str, agents: int, tmp: Path) -> tuple[list[Any], float]:
    env = bench_env(url, tmp, SWEEPD_CHECKPOINT_ROOT=str(tmp / "ckpt"), TOY_SLEEP="0.05")
    started = time.monotonic()
    procs = [agent(env, sid, "--heartbeat", "1", "--grace", "5") for _ in range(agents)]
    try:
        for proc in procs:
            proc.wait(timeout=600)
    finally:
        stop(procs)
    runs = Store(redis.Redis.from_url(url)).runs(sid)
    return runs, time.monotonic() - started


def best_q(runs: list[Any]) -> float:
    return max(float(r.summary["Q"]) for r in runs if isinstance(r.summary.get("Q"), (int, float)))


def measure(seed: int = 1) -> Section:
    rows, detail = [], []
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="sweepd-pbt-") as tmp_name:
        tmp = Path(tmp_name)
        sid = new_sweep(server.url, config(2, 0.5, 0.5), seed=seed)
        env = bench_env(server.url, tmp)
        for h0, h1 in ((1, 0), (0, 1)):
            subprocess.run(
                [sys.executable, "-m", "sweepd.agent", "enqueue", sid, "--param", f"h0={h0}", "--param", f"h1={h1}"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        runs, took = work(server.url, sid, 2, tmp / "paper")
        q, base = best_q(runs), max(alone(1, 0), alone(0, 1))
        rows.append(
            Row(
                f"PBT, toy problem (Jaderberg et al. 2017, fig. 2), the paper's two members: best Q after "
                f"{STEPS} steps each ({len(runs)} runs, {took:.0f} s; measured apart, `python bench/pbt.py`)",
                num(q, 3),
                f"{num(base, 3)} (each member alone)",
                ratio(q, base),
                "PBT ~1.2, alone 0.39: met" if q > 1.1 else "PBT ~1.2: **missed**",
            )
        )
        detail.append(lineage_table("paper's two members", runs))
        sid = new_sweep(server.url, config(4, 0.25, 0.25), seed=seed)
        runs, took = work(server.url, sid, 4, tmp / "random")
        first = [r for r in runs if r.pbt and r.pbt["generation"] == 0]
        base_run = max(first, key=lambda r: alone(r.params["h0"], r.params["h1"]))
        q, base = best_q(runs), alone(base_run.params["h0"], base_run.params["h1"])
        rows.append(
            Row(
                f"PBT, toy problem, examples/pbt-sweep.yaml from random starts (seed {seed}): best Q "
                f"({len(runs)} runs, {took:.0f} s)",
                num(q, 3),
                f"{num(base, 3)} (its best first-generation member alone, h = "
                f"({base_run.params['h0']:.2f}, {base_run.params['h1']:.2f}))",
                ratio(q, base),
                "—",
            )
        )
        detail.append(lineage_table("examples/pbt-sweep.yaml", runs))
    return Section("pbt", rows, "\n\n".join(detail))


def lineage_table(title: str, runs: list[Any]) -> str:
    rows = [
        [r.id, r.pbt["member"], r.pbt["generation"], r.pbt["parent"] or "—", json.dumps(r.params), r.state, r.reason]
        for r in runs
        if r.pbt
    ]
    return f"{title}:\n\n" + markdown(rows, ("run", "member", "generation", "parent", "params", "state", "reason"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    show(measure(args.seed))


if __name__ == "__main__":
    main()
