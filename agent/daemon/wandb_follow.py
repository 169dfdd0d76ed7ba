"""Reading what an unmodified W&B script logs, live, from what wandb itself writes.

wandb (online or offline) writes every run's records to a transaction log, ``run-<id>.wandb`` in the
run's directory under ``$WANDB_DIR/wandb/``. The agent never parses that binary format itself: it runs
wandb's own reader, ``wandb leet inspect --json --follow FILE`` (wandb-core's, shipped with the
package, the same code ``wandb sync`` trusts), which prints each record as one JSON line as the run
writes it and stops at the run's exit record. So the mechanism follows wandb across upgrades: the
file format is wandb's to change and its reader changes with it; sweepd depends only on a documented
command and on the JSON names of a history row (``wandb_records.py``).

One thread per attempt: it looks for the attempt's file (the run id is sweepd's, ``wandb_env.py``;
files of earlier attempts are skipped) under ``$WANDB_DIR/wandb/``, or, for a script that chose its
own ``wandb.init(dir=...)``, among the files the run's processes hold open (wandb-core's); then it
reads the reader's lines into the attempt's rows. When the training process has ended, ``finish``
gives the reader a moment to reach the exit record; if the run was cut short (no exit record) it
reads the whole, now final, file once more, skipping the records already read. The reader gets
``WANDB_MODE=offline`` and no error reporting: it never reaches a W&B server. Nothing happens when
no reader is found (wandb not installed where the agent can run it) or when the script never calls
``wandb.init``.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from sweepd.queue import command

from . import logs
from .wandb_records import Records

log = logs.get("sweepd.agent")

FIND_EVERY = 0.25  # seconds between looks for the attempt's W&B run file
#: The follower's thread starts once the training process has lived this long: a run that ends
#: sooner is read once, at its end (``finish``). Looking for a run file costs a thread and a scan
#: of the run's processes, about 2.5 ms, which a run of `true` would pay for nothing.
START_AFTER = 0.25
RELIST_EVERY = 5.0  # the runs directory is listed at least this often, changed or not
SCAN_EVERY = 1.0  # how often the run's processes' open files are looked through, when it is elsewhere
SETTLE = 1.0  # seconds the reader gets, after the process ended, to reach the exit record
READ_TIMEOUT = 30.0  # the longest a final read of a cut-short run may take
IDLE = "60s"  # the reader's --idle-timeout: wandb writes system stats every 15 s, so only a dead run is idle


def reader_command(environ: Mapping[str, str]) -> list[str] | None:
    """wandb's reader as the run would find it (``wandb`` on its PATH), else this Python's wandb.
    Remembered per PATH once found (a look along PATH is a stat per directory, for every run); not
    while missing, so a wandb installed beside a running agent is found at its next run."""
    path = environ.get("PATH")
    if path not in _READERS:
        found = shutil.which("wandb", path=path)
        if found:
            _READERS[path] = (found,)
        elif importlib.util.find_spec("wandb") is not None:
            _READERS[path] = (sys.executable, "-m", "wandb")
        else:
            return None
    return list(_READERS[path])


_READERS: dict[str | None, tuple[str, ...]] = {}


def child_signal(follower: Follower | None, default: signal.Signals, wandb: signal.Signals | None) -> signal.Signals:
    """The preemption signal: ``wandb`` (SIGINT, which lets wandb write what it holds; it dies
    holding it on SIGTERM) once the attempt's process has a W&B run, else ``default``."""
    if wandb is not None and follower is not None and follower.path is not None:
        return wandb
    return default


def reader_environment(environ: Mapping[str, str], scratch: str) -> dict[str, str]:
    """Offline, without error reports: the reader reaches no server. Its own logs go to ``scratch``
    (the attempt's directory), not into the user's wandb directory."""
    env = {k: v for k, v in environ.items() if k not in command.AGENT_ONLY_ENV}
    env.update(WANDB_MODE="offline", WANDB_ERROR_REPORTING="false", WANDB_SILENT="true", WANDB_DIR=scratch)
    return env


