"""An unmodified W&B script under an agent (the real ``wandb`` package, offline): ``wandb.config`` holds the
run's parameters as W&B's own agent gives them, over the script's defaults; a script without wandb runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from support import Sweeps
from sweepd.agent.daemon import wandb_env

pytest.importorskip("wandb")

PROGRAM = textwrap.dedent(
    """
    import argparse, json, os
    import wandb
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1.0)
    args, _ = parser.parse_known_args()
    run = wandb.init(config={"lr": 9.0, "keep": 1, "opt": {"name": "adam", "beta": 0.5}, "epochs": 1})
    seen = {"config": dict(wandb.config), "attr": wandb.config.lr, "item": run.config["epochs"],
            "types": {k: type(v).__name__ for k, v in dict(wandb.config).items()}, "argv_lr": args.lr,
            "id": run.id}
    with open(os.path.join(os.environ["OUT_DIR"], run.id + ".json"), "w") as fh:
        json.dump(seen, fh)
    wandb.log({"loss": args.lr})
    run.finish()
    """
)


@pytest.fixture
def sweeps(tmp_path: Path, cli_env: dict[str, str]) -> Sweeps:
    (tmp_path / "out").mkdir()
    env = {**cli_env, "OUT_DIR": str(tmp_path / "out"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return Sweeps(tmp_path, env, PROGRAM)


def test_wandb_config_holds_the_run_params_with_their_types_over_the_script_defaults(
    tmp_path: Path, sweeps: Sweeps
) -> None:
    (tmp_path / "config-defaults.yaml").write_text("epochs:\n  value: 99\nsteps:\n  value: 5\n")
    sid = sweeps.create("""
        method: grid
        parameters:
          lr: {values: [0.1]}
          epochs: {value: 3}
          flag: {value: true}
          name: {value: resnet}
          opt:
            parameters:
              name: {value: sgd}
              momentum: {values: [0.9]}
        """)
    assert sweeps.agents(1, sid) == [0]
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished"
    seen = json.loads((tmp_path / "out" / f"{run['id']}.json").read_text())
    assert seen["id"] == run["id"]  # one W&B run per sweepd run, named by it
    config = seen["config"]
    # the sweep's values, over wandb.init(config=...) and config-defaults.yaml, as W&B's agent does
    assert config["lr"] == 0.1 and config["epochs"] == 3 and config["flag"] is True and config["name"] == "resnet"
    # nested as W&B nests them, merged into the script's own mapping as wandb merges it
    assert config["opt"] == {"name": "sgd", "momentum": 0.9, "beta": 0.5}
    assert config["keep"] == 1 and config["steps"] == 5  # script defaults the sweep does not set stay
    assert seen["types"]["lr"] == "float" and seen["types"]["epochs"] == "int" and seen["types"]["flag"] == "bool"
    assert seen["attr"] == 0.1 and seen["item"] == 3
    assert seen["argv_lr"] == 0.1  # W&B's default command still passes --lr=0.1 to argparse
    assert not (tmp_path / "wandb" / f"sweep-{sid}").exists()  # no W&B sweep named: nothing to reach


def test_a_script_that_never_calls_wandb_init_still_runs_and_its_printed_metrics_are_read(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps = Sweeps(tmp_path, {**cli_env, "WANDB_MODE": "offline"}, "import sys\nprint('loss=0.5')\nsys.exit(0)\n")
    sid = sweeps.create("method: grid\nparameters:\n  a: {values: [1, 2]}\n")
    assert sweeps.agents(1, sid) == [0]
    runs = sweeps.runs(sid)
    assert [r["state"] for r in runs] == ["finished", "finished"]
    assert all(r["summary"].get("loss") == 0.5 for r in runs)


def test_the_params_file_reads_back_through_wandbs_own_loader(tmp_path: Path) -> None:
    from wandb.sdk.lib import config_util

    params = {"lr": 0.001, "layers": [64, 32], "opt": {"name": "sgd", "m": 0.9}, "flag": False, "s": "x y", "n": None}
    env = wandb_env.environment("r1", params, str(tmp_path), {"WANDB_DIR": "/elsewhere"})
    path = env[wandb_env.PARAM_PATH_ENV]
    assert Path(path).read_text().startswith("wandb_version: 1\n\n")
    assert config_util.dict_from_config_file(path, must_exist=True) == params
    assert wandb_env.config_text({}) == "wandb_version: 1"
    assert env["WANDB_RUN_ID"] == "r1" and env["WANDB_RESUME"] == "allow" and env["WANDB_DIR"] == "/elsewhere"
    assert env[wandb_env.FLUSH_ENV] == "1"
    assert wandb_env.FLUSH_ENV not in wandb_env.environment("r1", {}, str(tmp_path), {wandb_env.FLUSH_ENV: "15"})
    assert "WANDB_SWEEP_ID" not in env  # an online script's server never hears of a sweep it lacks
