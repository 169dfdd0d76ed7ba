"""What an agent is started with, and its defaults, in one place: ``sweepd agent``'s options read
their defaults from ``Options``. What every holder shares (heartbeat, grace: hold/hold.py; the
checkpoint root and the snapshots kept: checkpoints/roots.py) is written there, and read here and by
a script that holds its own run (the API without an agent) alike."""

from __future__ import annotations

import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sweepd.queue.errors import UserError

from ..checkpoints.roots import (
    CHECKPOINT_SYNC,
    KEEP_CHECKPOINTS,
    object_store_root,
    resolve_checkpoint_cache,
    resolve_checkpoint_root,
)
from ..hold.hold import GRACE, HEARTBEAT, lease_of


@dataclass(frozen=True)
class Options:
    """What ``sweepd agent`` takes on its command line."""

    sweep_id: str
    count: int | None = None
    heartbeat: float = HEARTBEAT
    grace: float = GRACE
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
    checkpoint_sync: float = CHECKPOINT_SYNC
    keep_checkpoints: int = KEEP_CHECKPOINTS
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
