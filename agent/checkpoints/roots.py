"""Where runs' checkpoints live, for every holder: an agent (its ``--checkpoint-root`` and
``--checkpoint-cache``, daemon/options.py) and a script holding its own run (api/standalone.py)
resolve a checkpoint root the same way, and keep the same number of snapshots by default."""

from __future__ import annotations

import os
from pathlib import Path

from sweepd.queue.connections import data_dir

from .remote import is_url

KEEP_CHECKPOINTS = 2  # committed snapshots kept per run
CHECKPOINT_SYNC = 300.0  # seconds between background snapshots (0: only at an attempt's end)


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
