"""A run started by a script itself, without an agent: ``run.init()`` with no ``SWEEPD_AGENT_SOCKET``.

The script then holds its run as an agent would, with the same Lua scripts: ``resume.lua`` applies
the resume table and takes the run (refused while another live process holds it); a background
thread renews the lease every heartbeat (``SWEEPD_HEARTBEAT``, default 10 s) and writes the
buffered metric rows (``log.lua``) every quarter second, so ``log()`` never waits for Redis and a
Redis blip loses nothing; at exit the run is released through the exit-status table
(``complete.lua`` or ``requeue.lua``).

Fencing as for an agent's training process: if the lease cannot be renewed (Redis unreachable) the
process is killed half a heartbeat before the lease could expire, and at once when the run is found
to be someone else's, so two processes never run one run at once. An operator's ``sweepd stop`` or
``requeue`` sets ``run.preempting`` (and calls the callbacks); the script has ``SWEEPD_GRACE``
(default 110 s) to end, after which the run is recorded and the process killed, as an agent would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from sweepd.queue.connections import connect, holder_timeout
from sweepd.queue.errors import UserError
from sweepd.queue.ids import ID_RE, check_id, host_part, new_id
from sweepd.queue.records import Claim
from sweepd.queue.resume import TABLE, Mode, Rule
from sweepd.queue.runs import MANUAL_SWEEP
from sweepd.queue.store import Store

from ..checkpoints import run_dir, travel
from ..checkpoints.roots import (
    CHECKPOINT_SYNC,
    KEEP_CHECKPOINTS,
    object_store_root,
    resolve_checkpoint_cache,
    resolve_checkpoint_root,
)
from ..checkpoints.sync import Outcome, Syncer
from ..hold.hold import FLUSH_EVERY, GRACE, HEARTBEAT, Ending, Hold, lease_of
from ..hold.tick import tick
from ..hold.watchdog import Watchdog
from .exits import ExitWatch
from .script import Run

#: Where ``resume="auto"`` keeps the ID of the run this directory last started, one line (W&B keeps
#: ``wandb/wandb-resume.json``). It is removed when that run finishes.
RESUME_FILE = Path(".sweepd-run-id")


def seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name}={text!r} is not a number of seconds") from None
    if not value > 0:
        raise UserError(f"{name}={text!r} must be more than 0 seconds")
    return value


def count(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{name}={text!r} must be a whole number, 1 or more")
    return int(text)


def read_resume_file(path: Path) -> str | None:
    """The run ID a directory's resume file holds, or None (no file, or not one of ours)."""
    try:
        rid = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    return rid if ID_RE.match(rid) else None


def start(
    *,
    run_id: str | None,
    mode: Mode,
    spelled: str,
    sweep: str | None,
    params: Mapping[str, Any] | None,
    checkpoint_root: str | None,
) -> Run:
    """Start (create or resume, as the table says) and hold a run for this process."""
    heartbeat = seconds("SWEEPD_HEARTBEAT", HEARTBEAT)
    grace = seconds("SWEEPD_GRACE", GRACE)
    auto_file = Path.cwd() / RESUME_FILE if mode == "auto" else None
    if run_id is None and auto_file is not None:
        run_id = read_resume_file(auto_file)
    if run_id is None and mode == "must":
        raise UserError(f"{spelled} resumes an existing run: give its ID (id=... or SWEEPD_RUN_ID)")
    rid = check_id(run_id, "run id") if run_id is not None else new_id()
    if sweep is not None:
        check_id(sweep, "sweep id")
    url = object_store_root(checkpoint_root)
    if url is not None:  # the backend is installed and the store takes a write, before anything is held
        travel.remote(url).probe()
    store = Store(connect(None, timeout=holder_timeout(heartbeat)))
    rule = TABLE[mode]
    sid = sweep_for(store, rid, sweep, rule)
    holder = Holder(store, heartbeat, grace, auto_file)
    sent = time.monotonic()
    started = store.begin(
        rid, sid, rule, dict(params or {}), holder.name, uuid.uuid4().hex, lease_of(heartbeat), spelled=spelled
    )
    claim = started.claim
    root = resolve_checkpoint_cache(None) if url is not None else resolve_checkpoint_root(checkpoint_root)
    checkpoint_dir = run_dir(root, sid, rid)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run = Run(
        run_id=rid,
        sweep_id=sid,
        params={**dict(params or {}), **claim.params},  # the run's own params win over defaults
        attempt=claim.attempt,
        resumed=not started.created,
        last_step=claim.last_step,
        checkpoint_dir=str(checkpoint_dir),
        sink=holder,
    )
    holder.hold_run(claim, run, sent)
    if url is not None:  # as an agent's attempt: the latest committed snapshot, or empty (travel.py)
        keep = count("SWEEPD_KEEP_CHECKPOINTS", KEEP_CHECKPOINTS)
        holder.travel(
            Syncer(travel.remote(url), store, claim, checkpoint_dir, keep=keep, say=holder._say, holding=holder.holding)
        )
    if auto_file is not None:
        auto_file.write_text(rid + "\n", encoding="utf-8")
    return run


