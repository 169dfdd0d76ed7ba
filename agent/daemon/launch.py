"""What a run's training process is started with: its argv (the sweep's command with every macro
expanded) and its environment (the run's identity, its params file, the agent's socket, where to
checkpoint; never the Redis URL)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sweepd.queue import command
from sweepd.queue.records import Claim
from sweepd.queue.space import SweepConfig

from . import wandb_env
from .sdnotify import ENV_VARS


def interpreter() -> str:
    """``${interpreter}``: ``python`` as W&B does, or this Python where no ``python`` is on PATH."""
    return "python" if shutil.which("python") else sys.executable


def argv(config: SweepConfig, claim: Claim, params_file: str) -> list[str]:
    """The run's argv; ``ConfigError`` when this machine cannot build it (an unset variable)."""
    return command.expand(
        config.command,
        program=config.program,
        params=claim.params,
        environ=os.environ,
        interpreter=interpreter(),
        params_file=params_file,
    )


def environment(claim: Claim, checkpoint_root: str, params_file: str, socket_path: str) -> dict[str, str]:
    """The agent's environment, less what is the agent's alone, plus the run's ``SWEEPD_*`` (and
    W&B's run id, resume mode and the run's parameters, so ``wandb.init`` in the script joins the same
    run with them: wandb_env.py)."""
    checkpoint_dir = Path(checkpoint_root) / claim.sweep_id / claim.run_id
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for name in command.AGENT_ONLY_ENV:  # the script talks to its agent, never to Redis
        env.pop(name, None)
    for name in (*ENV_VARS, "SWEEPD_RESUME_STEP"):  # systemd's notify socket is the agent's, not
        env.pop(name, None)  # the script's; a resume step is only ever this run's
    if claim.last_step is not None:  # where the run's history continues: log() counts on from it
        env["SWEEPD_RESUME_STEP"] = str(claim.last_step)
    env.update(
        SWEEPD_SWEEP_ID=claim.sweep_id,
        SWEEPD_RUN_ID=claim.run_id,
        SWEEPD_ATTEMPT=str(claim.attempt),
        SWEEPD_RESUME="allow",
        SWEEPD_PARAMS_FILE=params_file,
        SWEEPD_AGENT_SOCKET=socket_path,
        SWEEPD_CHECKPOINT_DIR=str(checkpoint_dir),
    )
    env.update(wandb_env.environment(claim.run_id, claim.params, os.path.dirname(params_file), env))
    return env
