"""The agent: claim a run, launch it, supervise it, record its end; until the sweep is complete.

Signal handlers only set flags (see ``signals``); this loop does every write, log and kill.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog

from sweepd.queue import command, states
from sweepd.queue.errors import ConfigError
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

from . import logs
from .channel import Channel
from .process import Child

log = logs.get("sweepd.agent")

LEASE_HEARTBEATS = 3  # a lease lasts this many heartbeats: two can be missed before it expires
TICK = 0.05  # how often a supervised run checks its flags (seconds)


def _version() -> str:
    try:
        return version("sweepd")
    except PackageNotFoundError:
        return "unknown"


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

    @property
    def lease(self) -> float:
        return self.heartbeat * LEASE_HEARTBEATS


def new_agent_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{os.urandom(2).hex()}"


def interpreter() -> str:
    """``${interpreter}``: ``python`` as W&B does, or this Python where no ``python`` is on PATH."""
    return "python" if shutil.which("python") else sys.executable


class Agent:
    def __init__(self, store: Store, options: Options, agent_id: str | None = None) -> None:
        self.store = store
        self.opts = options
        self.sid = options.sweep_id
        self.id = agent_id or new_agent_id()
        self.config = store.config(self.sid)
        self.started = time.monotonic()
        self.finished_runs = 0
        self.failures = 0  # consecutive failed or crashed runs
        self.early_failures = 0  # failures within fast_failure_window of the start
        self._last_beat = 0.0
        self._current: Claim | None = None

    # the loop ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Work the sweep; return the process exit code (0: complete or --count reached)."""
        structlog.contextvars.bind_contextvars(sweep_id=self.sid, agent_id=self.id)
        log.info("agent started", heartbeat=self.opts.heartbeat, count=self.opts.count)
        self._beat(force=True)
        done = 0
        try:
            while True:
                if self.opts.count is not None and done >= self.opts.count:
                    log.info("count reached, exiting", runs=done)
                    return 0
                if self._failing():
                    return 0 if self.store.is_complete(self.sid) else 1
                claim = self._next()
                if claim is None:
                    if self.store.is_complete(self.sid):
                        log.info("sweep complete, exiting", runs=done)
                        return 0
                    self._beat()
                    self.store.wait_for_work(self.sid, self.opts.idle_poll)
                    continue
                code = self.execute(claim)
                if code is not None:
                    return code
                done += 1
        finally:
            self.store.agent_gone(self.sid, self.id)
            structlog.contextvars.clear_contextvars()

    def _next(self) -> Claim | None:
        """A queued run first (a requeued run comes back before any new one), else a new one."""
        claim = self.store.claim(self.sid, self.id, self.opts.lease)
        if claim is not None:
            return claim
        made = self.store.create_next(self.sid, self.id, self.opts.lease)
        return made if isinstance(made, Claim) else None

    def _failing(self) -> bool:
        """W&B's crash guards: stop an agent whose runs keep failing (a broken node must not burn
        the sweep)."""
        if self.failures >= self.opts.max_failures:
            log.error("stopping: runs keep failing", consecutive_failures=self.failures)
            return True
        if self.early_failures >= self.opts.fast_failures:
            log.error(
                "stopping: runs fail fast",
                failures=self.early_failures,
                within_seconds=self.opts.fast_failure_window,
            )
            return True
        return False

    def _beat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < self.opts.heartbeat:
            return
        self._last_beat = now
        current = self._current
        self.store.agent_beat(
            self.sid,
            self.id,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "sweep_id": self.sid,
                "run_id": current.run_id if current else "",
                "version": _version(),
                "started_at": int((time.time() - (now - self.started)) * 1000),
            },
            ttl_s=self.opts.lease,
        )

    # one attempt ---------------------------------------------------------------------------------

    def execute(self, claim: Claim) -> int | None:
        """Run one attempt to its end and record it; return an exit code only to stop the agent."""
        structlog.contextvars.bind_contextvars(run_id=claim.run_id, attempt=claim.attempt)
        self._current = claim
        workdir = tempfile.mkdtemp(prefix="sweepd-")
        try:
            return self._execute(claim, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self._current = None
            structlog.contextvars.unbind_contextvars("run_id", "attempt")

    def _execute(self, claim: Claim, workdir: str) -> int | None:
        params_file = os.path.join(workdir, "params.json")
        with open(params_file, "w", encoding="utf-8") as fh:
            json.dump(claim.params, fh)
        try:
            argv = command.expand(
                self.config.command,
                program=self.config.program,
                params=claim.params,
                environ=os.environ,
                interpreter=interpreter(),
                params_file=params_file,
            )
        except ConfigError as exc:
            # The sweep cannot be run from here: give the run back untouched and say why.
            self.store.requeue(self.sid, claim.run_id, token=claim.token, reason="agent-config")
            log.error("cannot build the run's command", error=str(exc))
            return 2
        output = _OutputBuffer()
        channel = Channel(os.path.join(workdir, "agent.sock"), self._on_message(claim))
        log.info("run started", argv=argv, params=claim.params)
        child = Child(argv, self._child_env(claim, params_file, channel.path), output.add)
        returncode = self._supervise(claim, child, output)
        child.drain()
        channel.close()
        self._flush(claim, output)
        if returncode is None:
            return None  # fenced: the run is no longer ours to record
        self._record(claim, returncode, time.monotonic() - child.started)
        return None

    def _supervise(self, claim: Claim, child: Child, output: _OutputBuffer) -> int | None:
        """Wait for the child, renewing the lease; None when the lease was lost (we stopped it)."""
        last_renew = time.monotonic()
        while True:
            returncode = child.wait(TICK)
            if returncode is not None:
                return returncode
            if time.monotonic() - last_renew >= self.opts.heartbeat:
                last_renew = time.monotonic()
                self._flush(claim, output)
                if not self.store.renew(claim, self.opts.lease):
                    log.error("lost the run's lease: stopping the training process")
                    child.kill_tree()
                    child.wait(None)
                    return None
                self._beat(force=True)

    def _record(self, claim: Claim, returncode: int, seconds: float) -> None:
        """Apply the exit-status table (states.outcome) and count failures for the crash guards."""
        end = states.outcome(returncode, preempting=False)
        failed = end.state in (states.FAILED, states.CRASHED)
        if failed and claim.attempt <= self.opts.max_retries:
            self.store.requeue(self.sid, claim.run_id, token=claim.token, reason="retry")
            log.warning("run failed, retrying", exit_code=returncode, seconds=round(seconds, 3))
        elif end.requeue:
            self.store.requeue(self.sid, claim.run_id, token=claim.token, reason=end.reason)
            log.info("run requeued", reason=end.reason, exit_code=returncode)
        elif self.store.complete(claim, end.state, returncode, end.reason):
            log.info("run ended", state=end.state, exit_code=returncode, seconds=round(seconds, 3))
        else:
            log.warning("run ended but was no longer ours to record", exit_code=returncode)
        if failed:
            self.failures += 1
            if time.monotonic() - self.started <= self.opts.fast_failure_window:
                self.early_failures += 1
        else:
            self.failures = 0

    # the training process's side -------------------------------------------------------------------

    def _child_env(self, claim: Claim, params_file: str, socket_path: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("SWEEPD_REDIS_URL", None)  # the script talks to its agent, never to Redis
        env.update(
            SWEEPD_SWEEP_ID=self.sid,
            SWEEPD_RUN_ID=claim.run_id,
            SWEEPD_ATTEMPT=str(claim.attempt),
            SWEEPD_RESUME="allow",
            SWEEPD_PARAMS_FILE=params_file,
            SWEEPD_AGENT_SOCKET=socket_path,
            WANDB_RUN_ID=claim.run_id,
            WANDB_RESUME="allow",
        )
        return env

    def _on_message(self, claim: Claim) -> Any:
        def handle(message: dict[str, Any]) -> None:
            if message.get("op") == "log" and isinstance(message.get("row"), dict):
                try:
                    self.store.log_metrics(self.sid, claim.run_id, message["row"])
                except Exception as exc:  # a Redis blip must not kill the channel
                    log.warning("could not record metrics", error=str(exc))

        return handle

    def _flush(self, claim: Claim, output: _OutputBuffer) -> None:
        try:
            self.store.append_log(claim.run_id, claim.attempt, output.take())
        except Exception as exc:
            log.warning("could not store output lines", error=str(exc))


class _OutputBuffer:
    """Output lines waiting to be stored; the pumps add, the loop takes."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, lines: list[str]) -> None:
        with self._lock:
            self._lines.extend(lines)

    def take(self) -> list[str]:
        with self._lock:
            lines, self._lines = self._lines, []
        return lines
