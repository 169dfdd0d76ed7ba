"""Runs a failover costs a fleet: agents at ``--heartbeat 1`` (a 3 s lease) on a grid of runs of 2, 4
and 6 s behind Sentinel, the master SIGKILLed a second after each agent started its first; then
what had to run again: attempts
their own guard cut short (they ran through the outage and could not renew) and finished runs run
again (their end could not be recorded before the reaper requeued them). Measured for a failover
that fits in the lease (down-after 1 s) and one whose detection alone is longer (down-after 4 s).

    python bench/failover_runs.py [--trials 3]
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

from common import ROOT, Row, Section, markdown, show

from sweepd.queue.config import validate
from sweepd.queue.connections import connect
from sweepd.queue.store import Store

sys.path.insert(0, str(ROOT / "tests"))
from sentinels import Topology  # the tests' topology: one definition of it

AGENTS, RUNS = 3, 9
PROGRAM = """
import json, os, sys, time
out, rid, attempt = os.environ["OUT_DIR"], os.environ["SWEEPD_RUN_ID"], os.environ["SWEEPD_ATTEMPT"]
def note(event):
    with open(os.path.join(out, rid + ".jsonl"), "a") as fh:
        fh.write(json.dumps({"attempt": attempt, "event": event}) + "\\n")
note("start")
time.sleep(2 + 2 * (int(sys.argv[1].split("=")[1]) % 3))  # 2, 4 or 6 s
note("end")
"""


def trial(work: Path, down_after_ms: int) -> tuple[int, int]:
    """(attempts cut short, finished runs run again) of one failover."""
    top = Topology(work, down_after_ms=down_after_ms).start()
    out = work / "out"
    out.mkdir()
    (work / "prog.py").write_text(PROGRAM)
    config = {
        "method": "grid",
        "program": "prog.py",
        "command": [sys.executable, "${program}", "${args_no_hyphens}"],
        "parameters": {"x": {"values": list(range(RUNS))}},
    }
    env = {**os.environ, "SWEEPD_REDIS_URL": top.url, "SWEEPD_HOME": str(work / "home"), "OUT_DIR": str(out)}
    agents: list[subprocess.Popen[bytes]] = []
    try:
        sid = Store(connect(top.url)).create_sweep(validate(config, source="bench"))
        cmd = [sys.executable, "-m", "sweepd.agent", "agent", sid, "--notices", "none", "--heartbeat", "1"]
        agents = [
            subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(AGENTS)
        ]
        deadline = time.monotonic() + 60
        while _events(out, "start") < AGENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # every agent a second into its run
        top.kill_master(wait=False)
        for agent in agents:
            agent.wait(240)
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        top.close()
    starts, ends = _events(out, "start"), _events(out, "end")
    return starts - ends, ends - RUNS


def _events(out: Path, event: str) -> int:
    return sum(
        json.loads(line)["event"] == event for path in out.glob("*.jsonl") for line in path.read_text().splitlines()
    )


def measure(quick: bool, trials: int | None = None) -> Section:
    n = trials or (1 if quick else 3)
    rows, detail = [], []
    for down_after_ms in (1000, 4000):
        got = []
        for i in range(n):
            with tempfile.TemporaryDirectory(prefix=f"sweepd-bench-runs-{i}-") as tmp:
                got.append(trial(Path(tmp), down_after_ms))
        cut, rerun = sum(g[0] for g in got), sum(g[1] for g in got)
        rows.append(
            Row(
                f"failover at down-after {down_after_ms} ms, lease 3 s: runs run again, cut short + finished "
                f"({n} trials, {AGENTS} agents mid-run)",
                f"{cut + rerun} = {cut} + {rerun}",
                "0 + 0",
                "—",
                "no finished run run again" + (": met" if rerun == 0 else ": missed"),
            )
        )
        detail += [[f"{down_after_ms}", str(i + 1), str(c), str(r)] for i, (c, r) in enumerate(got)]
    table = markdown(detail, ["down-after ms", "trial", "cut short", "finished, run again"])
    return Section("failover_runs", rows, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, args.trials))


if __name__ == "__main__":
    main()