def sweep_for(store: Store, rid: str, sweep: str | None, rule: Rule) -> str:
    """The sweep the run is started in: its own when it exists (another named is refused where the
    table resumes it), else the one named (which must exist), else the manual runs' sweep."""
    owner = store.sweep_of(rid)
    if owner is not None and sweep is not None and owner != sweep and rule.if_exists == "resume":
        raise UserError(f"run {rid!r} belongs to sweep {owner!r}, not {sweep!r}")
    sid = owner or sweep or MANUAL_SWEEP
    if owner is None and sid != MANUAL_SWEEP:
        store.sweep(sid)  # a named sweep must exist
    return sid


class Holder:
    """A ``Sink`` (script.py) that holds the run in Redis for this process and writes its rows; to
    its hold (hold/hold.py) it is the ``Process``: this very process, killed or told."""

    def __init__(self, store: Store, heartbeat: float, grace: float, auto_file: Path | None) -> None:
        self.store = store
        self.heartbeat, self.grace = heartbeat, grace
        self.auto_file = auto_file
        self.name = f"{host_part(socket.gethostname())}-{os.getpid()}-by-hand"
        self.marked = False  # the script called mark_preempting()
        self.hold: Hold | None = None
        self.watchdog: Watchdog | None = None
        self.run: Run | None = None
        self.stop = threading.Event()  # the script is ending: the worker stops
        self.exits = ExitWatch(self._at_exit)
        self._worker: threading.Thread | None = None
        self.sync: Syncer | None = None  # an object-store checkpoint root's snapshots

    def holding(self) -> bool:
        return self.hold is not None and self.hold.holding()

    def travel(self, sync: Syncer) -> None:
        """Restore the run's latest committed snapshot (the worker renews meanwhile), then snapshot
        every ``SWEEPD_CHECKPOINT_SYNC`` seconds (default 300; 0: only at the end)."""
        self.sync = sync
        sync.restore()
        every = os.environ.get("SWEEPD_CHECKPOINT_SYNC")
        try:
            sync.start(float(every) if every else CHECKPOINT_SYNC)
        except ValueError:
            raise UserError(f"SWEEPD_CHECKPOINT_SYNC={every!r} is not a number of seconds") from None

    def hold_run(self, claim: Claim, run: Run, sent: float) -> None:
        """Hold the run (its lease taken at ``sent``, by our clock): guard it, renew it, write its rows."""
        self.run = run
        self.watchdog = Watchdog()
        self.hold = Hold(self.store, claim, self, self.heartbeat, self.grace, sent, say=self._say)
        self.hold.watchdog = self.watchdog
        self.hold.give_up = self._waited_enough
        self.hold.guard(os.getpid())  # the watchdog kills this process if its own threads cannot
        self._worker = threading.Thread(target=self._work, daemon=True, name="sweepd-work")
        self._worker.start()
        self.exits.install()

    def _waited_enough(self) -> bool:
        """A script's end waits for Redis a lease past its lease's end, then leaves the run to the
        reaper: a script run by hand must exit some time (an agent waits as long as it lives)."""
        hold = self.hold
        return hold is None or time.monotonic() >= hold.lease_until + hold.lease

    def _at_exit(self, code: int) -> None:
        if self.run is not None:
            self.run.finish(code)

    # the Sink interface ---------------------------------------------------------------------------

    def rows(self, items: list[dict[str, Any]], cut: int = 0) -> None:
        if self.hold is not None:
            self.hold.add_rows(items)
            self.hold.cut("cut by the script's API", count=cut)

    def mark(self) -> None:
        self.marked = True

    def close(self, exit_code: int) -> None:
        """The script ends with ``exit_code``: write what is buffered, then apply the exit-status table."""
        self.exits.uninstall()
        outcome = self._last_snapshot(exit_code)
        self.stop.set()
        if self._worker is not None and threading.current_thread() is not self._worker:
            self._worker.join(self.heartbeat + 1)
        if self.hold is not None:
            self.hold.release()  # the script is ending on its own: the guard has nothing left to stop
        self._record(exit_code)
        if self.sync is not None and outcome is not None:
            travel.forget(self.sync, outcome)
        if self.watchdog is not None:
            self.watchdog.close()

    def _last_snapshot(self, exit_code: int) -> Outcome | None:
        """The script's last snapshot, committed while the worker still renews, within the grace."""
        if self.sync is None or self.hold is None:
            return None
        self.sync.stop()
        deadline = self.hold.kill_at if self.hold.kill_at is not None else time.monotonic() + self.grace
        return self.sync.sync(deadline, keep=1 if exit_code == 0 else None)

    # the Process interface (hold.py) -----------------------------------------------------------------

    def kill(self) -> None:
        """Stop this process and what it started, as an agent stops its training process's tree."""
        sys.stderr.flush()
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        os.kill(os.getpid(), signal.SIGKILL)

    def tell(self, ending: Ending, reason: str, grace: float) -> None:
        # The script's callbacks may take a while (a checkpoint): never on the thread that renews.
        if self.run is not None:
            threading.Thread(target=self.run.notice, args=(reason,), daemon=True).start()

    # the background ---------------------------------------------------------------------------------

    def _work(self) -> None:
        hold = self.hold
        assert hold is not None
        while not self.stop.wait(FLUSH_EVERY):
            if tick(hold, time.monotonic(), marked=self.marked).kill:
                self._say("warning", f"the grace period after {hold.reason} is over: recording the run and stopping")
                self._record(-int(signal.SIGKILL))
                self.kill()

    def _record(self, exit_code: int) -> None:
        """Apply the exit-status table once, as the holder; a finished run leaves ``auto``'s file."""
        hold = self.hold
        if hold is None:
            return
        if self.marked:
            hold.script_marked(mark=False)
        done = hold.record(exit_code)
        if done is not None and done.how == "ended" and done.state == "finished":
            self._forget_auto_file(hold.claim.run_id)

    def _forget_auto_file(self, rid: str) -> None:
        """A finished run is no candidate for ``auto`` any more (W&B removes its file the same way)."""
        if self.auto_file is not None and read_resume_file(self.auto_file) == rid:
            with contextlib.suppress(OSError):
                self.auto_file.unlink()

    def _say(self, level: str, event: str, /, **fields: Any) -> None:
        """What the hold reports, on this script's stderr (the agent's log is not there to take it)."""
        if level == "info":
            return
        rid = self.hold.claim.run_id if self.hold else "?"
        detail = "".join(f" ({k}: {v})" for k, v in fields.items())
        print(f"sweepd: run {rid}: {event}{detail}", file=sys.stderr, flush=True)
