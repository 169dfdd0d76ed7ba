"""ASHA end to end (``early_terminate: {type: asha}``): a real agent, real Redis, real processes.

A grid of nine constant-ranked curves (loss = k + 1/(step+1): the ranking is k's at every rung),
min_iter 1, eta 3, max_iter 9: rungs at 1 and 3. Each run is stopped at its rung (signal, grace)
and waits ``paused``; the top third of a rung goes on (same run, attempt + 1, its steps continuing),
so at the end k=1 finished at max_iter, k=2 and 3 wait at rung 1 and the rest at rung 0. One agent,
so the order is the grid's (5, 1, 9: 1 promoted; ... 2: 2 promoted; ... 6: 3 promoted, then 1 to
max_iter), worked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from support import Sweeps, run_sweepd
from sweepd.queue.store import Store

PROGRAM = """\
import sys, time
from sweepd.agent import run
for step in range(run.step, 40):
    if run.preempting:
        sys.exit(3)  # told to stop: checkpointed (its step is the history's), not finished
    run.log({"loss": run.params["k"] + 1.0 / (step + 1)})
    time.sleep(0.05)
"""


def test_asha_pauses_at_rungs_and_promotes_the_top_third(tmp_path: Path, cli_env: dict[str, str], store: Store) -> None:
    sweeps = Sweeps(tmp_path, cli_env, PROGRAM)
    sid = sweeps.create(
        """\
        method: grid
        metric: {name: loss, goal: minimize}
        early_terminate: {type: asha, min_iter: 1, eta: 3, max_iter: 9}
        parameters:
          k: {values: [5, 1, 9, 3, 7, 2, 8, 4, 6]}
        """
    )
    assert sweeps.agents(1, sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "5", timeout=180) == [0]
    runs = {r["params"]["k"]: r for r in sweeps.runs(sid)}
    assert {k: (r["state"], r["rung"]) for k, r in runs.items()} == {
        1: ("finished", 1),
        2: ("paused", 1),
        3: ("paused", 1),
        **{k: ("paused", 0) for k in (4, 5, 6, 7, 8, 9)},
    }
    assert runs[1]["reason"] == "asha-max-iter" and runs[1]["attempt"] == 3
    assert runs[2]["attempt"] == 2 and runs[9]["attempt"] == 1
    history = json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)
    assert all(r["rung"] is not None for r in history)
    steps = [row["_step"] for row in store.history(runs[1]["id"])]
    assert steps == list(range(len(steps))) and len(steps) >= 9  # one series across its three attempts
    table = run_sweepd("runs", sid, env=cli_env).stdout.splitlines()
    assert "rung" in table[0].split()
    status = json.loads(run_sweepd("status", sid, "--json", env=cli_env).stdout)
    assert status["counts"]["paused"] == 8, status["counts"]


def test_racing_agents_promote_each_run_once_per_rung(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Three agents at once: whatever the order, a run paused at rung r was promoted r times (attempt
    r + 1), one that finished at max_iter once more, and the sweep completes with none promotable."""
    sweeps = Sweeps(tmp_path, cli_env, PROGRAM)
    sid = sweeps.create(
        """\
        method: grid
        metric: {name: loss, goal: minimize}
        early_terminate: {type: asha, min_iter: 1, eta: 3, max_iter: 9}
        parameters:
          k: {values: [5, 1, 9, 3, 7, 2, 8, 4, 6]}
        """
    )
    assert sweeps.agents(3, sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "5", timeout=180) == [0, 0, 0]
    runs = sweeps.runs(sid)
    assert {r["state"] for r in runs} <= {"paused", "finished"}
    for r in runs:
        promotions = r["rung"] + (1 if r["state"] == "finished" else 0)
        assert r["attempt"] == promotions + 1, r
    assert any(r["state"] == "finished" and r["reason"] == "asha-max-iter" for r in runs)
    assert {r["params"]["k"] for r in runs if r["state"] == "finished"} >= {1}
