"""What an agent is started with, and every default, in one place: ``sweepd agent``'s options read
their defaults from ``Options``, and a script that holds its own run (the API without an agent) takes
its heartbeat, grace and checkpoint root from here too."""

from __future__ import annotations

import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sweepd.queue.connections import data_dir
from sweepd.queue.errors import UserError

from .hold import LEASE_HEARTBEATS


@dataclass(frozen=True)
class Options:
    """What ``sweepd agent`` takes on its command line."""

    sweep_id: str
    count: int | None = None
    heartbeat: float = 10.0
    grace: float = 110.0  # fits in AWS's 2-minute notice with room to requeue
    max_retries: int = 0
    max_failures: int = 5
    fast_failures: int = 3
    fast_failure_window: float = 60.0
    idle_poll: float = 1.0
    notices: str = "auto"
    notice_interval: float = 5.0
    notice_signals: tuple[signal.Signals, ...] = ()
    child_signal: signal.Signals = signal.SIGTERM
    #: What a script that logs to W&B gets instead: wandb flushes its rows on SIGINT, not on SIGTERM.
    #: None: ``child_signal`` for every script (``--child-signal`` given).
    wandb_signal: signal.Signals | None = signal.SIGINT
    checkpoint_root: str | None = None  # None: resolve_checkpoint_root() decides
    metrics_port: int | None = None  # serve Prometheus metrics here (0: any free port)
    metrics_addr: str = "0.0.0.0"
    #: ``--gpus``/``--gpus-per-run``: each slot's devices (gpus.py); empty: one run at a time.
    slots: tuple[tuple[str, ...], ...] = ()
    #: ``--pool``: work every sweep of this pool (pool.py) instead of ``sweep_id`` ('').
    pool: str = ""

    @property
    def lease(self) -> float:
        return self.heartbeat * LEASE_HEARTBEATS

    @property
    def checkpoints(self) -> Path:
        return resolve_checkpoint_root(self.checkpoint_root)


def resolve_checkpoint_root(given: str | None) -> Path:
    """Where runs' checkpoint directories live: as given, else ``SWEEPD_CHECKPOINT_ROOT``, else the
    data directory's ``checkpoints``."""
    return Path(given or os.environ.get("SWEEPD_CHECKPOINT_ROOT") or data_dir() / "checkpoints")


def check_writable(root: Path) -> None:
    """Refuse, before any run is claimed, a checkpoint root this agent cannot write: otherwise
    every run it takes would fail to start, burning grid points."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".sweepd-check-"):
            pass
    except OSError as exc:
        raise UserError(
            f"--checkpoint-root {root}: cannot write there ({exc.strerror or exc}); "
            "give a directory this agent can write, or set SWEEPD_CHECKPOINT_ROOT"
        ) from None
