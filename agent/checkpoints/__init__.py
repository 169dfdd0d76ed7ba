"""Checkpoints that travel with the run: snapshots of a run's checkpoint directory in an object
store (fsspec: s3://, gs://, az://, file://), committed in Redis by the run's holder only.

manifest.py  what a snapshot is, and what to upload, keep and delete (pure)
remote.py    the store through fsspec: the URL, the probe, parallel transfers bound by a deadline
sync.py      one attempt's working copy: restore the latest committed snapshot, snapshot, commit
travel.py    a holder's use of it (an agent's attempt, a script's own run): waits that renew the lease
roots.py     where checkpoints live, and how many snapshots are kept by default
"""

from pathlib import Path


def run_dir(root: str | Path, sweep_id: str, run_id: str) -> Path:
    """A run's checkpoint directory under a checkpoint root (or the working copies' cache): the
    same on every attempt and every rank, so a resumed run finds what the last one saved."""
    return Path(root) / sweep_id / run_id