class Follower:
    """One attempt's W&B run, read as it is written. ``on_found`` is called once the file exists,
    ``on_rows`` with each batch of rows, ``on_summary`` with values the script set in its summary
    (``run.summary[...]``), ``on_preempting`` when the script marked the run preempting
    (all on the follower's thread)."""

    def __init__(
        self,
        run_id: str,
        root: str,
        last_step: int | None,
        environ: Mapping[str, str],
        scratch: str,
        *,
        on_rows: Callable[[list[dict[str, Any]]], None],
        on_summary: Callable[[dict[str, Any]], None] = lambda values: None,
        on_found: Callable[[], None] = lambda: None,
        on_preempting: Callable[[], object] = lambda: None,
    ) -> None:
        self.records = Records(last_step)
        self.runs = os.path.join(root, "wandb")  # where wandb makes its run directories
        self.dirs = os.path.join(glob.escape(self.runs), f"*run-*-{run_id}")  # this run's (ids: no glob characters)
        self.file = f"run-{run_id}.wandb"
        # earlier attempts' runs (a glob is dearer than the look that finds no runs directory)
        self.before = set(glob.glob(self.dirs)) if os.path.isdir(self.runs) else set()
        self._listed: int | None = None  # the runs directory's mtime when it was last listed
        self._listed_at = 0.0
        self._fresh: list[str] = []  # this attempt's run directories (one, unless the script made more)
        self.pid: int | None = None
        self._scanned_at = 0.0
        self.argv = reader_command(environ)
        self.env = reader_environment(environ, scratch)
        self.on_rows, self.on_summary = on_rows, on_summary
        self.on_found, self.on_preempting = on_found, on_preempting
        self.path: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # the records: the thread's, then the final read's
        self._stop = threading.Event()
        #: The script reports through sweepd's own API (it said hello): what it also logs to W&B is
        #: not read, so nothing is counted twice.
        self.muted = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wandb-follow", daemon=True)

    def follow(self, pid: int) -> None:
        """The run is that of the process ``pid`` (the training process) and its descendants: read
        at its end (``finish``), and as it is written once ``start_once_due`` started the thread."""
        self.pid = pid

    def start_once_due(self, lived: float) -> None:
        """Start following once the process has lived ``START_AFTER`` seconds (called on each turn
        of the attempt's loop)."""
        if lived >= START_AFTER and self.argv is not None and self._thread.ident is None:
            self._thread.start()

    def pids(self) -> set[int]:
        """The reader's process: the agent's own child, not one the run left behind."""
        proc = self.proc
        return {proc.pid} if proc is not None else set()

    def _find(self) -> str | None:
        """This attempt's run file, once it exists. The runs directory (which may hold thousands of
        old runs) is listed again when an entry was added to it, and every RELIST_EVERY."""
        now = time.monotonic()
        try:
            listed: int | None = os.stat(self.runs).st_mtime_ns
        except OSError:
            listed = None
        if listed is not None and (listed != self._listed or now - self._listed_at >= RELIST_EVERY):
            self._listed, self._listed_at = listed, now  # (relisted now and then: mtimes have a granularity)
            self._fresh = [d for d in glob.glob(self.dirs) if d not in self.before]
        found: list[tuple[float, str]] = []
        for d in self._fresh:
            path = os.path.join(d, self.file)
            with contextlib.suppress(OSError):
                found.append((os.path.getmtime(path), path))
        if found:
            return max(found)[1]
        if now - self._scanned_at >= SCAN_EVERY:
            self._scanned_at = now
            return self._open_by_the_run()
        return None

    def _open_by_the_run(self) -> str | None:
        """The run file as wandb holds it open, wherever the script put it (``wandb.init(dir=...)``):
        wandb-core, a descendant of the training process, writes it."""
        if self.pid is None:
            return None
        try:
            procs = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return None
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                for f in proc.open_files():
                    if os.path.basename(f.path) == self.file:
                        return str(f.path)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            path = self._find()
            if path is not None:
                self._found(path)
                # The reader stops after IDLE without a write (so one left behind by an agent that
                # died does not follow a dead file for ever); a quiet run is then read on again.
                while self._read(follow=True) == 0 and not self.records.exited and not self._stop.is_set():
                    pass
                return
            self._stop.wait(FIND_EVERY)

    def _found(self, path: str) -> None:
        self.path = path
        log.info("reading the run's W&B records", file=path)
        self.on_found()

    def _read(self, *, follow: bool) -> int | None:
        """Run the reader over the file to its end (or, following, to the run's exit or IDLE);
        its exit status, None when it could not start."""
        assert self.argv is not None and self.path is not None
        argv = [*self.argv, "leet", "inspect", "--json"]
        if follow:
            argv += ["--follow", "--idle-timeout", IDLE]
        try:
            proc = subprocess.Popen(
                [*argv, self.path],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # the agent's signals and process group are not the reader's
            )
        except OSError as exc:
            log.warning("cannot run wandb's reader: the run's W&B metrics are not read", error=str(exc))
            return None
        timer = None
        if follow:
            self.proc = proc
        else:  # a final read of a finished file: bounded, whatever the reader does
            timer = threading.Timer(READ_TIMEOUT, proc.kill)
            timer.daemon = True
            timer.start()
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self._line(line)
        if timer is not None:
            timer.cancel()
        code = proc.wait()
        if code not in (0, -15) and not self.records.exited:
            log.warning("wandb's reader failed (it needs wandb 0.31 or later)", code=code)
        return code

    def _line(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        with self._lock:
            was_preempting = self.records.preempting
            rows = self.records.feed(record)
            summary = self.records.take_summary()
            marked = self.records.preempting and not was_preempting
        if self.muted.is_set():
            rows, summary = [], {}
        if rows:
            self.on_rows(rows)
        if summary:
            self.on_summary(summary)
        if marked:
            self.on_preempting()

    def finish(self) -> None:
        """After the training process ended: read what is left of its W&B run, then stop."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(SETTLE)
            proc = self.proc
            if self._thread.is_alive() and proc is not None:
                with contextlib.suppress(OSError):
                    proc.terminate()  # what it printed is read to the end; the rest is read again below
            self._thread.join(READ_TIMEOUT)
        if self.argv is None or self.records.exited or self._thread.is_alive():
            return
        if self.path is None:
            path = self._find()
            if path is None:
                return
            self._found(path)
        self._read(follow=False)
