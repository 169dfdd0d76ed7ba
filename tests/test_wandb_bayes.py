"""A bayes sweep over a wandb-only script converges as the bayes quality test's search does: the
metric it logs with ``wandb.log`` reaches the search, so the agent's runs are the very points the
pure search picks on Branin given the same values (the real ``wandb`` package, offline)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_bayes import branin

from support import Sweeps, run_sweepd
from sweepd.queue.config import load_config
from sweepd.queue.search import bayes
from sweepd.queue.search.bayes import Observation

pytest.importorskip("wandb")
pytest.importorskip("sklearn", reason="bayes needs the bayes extra")

BUDGET, SEED = 10, 3
PROGRAM = textwrap.dedent(
    """
    import math
    import wandb
    run = wandb.init()
    x, y = wandb.config.x, wandb.config.y
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    wandb.log({"loss": (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10})
    """
)
CONFIG = f"""
method: bayes
run_cap: {BUDGET}
metric: {{name: loss, goal: minimize}}
parameters:
  x: {{distribution: uniform, min: -5.0, max: 10.0}}
  y: {{distribution: uniform, min: 0.0, max: 15.0}}
"""


def test_bayes_over_a_wandb_only_script_follows_the_pure_search_on_branin(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    sweeps = Sweeps(tmp_path, env, PROGRAM)
    (tmp_path / "sweep.yaml").write_text(f"program: prog.py\n{CONFIG}")
    done = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", "--seed", str(SEED), env=env)
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    runs = sweeps.runs(sid)
    assert len(runs) == BUDGET and {r["state"] for r in runs} == {"finished"}
    config = load_config(str(tmp_path / "sweep.yaml"))
    history: list[Observation] = []
    for index in range(BUDGET):  # the pure search, fed what each run logged through wandb
        point = bayes.suggest(config, SEED, index, history)
        history.append(Observation(point, branin(point["x"], point["y"]), "finished"))
    ran = sorted(runs, key=lambda r: r["started_at"])
    assert [r["params"] for r in ran] == [o.params for o in history]
    assert [r["summary"]["loss"] for r in ran] == pytest.approx([o.value for o in history])
    first_random = min(o.value for o in history[:3] if o.value is not None)
    assert min(r["summary"]["loss"] for r in runs) <= first_random  # it improves on its opening draws
