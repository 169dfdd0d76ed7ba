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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from sweepd.queue import keys, states
from sweepd.queue.connections import connect, data_dir
from sweepd.queue.errors import UserError
from sweepd.queue.records import Claim
from sweepd.queue.resume import TABLE, Mode
from sweepd.queue.runs import MANUAL_SWEEP
from sweepd.queue.store import Store, new_id

from .backoff import REDIS_DOWN, Backoff
from .buffer import Buffer
from .exits import ExitWatch
from .script import Run

LEASE_HEARTBEATS = 3  # as an agent's lease
FLUSH_EVERY = 0.25  # seconds between writes of buffered rows
#: Where ``resume="auto"`` keeps the ID of the run this directory last started, one line (W&B keeps
#: ``wandb/wandb-resume.json``). It is removed when that run finishes.
RESUME_FILE = Path(".sweepd-run-id")
#: What a renewal can ask of the holder, and the reason the run's record will give (as attempt.py).
_ENDINGS: dict[str, tuple[str, str]] = {
    "stop": ("stop", "operator-stop"),
    "cancel": ("stop", "sweep-cancelled"),
    "requeue": ("preempt", "operator-requeue"),
}


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


def read_resume_file(path: Path) -> str | None:
    """The run ID a directory's resume file holds, or None (no file, or not one of ours)."""
    try:
        rid = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    return rid if keys.ID_RE.match(rid) else None


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
    heartbeat = seconds("SWEEPD_HEARTBEAT", 10.0)
    grace = seconds("SWEEPD_GRACE", 110.0)
    auto_file = Path.cwd() / RESUME_FILE if mode == "auto" else None
    if run_id is None and auto_file is not None:
        run_id = read_resume_file(auto_file)
    if run_id is None and mode == "must":
        raise UserError(f"{spelled} resumes an existing run: give its ID (id=... or SWEEPD_RUN_ID)")
    rid = keys.check_id(run_id, "run id") if run_id is not None else new_id()
    if sweep is not None:
        keys.check_id(sweep, "sweep id")
    store = Store(connect(None, timeout=min(10.0, max(1.0, heartbeat))))
    rule = TABLE[mode]
    owner = store.sweep_of(rid)
    if owner is not None and sweep is not None and owner != sweep and rule.if_exists == "resume":
        raise UserError(f"run {rid!r} belongs to sweep {owner!r}, not {sweep!r}")
    sid = owner or sweep or MANUAL_SWEEP
    if owner is None and sid != MANUAL_SWEEP:
        store.sweep(sid)  # a named sweep must exist
    holder = Holder(store, heartbeat, grace, auto_file)
    sent = time.monotonic()
    started = store.begin(
        rid, sid, rule, dict(params or {}), holder.name, uuid.uuid4().hex, holder.lease, spelled=spelled
    )
    claim = started.claim
    root = Path(checkpoint_root or os.environ.get("SWEEPD_CHECKPOINT_ROOT") or data_dir() / "checkpoints")
    checkpoint_dir = root / sid / rid
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
    holder.hold(claim, run, sent)
    if auto_file is not None:
        auto_file.write_text(rid + "\n", encoding="utf-8")
    return run


