"""What a run's training process is started with: its argv (the sweep's command with every macro
expanded) and its environment (the run's identity, its params file, the agent's socket, where to
checkpoint; never the Redis URL)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading

from sweepd.queue import command
from sweepd.queue.records import Claim
from sweepd.queue.space import SweepConfig

from ..api.script import RANK_VARS
from ..checkpoints import run_dir
from . import wandb_env
from .sdnotify import ENV_VARS

#: The run's parameters, written for it beside its checkpoints (``SWEEPD_PARAMS_FILE``).
PARAMS_NAME = ".sweepd-params.json"


def write_params(claim: Claim, checkpoint_root: str) -> str:
    """Write the run's parameters where every rank of a run that spans nodes can read them: its
    checkpoint directory, on the checkpoint root they share. The path (``OSError`` if unwritable)."""
    directory = run_dir(checkpoint_root, claim.sweep_id, claim.run_id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PARAMS_NAME
    partial = path.with_name(f"{PARAMS_NAME}.{os.getpid()}")
    partial.write_text(json.dumps(claim.params), encoding="utf-8")
    partial.replace(path)  # a rank never reads a half-written file
    return str(path)


class Scratch:
    """Private directories for attempts (the agent's socket, wandb's reader's own files), kept for
    the agent's life and handed out again once emptied: making and removing one for each run cost
    a run of `true` a quarter of a millisecond. Slots take one each (thread-safe)."""

    def __init__(self) -> None:
        self._free: list[str] = []
        self._made: list[str] = []
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop()
            path = tempfile.mkdtemp(prefix="sweepd-")
            self._made.append(path)
            return path

    def give(self, path: str) -> None:
        """An attempt is done with ``path``: empty it (after most runs it is empty already)."""
        with os.scandir(path) as entries:
            for entry in list(entries):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        with self._lock:
            self._free.append(path)

    def close(self) -> None:
        with self._lock:
            made, self._made, self._free = self._made, [], []
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


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
    checkpoint_dir = run_dir(checkpoint_root, claim.sweep_id, claim.run_id)  # write_params made it
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
    for name in RANK_VARS:  # what the run's first process inherits is no rank of the run's own
        env.pop(f"SWEEPD_INHERITED_{name}", None)
        if name in os.environ:
            env[f"SWEEPD_INHERITED_{name}"] = os.environ[name]
    env.update(wandb_env.environment(claim.run_id, claim.params, os.path.dirname(params_file), env))
    return env
