"""A run whose command launches several ranks itself (``srun``, ``torchrun``): every rank reads the
run's parameters from the params file on the checkpoint root, and only rank 0's ``log()`` is kept."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from support import Sweeps
from sweepd.agent.api.script import rank
from sweepd.queue import keys

#: A stand-in launcher: two ranks (as torchrun sets RANK), each reading the params and logging.
PROGRAM = """
import os, subprocess, sys
if "RANK" not in os.environ:
    ranks = [
        subprocess.Popen([sys.executable, __file__], env={**os.environ, "RANK": str(i)}, stderr=-1, text=True)
        for i in range(2)
    ]
    for i, p in enumerate(ranks):
        err = p.communicate()[1]
        open(os.path.join(os.environ["OUT_DIR"], f"rank{i}.err"), "w").write(err)
        assert p.returncode == 0, err
    sys.exit(0)
import json
from sweepd.agent import run
me = int(os.environ["RANK"])
with open(os.environ["SWEEPD_PARAMS_FILE"]) as fh:
    assert json.load(fh) == run.params
seen = {"params": run.params, "file": os.environ["SWEEPD_PARAMS_FILE"]}
open(os.path.join(os.environ["OUT_DIR"], f"rank{me}.json"), "w").write(json.dumps(seen))
for i in range(3):
    run.log({"rank": me, "x": run.params["x"]})
"""


def test_rank_is_torchrun_s_then_srun_s_and_never_the_agent_s_own() -> None:
    assert rank({}) == ("", 0)
    assert rank({"RANK": "2", "SLURM_PROCID": "0"}) == ("RANK", 2)
    assert rank({"SLURM_PROCID": "1"}) == ("SLURM_PROCID", 1)
    assert rank({"SLURM_PROCID": "3", "SWEEPD_INHERITED_SLURM_PROCID": "3"}) == ("", 0)  # the agent's task
    assert rank({"SLURM_PROCID": "1", "SWEEPD_INHERITED_SLURM_PROCID": "3"}) == ("SLURM_PROCID", 1)
    assert rank({"RANK": "x"}) == ("", 0)


def test_every_rank_reads_the_params_and_only_rank_0_logs(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ckpt = tmp_path / "ckpt"
    # the agent is itself task 3 of a SLURM step: its run's first process inherits that, and is no rank
    env = {**cli_env, "OUT_DIR": str(out), "SWEEPD_CHECKPOINT_ROOT": str(ckpt), "SLURM_PROCID": "3"}
    sweeps = Sweeps(tmp_path, env, PROGRAM)
    sid = sweeps.create("method: grid\nparameters:\n  x: {values: [7]}\n")
    assert sweeps.agents(1, sid, "--notices", "none", "--heartbeat", "0.5") == [0]
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished", (out / "rank0.err").read_text()
    seen = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
    assert [s["params"] for s in seen] == [{"x": 7}, {"x": 7}]
    assert {s["file"] for s in seen} == {str(ckpt / sid / run["id"] / ".sweepd-params.json")}
    history = [json.loads(row) for row in r.lrange(keys.run_history(run["id"]), 0, -1)]
    assert [row["rank"] for row in history] == [0, 0, 0]
    said = (out / "rank1.err").read_text()
    assert said.count("rank 1 (RANK)") == 1 and "ignored" in said
    assert "rank" not in (out / "rank0.err").read_text()