class Holder:
    """A ``Sink`` (script.py) that holds the run in Redis for this process and writes its rows."""

    def __init__(self, store: Store, heartbeat: float, grace: float, auto_file: Path | None) -> None:
        self.store = store
        self.heartbeat, self.grace = heartbeat, grace
        self.lease = heartbeat * LEASE_HEARTBEATS
        self.auto_file = auto_file
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
        self.name = f"{host}-{os.getpid()}-by-hand"
        self.buffer = Buffer()
        self.marked = False  # the script called mark_preempting()
        self._marked_in_redis = False
        self.ending: str | None = None  # an operator's "stop" or "preempt" (requeue), once asked
        self.reason = ""
        self.kill_at: float | None = None
        self.lease_until = 0.0
        self.claim: Claim | None = None
        self.run: Run | None = None
        self.stop = threading.Event()  # the script is ending: the worker stops
        self.done = threading.Event()  # the run is released (or lost): the guard stops
        self.exits = ExitWatch(self._at_exit)
        self._record_lock = threading.Lock()
        self._recorded = False
        self._backoff = Backoff(cap=max(0.1, heartbeat / 2))
        self._threads: list[threading.Thread] = []

    def hold(self, claim: Claim, run: Run, sent: float) -> None:
        """Start renewing the lease (taken at ``sent``, by our clock) and writing rows."""
        self.claim, self.run = claim, run
        self.lease_until = sent + self.lease
        for target in (self._work, self._guard):
            thread = threading.Thread(target=target, daemon=True, name=f"sweepd-{target.__name__[1:]}")
            thread.start()
            self._threads.append(thread)
        self.exits.install()

    def _at_exit(self, code: int) -> None:
        if self.run is not None:
            self.run.finish(code)

    # the Sink interface ---------------------------------------------------------------------------

    def rows(self, items: list[dict[str, Any]]) -> None:
        self.buffer.add(items)

    def mark(self) -> None:
        self.marked = True

    def close(self, exit_code: int) -> None:
        """The script ends with ``exit_code``: write what is buffered, then apply the exit-status table."""
        self.exits.uninstall()
        self.stop.set()
        if self._threads and threading.current_thread() is not self._threads[0]:
            self._threads[0].join(self.heartbeat + 1)
        self._record(exit_code)
        self.done.set()

    # the background ---------------------------------------------------------------------------------

    def _work(self) -> None:
        next_renew = time.monotonic() + self.heartbeat
        while not self.stop.wait(FLUSH_EVERY):
            with contextlib.suppress(*REDIS_DOWN):  # the rows wait for the next flush
                self._flush()
            if self.marked and not self._marked_in_redis:
                self._mark("child-marked")
            now = time.monotonic()
            if now >= next_renew:
                next_renew = self._renew(now)
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self._say(f"the grace period after {self.reason} is over: recording the run and stopping")
                self._record(-int(signal.SIGKILL))
                self._kill_self()

    def _guard(self) -> None:
        """Fencing on a thread of its own, as an agent's: nothing the worker waits on delays it."""
        margin = self.heartbeat / 2
        while not self.done.is_set():
            left = self.lease_until - margin - time.monotonic()
            if left <= 0 and self.stop.is_set():
                return  # the script is ending anyway: its record is given up at the same deadline
            if left <= 0:
                self.done.set()
                self._say(
                    "the run's lease could not be renewed in time (or the run is no longer ours): "
                    "stopping this process, so that no other can run the same run at once"
                )
                self._kill_self()
                return
            self.done.wait(min(left, 0.1))

    def _renew(self, now: float) -> float:
        assert self.claim is not None and self.run is not None
        try:
            renewal = self.store.renew(self.claim, self.lease)
        except REDIS_DOWN:
            return now + self._backoff.next()
        self._backoff.reset()
        self.lease_until = 0.0 if renewal == "fenced" else now + self.lease  # fenced: the guard acts now
        if renewal in _ENDINGS and self.ending is None:
            self.ending, self.reason = _ENDINGS[renewal]
            if self.ending == "preempt":
                self._mark(self.reason)
            self.kill_at = time.monotonic() + self.grace
            # The script's callbacks may take a while (a checkpoint): never on this thread, which renews.
            threading.Thread(target=self.run.notice, args=(self.reason,), daemon=True).start()
        return now + self.heartbeat

    def _mark(self, reason: str) -> None:
        assert self.claim is not None
        with contextlib.suppress(*REDIS_DOWN):
            self.store.mark_preempting(self.claim, reason)
            self._marked_in_redis = True

    def _flush(self) -> bool:
        """Write the buffered rows; on a Redis error they go back to the buffer (bounded) and the
        error is raised."""
        assert self.claim is not None
        items = self.buffer.take()
        try:
            if items and not self.store.log_metrics(self.claim, items):
                self._say(f"{len(items)} metric rows refused: the run is no longer ours")
        except REDIS_DOWN:
            self.buffer.put_back(items)
            raise
        return True

    def _record(self, exit_code: int) -> None:
        """Write the last rows and apply the exit-status table, once, as the holder (retried while
        the lease may still hold; else the lease expires and the run is requeued)."""
        with self._record_lock:
            if self._recorded or self.claim is None:
                return
            self._recorded = True
        claim, store = self.claim, self.store
        preempting = self.marked or self.ending == "preempt"
        end = states.outcome(exit_code, preempting=preempting, stopping=self.ending == "stop")
        reason = self.reason or ("child-marked" if self.marked else "") or end.reason
        self._persist(self._flush)
        if end.requeue:
            event = {"event": "requeued", "run_id": claim.run_id, "attempt": claim.attempt, "reason": reason}
            if self._persist(lambda: store.requeue(claim, reason=reason)):
                self._persist(lambda: store.add_event(claim.sweep_id, event))
        elif self._persist(lambda: store.complete(claim, end.state, exit_code, reason)) and end.state == "finished":
            self._forget_auto_file(claim.run_id)

    def _persist(self, write: Callable[[], bool]) -> bool:
        backoff = Backoff(cap=max(0.1, self.heartbeat / 2))
        while True:
            try:
                return bool(write())
            except REDIS_DOWN:
                if time.monotonic() + backoff.cap >= self.lease_until:
                    self._say("could not reach Redis to record the run's end: its lease will expire and requeue it")
                    return False
                time.sleep(backoff.next())

    def _forget_auto_file(self, rid: str) -> None:
        """A finished run is no candidate for ``auto`` any more (W&B removes its file the same way)."""
        if self.auto_file is not None and read_resume_file(self.auto_file) == rid:
            with contextlib.suppress(OSError):
                self.auto_file.unlink()

    def _kill_self(self) -> None:
        """Stop this process and what it started, as an agent stops its training process's tree."""
        sys.stderr.flush()
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        os.kill(os.getpid(), signal.SIGKILL)

    def _say(self, text: str) -> None:
        rid = self.claim.run_id if self.claim else "?"
        print(f"sweepd: run {rid}: {text}", file=sys.stderr, flush=True)
