"""The bare loop: the physical limit a run's dispatch is measured against (dispatch.py, gap.py). It
spawns the same argv the same way the agent does (sweepd's own ``Child``: process group,
parent-death signal, output pumps), n times one after the other, with nothing else around it.

    python bench/bare.py N [--plain] -- ARGV...   (one loop; prints each spawn's (start, end) as JSON)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

#: What ${args} adds to the argv (one random float), so the bare loop spawns an argv of the same shape.
ARGS = ["--x=0.5488135039273248"]


def bare_loop(n: int, argv: list[str], plain: bool) -> list[tuple[float, float]]:
    """Spawn ``argv`` n times, one after the other, as the agent does; (start, end) of each."""
    from sweepd.agent.daemon.process import Child

    env = dict(os.environ)
    env.update({name: "x" * 8 for name in ("SWEEPD_SWEEP_ID", "SWEEPD_RUN_ID", "WANDB_RUN_ID", "SWEEPD_ATTEMPT")})
    times = []
    for _ in range(n):
        t0 = time.time()
        if plain:
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        else:
            child = Child(argv, env, lambda lines: None)
            child.wait(None)
            child.end()  # as the attempt does: leftovers killed, pumps stopped
            child.close()
        times.append((t0, time.time()))
    return times


def bare(n: int, k: int, argv: list[str], plain: bool = False) -> tuple[float, list[float]]:
    """k bare loops in parallel (separate processes, like k agents): (runs per second, ms per run)."""
    cmd = [sys.executable, __file__, str(n // k), "--plain" if plain else "--child", "--", *argv]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE) for _ in range(k)]
    results: list[list[tuple[float, float]]] = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        results.append(json.loads(out))
    start = min(t[0][0] for t in results)
    end = max(t[-1][1] for t in results)
    per_run = [(b[0] - a[0]) * 1000 for t in results for a, b in itertools.pairwise(t)]
    return (n // k) * k / (end - start), per_run


def main() -> None:
    """One bare loop, in a process of its own (see ``bare``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--plain", action="store_true", help="subprocess.run, not sweepd's Child")
    parser.add_argument("--child", action="store_true", help="sweepd's Child (the default)")
    parser.add_argument("argv", nargs="+")
    args = parser.parse_args()
    print(json.dumps(bare_loop(args.n, args.argv, args.plain)))


if __name__ == "__main__":
    main()
