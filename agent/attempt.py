"""One attempt of one run: launch the training process, supervise it, and record how it ended.

While the process runs, the attempt renews the run's lease every heartbeat and watches the agent's
preemption decision. On preemption it marks the run ``preempting``, tells the script (signal and
channel), waits up to the grace period, kills what is left, and applies the exit-status table:
exit 0 is ``finished``; anything else is requeued at the front with the same run ID.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepd.queue import command, states
from sweepd.queue.errors import ConfigError
from sweepd.queue.records import Claim

from . import logs
from .channel import Channel
from .process import Child
from .sdnotify import ENV_VARS

if TYPE_CHECKING:
    from .loop import Agent

log = logs.get("sweepd.agent")

TICK = 0.05  # the longest sleep when the platform gives no pidfd to wait on


def interpreter() -> str:
    """``${interpreter}``: ``python`` as W&B does, or this Python where no ``python`` is on PATH."""
    return "python" if shutil.which("python") else sys.executable


class Attempt:
    def __init__(self, agent: Agent, claim: Claim, workdir: str) -> None:
        self.agent = agent
        self.claim = claim
        self.workdir = workdir
        self.output = _OutputBuffer()
        self.child_marked = threading.Event()  # the script called mark_preempting()
        self.marked = False  # the run is `preempting` in Redis
        self.signalled = False  # the training process was told to checkpoint and stop
        self.preempt_reason = ""

    # launching ----------------------------------------------------------------------------------

    def run(self) -> int | None:
        """Run the attempt to its end and record it; return an exit code only to stop the agent."""
        agent, claim = self.agent, self.claim
        params_file = os.path.join(self.workdir, "params.json")
        with open(params_file, "w", encoding="utf-8") as fh:
            json.dump(claim.params, fh)
        try:
            argv = command.expand(
                agent.config.command,
                program=agent.config.program,
                params=claim.params,
                environ=os.environ,
                interpreter=interpreter(),
                params_file=params_file,
            )
        except ConfigError as exc:
            # This machine cannot build the run's command: give the run back untouched and say why.
            agent.store.requeue(agent.sid, claim.run_id, token=claim.token, reason="agent-config")
            log.error("cannot build the run's command", error=str(exc))
            return 2
        channel = Channel(os.path.join(self.workdir, "agent.sock"), self._on_message)
        log.info("run started", argv=argv, params=claim.params)
        child = Child(argv, self._env(params_file, channel.path), self.output.add)
        try:
            returncode = self._supervise(child, channel)
        finally:
            child.drain()
            child.close()
            channel.close()
            self._flush()
        if returncode is not None:
            self._record(returncode, time.monotonic() - child.started)
        return None

    def _env(self, params_file: str, socket_path: str) -> dict[str, str]:
        agent, claim = self.agent, self.claim
        checkpoint_dir = Path(agent.opts.checkpoint_root) / agent.sid / claim.run_id
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop("SWEEPD_REDIS_URL", None)  # the script talks to its agent, never to Redis
        for name in ENV_VARS:  # systemd's notify socket is the agent's, not the script's
            env.pop(name, None)
        env.update(
            SWEEPD_SWEEP_ID=agent.sid,
            SWEEPD_RUN_ID=claim.run_id,
            SWEEPD_ATTEMPT=str(claim.attempt),
            SWEEPD_RESUME="allow",
            SWEEPD_PARAMS_FILE=params_file,
            SWEEPD_AGENT_SOCKET=socket_path,
            SWEEPD_CHECKPOINT_DIR=str(checkpoint_dir),
            WANDB_RUN_ID=claim.run_id,
            WANDB_RESUME="allow",
        )
        return env

    # supervising --------------------------------------------------------------------------------

    def _supervise(self, child: Child, channel: Channel) -> int | None:
        """Wait for the process; None when the run was lost to a newer holder (we stopped it)."""
        agent = self.agent
        heartbeat = agent.opts.heartbeat
        next_renew = time.monotonic() + heartbeat
        while True:
            agent.intake()
            returncode = child.poll()
            if returncode is not None:
                return returncode
            now = time.monotonic()
            if self.child_marked.is_set() and not self.marked:
                self._mark("child-marked")
            if agent.preemption.requested and not self.signalled:
                self._preempt(child, channel)
            if self.signalled and now >= agent.preemption.kill_at():
                log.warning("grace period over: killing the process tree", reason=self.preempt_reason)
                child.kill_tree()
                return child.wait(None)
            if now >= next_renew:
                next_renew = now + heartbeat
                self._flush()
                if not agent.store.renew(self.claim, agent.opts.lease):
                    log.error("lost the run's lease: stopping the training process")
                    child.kill_tree()
                    child.wait(None)
                    return None
                agent.beat(force=True)
            agent.notifier.maybe_watchdog()
            wake_at = next_renew
            if self.signalled:
                wake_at = min(wake_at, agent.preemption.kill_at())
            interval = agent.notifier.watchdog_interval()
            timeout = min(wake_at - now, interval / 2 if interval else heartbeat)
            if child.pidfd is None:
                timeout = min(timeout, TICK)
            agent.waker.wait(timeout, *([child.pidfd] if child.pidfd is not None else []))

    def _mark(self, reason: str) -> bool:
        """Mark the run ``preempting`` in Redis (only while we hold it)."""
        if not self.marked:
            self.marked = self.agent.store.mark_preempting(self.claim, reason)
            self.preempt_reason = reason
            log.warning("run marked preempting", reason=reason)
        return self.marked

    def _preempt(self, child: Child, channel: Channel) -> None:
        """Tell the training process to checkpoint and stop: the signal, and the API's flag."""
        agent = self.agent
        reason = agent.preemption.reason or "signal"
        self._mark(reason)
        self.preempt_reason = reason
        grace = max(0.0, agent.preemption.kill_at() - time.monotonic())
        agent.notifier.stopping(f"preempted ({reason}): run {self.claim.run_id} checkpointing")
        agent.notifier.extend_timeout(grace + 30)
        channel.send({"op": "preempting", "reason": reason, "grace": grace})
        child.signal(agent.opts.child_signal)
        self.signalled = True
        log.warning("preempting run", reason=reason, grace=round(grace, 3), signal=agent.opts.child_signal.name)

    # recording ----------------------------------------------------------------------------------

    def _record(self, returncode: int, seconds: float) -> None:
        """Apply the exit-status table (``states.outcome``) once, as the holder."""
        agent, claim = self.agent, self.claim
        end = states.outcome(returncode, preempting=self.marked)
        failed = end.state in (states.FAILED, states.CRASHED)
        if failed and claim.attempt <= agent.opts.max_retries:
            agent.store.requeue(agent.sid, claim.run_id, token=claim.token, reason="retry")
            log.warning("run failed, retrying", exit_code=returncode, seconds=round(seconds, 3))
        elif end.requeue:
            reason = self.preempt_reason or end.reason
            if agent.store.requeue(agent.sid, claim.run_id, token=claim.token, reason=reason) == 1:
                took = agent.preemption.since_request(time.monotonic())
                agent.store.add_event(
                    agent.sid, {"event": "requeued", "run_id": claim.run_id, "attempt": claim.attempt, "reason": reason}
                )
                log.warning("run requeued at the front", reason=reason, exit_code=returncode, handoff_seconds=took)
            else:
                log.warning("run ended but was no longer ours to requeue", exit_code=returncode)
        elif agent.store.complete(claim, end.state, returncode, end.reason):
            log.info("run ended", state=end.state, exit_code=returncode, seconds=round(seconds, 3))
        else:
            log.warning("run ended but was no longer ours to record", exit_code=returncode)
        agent.count_outcome(failed)

    # the training process's side ----------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        """Called on the channel's threads: record metrics, note a self-declared preemption."""
        op = message.get("op")
        if op == "log" and isinstance(message.get("row"), dict):
            try:
                self.agent.store.log_metrics(self.agent.sid, self.claim.run_id, message["row"])
            except Exception as exc:  # a Redis blip must not kill the channel
                log.warning("could not record metrics", error=str(exc))
        elif op == "preempting":
            self.child_marked.set()
            self.agent.waker.wake()

    def _flush(self) -> None:
        try:
            self.agent.store.append_log(self.claim.run_id, self.claim.attempt, self.output.take())
        except Exception as exc:
            log.warning("could not store output lines", error=str(exc))


class _OutputBuffer:
    """Output lines waiting to be stored; the output pumps add, the attempt takes."""

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
