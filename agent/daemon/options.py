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

from ..checkpoints.remote import is_url
from ..hold.hold import lease_of


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
    #: With an object-store root: where the runs' local working copies live (None: under the data dir).
    checkpoint_cache: str | None = None
    checkpoint_sync: float = 300.0  # seconds between background snapshots (0: only at an attempt's end)
    keep_checkpoints: int = 2  # committed snapshots kept per run
    metrics_port: int | None = None  # serve Prometheus metrics here (0: any free port)
    metrics_addr: str = "0.0.0.0"
    #: ``--gpus``/``--gpus-per-run``: each slot's devices (gpus.py); empty: one run at a time.
    slots: tuple[tuple[str, ...], ...] = ()
    #: ``--pool``: work every sweep of this pool (pool.py) instead of ``sweep_id`` ('').
    pool: str = ""

    @property
    def lease(self) -> float:
        return lease_of(self.heartbeat)

    @property
    def checkpoints(self) -> Path:
        """Where runs' checkpoint directories are on this machine: the shared root itself, or, with
        an object-store root, the local working copies (``checkpoint_url``)."""
        if self.checkpoint_url is not None:
            return resolve_checkpoint_cache(self.checkpoint_cache)
        return resolve_checkpoint_root(self.checkpoint_root)

    @property
    def checkpoint_url(self) -> str | None:
        """The object store runs' snapshots travel through; None: a plain path (shared storage)."""
        return object_store_root(self.checkpoint_root)


def object_store_root(given: str | None) -> str | None:
    root = given or os.environ.get("SWEEPD_CHECKPOINT_ROOT") or ""
    return root if is_url(root) else None


def resolve_checkpoint_root(given: str | None) -> Path:
    """Where runs' checkpoint directories live: as given, else ``SWEEPD_CHECKPOINT_ROOT``, else the
    data directory's ``checkpoints``. (An object-store URL: ``resolve_checkpoint_cache``.)"""
    root = given or os.environ.get("SWEEPD_CHECKPOINT_ROOT") or ""
    if is_url(root):
        return resolve_checkpoint_cache(None)
    return Path(root or data_dir() / "checkpoints")


def resolve_checkpoint_cache(given: str | None) -> Path:
    """The local working copies of an object-store root: as given, else ``SWEEPD_CHECKPOINT_CACHE``,
    else the data directory's ``checkpoint-cache``."""
    return Path(given or os.environ.get("SWEEPD_CHECKPOINT_CACHE") or data_dir() / "checkpoint-cache")


def check_writable(root: Path, flag: str = "--checkpoint-root") -> None:
    """Refuse, before any run is claimed, a checkpoint root this agent cannot write: otherwise
    every run it takes would fail to start, burning grid points."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".sweepd-check-"):
            pass
    except OSError as exc:
        raise UserError(
            f"{flag} {root}: cannot write there ({exc.strerror or exc}); "
            f"give a directory this agent can write, or set SWEEPD_{flag[2:].replace('-', '_').upper()}"
        ) from None
