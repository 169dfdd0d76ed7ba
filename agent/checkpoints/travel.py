"""A holder's checkpoints when the checkpoint root is an object store (an agent's attempt, or a
script holding its own run, api/standalone.py): the working copy restored before the training
process starts, snapshots in the background and at the end, and the waits for them, during which
the lease is renewed as while the process runs (a transfer is the holder's work: it must not let
the lease lapse, nor outlast a notice's deadline).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Protocol, TypeVar

from sweepd.queue.records import Claim
from sweepd.queue.store import Store

from ..hold.hold import Hold
from . import run_dir
from .remote import Remote
from .sync import LATE, Counts, Outcome, Say, Syncer

T = TypeVar("T")


class Roots(Protocol):
    """Where an agent's runs' checkpoints are (daemon/options.py's ``Options``)."""

    @property
    def checkpoint_url(self) -> str | None: ...

    @property
    def checkpoints(self) -> Path: ...

    @property
    def keep_checkpoints(self) -> int: ...


@cache
def remote(url: str) -> Remote:
    """One client per root for the process (fsspec's filesystems are meant to be shared)."""
    return Remote(url)


def check_root(opts: Roots) -> None:
    """At agent start, before anything is claimed: the backend is installed and the store can be
    written (UserError: one line, exit 2)."""
    if opts.checkpoint_url is not None:
        remote(opts.checkpoint_url).probe()


def syncer(opts: Roots, store: Store, claim: Claim, hold: Hold, say: Say, counts: Counts | None) -> Syncer | None:
    """The attempt's syncer; None with a plain checkpoint root (shared storage: nothing copied)."""
    if opts.checkpoint_url is None:
        return None
    workdir = run_dir(opts.checkpoints, claim.sweep_id, claim.run_id)
    return Syncer(
        remote(opts.checkpoint_url),
        store,
        claim,
        workdir,
        keep=opts.keep_checkpoints,
        say=say,
        counts=counts,
        holding=hold.holding,
    )


def renewing(hold: Hold, work: Callable[[], T], deadline: float | None) -> tuple[bool, T | None]:
    """Run ``work`` on a thread while this one renews the lease. (False, None) when the deadline
    passed first or the run stopped being ours; its error is raised."""
    box: list[T] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="sweepd-transfer", daemon=True).start()
    while not done.is_set():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return False, None
        if now >= hold.next_renew and hold.renew(now) == "fenced":
            return False, None
        wait = hold.next_renew - now
        if deadline is not None:
            wait = min(wait, deadline - now)
        done.wait(max(0.01, wait))
    if errors:
        raise errors[0]
    return True, box[0]


def final(sync: Syncer, hold: Hold, deadline: float, keep: int) -> Outcome:
    """The attempt's last snapshot, committed only if it is up before ``deadline``."""
    sync.stop()
    finished, outcome = renewing(hold, lambda: sync.sync(deadline, keep=keep), deadline)
    if not finished or outcome is None:
        size, started = sync.sending or (0, time.monotonic())
        sync.say("warning", LATE, bytes=size, seconds=round(time.monotonic() - started, 3))
        return "late"
    return outcome


def forget(sync: Syncer, outcome: Outcome) -> None:
    """The run has moved on: its working copy goes once the store has it all (else it is kept)."""
    if outcome in ("committed", "unchanged"):
        shutil.rmtree(sync.workdir, ignore_errors=True)
    else:
        sync.say("warning", "checkpoint working copy kept: its last snapshot was not committed", path=str(sync.workdir))
