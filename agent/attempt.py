"""One attempt of one run: launch the training process, supervise it, and record how it ended.

While the process runs, the attempt renews the run's lease every heartbeat. It ends a run early for
two reasons: preemption (the agent's decision, or an operator's requeue) and a stop (an operator's,
or a cancelled sweep). Either way it tells the script (signal and channel), waits up to the grace
period, kills what is left, and applies the exit-status table once, as the holder.

Fencing: if the lease cannot be renewed (Redis unreachable, the run requeued by someone else), the
training process is killed before the lease can expire in Redis, so no other agent can start the
same run while this one still runs.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from sweepd.queue import states
from sweepd.queue.errors import ConfigError
from sweepd.queue.records import Claim
from sweepd.queue.rows import STEP, Steps, parse_line

from . import launch, logs
from .backoff import REDIS_DOWN, Backoff
from .buffer import Buffer
from .channel import Channel
from .early_stop import EarlyStop
from .process import Child

if TYPE_CHECKING:
    from .loop import Agent

log = logs.get("sweepd.agent")

TICK = 0.05  # the longest sleep when the platform gives no pidfd to wait on
FLUSH_EVERY = 0.25  # seconds between writes of a script's metrics and output

Ending = Literal["preempt", "stop"]
#: What a renewal can ask of the holder, and the reason the run's record will give.
_ENDINGS: dict[str, tuple[Ending, str]] = {
    "stop": ("stop", "operator-stop"),
    "cancel": ("stop", "sweep-cancelled"),
    "requeue": ("preempt", "operator-requeue"),
}


class Attempt:
    def __init__(self, agent: Agent, claim: Claim, workdir: str) -> None:
        self.agent = agent
        self.claim = claim
        self.workdir = workdir
        self.rows = Buffer()  # metric rows from the script, waiting to be written
        self.output = Buffer()  # output lines, waiting to be written
        self.child_marked = threading.Event()  # the script called mark_preempting()
        #: A process of the attempt uses the Python API: it reports metrics through it, so printed
        #: lines are no longer read for metrics (nothing is counted twice).
        self.api = threading.Event()
        pattern = agent.config.stdout_metrics
        self.pattern = re.compile(pattern) if pattern else None
        self.steps = Steps(claim.last_step)  # printed rows continue the run's history
        self.marked = False  # the run is `preempting` in Redis
        self._mark_failed = False
        self.ending: Ending | None = None  # why the run is being ended early, once decided
        self.handing_off_at: float | None = None  # when we learned the run must go back (monotonic)
        self.reason = ""
        self.kill_at = 0.0
        #: Our own, conservative view of the lease's end: measured from before each renewal was sent.
        self.lease_until = time.monotonic() + agent.opts.lease
        self.early = EarlyStop(agent.store, agent.config, agent.sid, claim.run_id)
        self.fenced = threading.Event()  # the guard stopped the training process: the run is not ours
        self.done = threading.Event()  # the training process has exited
        self._backoff = Backoff(cap=max(0.1, agent.opts.heartbeat / 2))

    # launching ----------------------------------------------------------------------------------

    def run(self) -> int | None:
        """Run the attempt to its end and record it; return an exit code only to stop the agent."""
        agent, claim = self.agent, self.claim
        params_file = os.path.join(self.workdir, "params.json")
        with open(params_file, "w", encoding="utf-8") as fh:
            json.dump(claim.params, fh)
        try:
            argv = launch.argv(agent.config, claim, params_file)
        except ConfigError as exc:
            # This machine cannot build the run's command: give the run back untouched and say why.
            agent.store.requeue(claim, reason="agent-config")
            log.error("cannot build the run's command", error=str(exc))
            return 2
        channel = Channel(os.path.join(self.workdir, "agent.sock"), self._on_message)
        on_stdout = self._on_stdout if self.pattern is not None else None
        try:
            env = launch.environment(claim, agent.opts.checkpoint_root, params_file, channel.path)
            child = Child(argv, env, self.output.add, on_stdout=on_stdout)
        except OSError as exc:
            # As a shell says it, and as the setpriv spawn path reports it: 127 not found, 126 not runnable.
            channel.close()
            log.error("cannot start the run's command", argv=argv, error=str(exc))
            self._record(127 if isinstance(exc, FileNotFoundError) else 126, 0.0)
            return None
        log.info("run started", argv=argv, params=claim.params, pid=child.pid)  # after the spawn: off its path
        agent.metrics.run_started()
        guard = threading.Thread(target=self._guard_lease, args=(child,), daemon=True)
        guard.start()
        try:
            returncode = self._supervise(child, channel)
        except BaseException:
            # We can no longer supervise it, so it must not run on: no training process ever
            # outlives its supervision (its lease would expire while it still ran).
            child.kill_tree()
            child.wait(None)
            raise
        finally:
            self.done.set()
            agent.metrics.run_exited()
            guard.join()
            child.drain()
            child.close()
            channel.close()
        if returncode is not None:
            self._record(returncode, time.monotonic() - child.started)
        return None

    # supervising --------------------------------------------------------------------------------

    def _supervise(self, child: Child, channel: Channel) -> int | None:
        """Wait for the process; None when the run was lost (we stopped the process ourselves)."""
        agent = self.agent
        heartbeat = agent.opts.heartbeat
        next_renew = time.monotonic() + heartbeat
        last_flush = 0.0
        while True:
            agent.intake()
            returncode = child.poll()
            if self.fenced.is_set():
                log.error("the run's lease could not be renewed in time: its training process was stopped")
                child.wait(None)
                return None
            if returncode is not None:
                return returncode
            now = time.monotonic()
            if self.child_marked.is_set() and not self.marked:
                self.reason = self.reason or "child-marked"
                self.handing_off_at = self.handing_off_at or now
                self._mark("child-marked")
            if agent.preemption.requested and self.ending is None:
                self._end_early(
                    child, channel, "preempt", agent.preemption.reason or "signal", agent.preemption.kill_at()
                )
            if self.ending is not None and now >= self.kill_at:
                log.warning("grace period over: killing the process tree", reason=self.reason)
                child.kill_tree()
                return child.wait(None)
            if now >= next_renew:
                next_renew = self._renew(child, channel, now)
            if now - last_flush >= FLUSH_EVERY:
                last_flush = now
                self._flush()
            try:
                agent.maybe_reap()
            except REDIS_DOWN:  # a failed reap waits for the next heartbeat
                agent.metrics.redis_error()
            agent.notifier.maybe_watchdog()
            wake_at = min(next_renew, now + FLUSH_EVERY)
            if self.ending is not None:
                wake_at = min(wake_at, self.kill_at)
            interval = agent.notifier.watchdog_interval()
            timeout = min(wake_at - now, interval / 2 if interval else heartbeat)
            if child.pidfd is None:
                timeout = min(timeout, TICK)
            agent.waker.wait(timeout, *([child.pidfd] if child.pidfd is not None else []))

    def _guard_lease(self, child: Child) -> None:
        """Fencing, on a thread of its own so that nothing the loop waits on (a Redis call that
        hangs, a slow disk) can delay it: kill the training process half a heartbeat before the
        lease could expire in Redis, unless a renewal moved the deadline on."""
        margin = self.agent.opts.heartbeat / 2
        while not self.done.is_set():
            left = self.lease_until - margin - time.monotonic()
            if left <= 0:
                self.fenced.set()
                log.error("lease about to expire without renewal: stopping the training process (fencing)")
                child.kill_tree()
                self.agent.waker.wake()
                return
            self.done.wait(min(left, 0.1))

    def _renew(self, child: Child, channel: Channel, now: float) -> float:
        """Renew the lease; act on what the renewal says. Returns when to renew next."""
        agent = self.agent
        try:
            renewal = agent.store.renew(self.claim, agent.opts.lease)
            agent.beat(force=True)
        except REDIS_DOWN as exc:
            agent.metrics.redis_error()
            delay = self._backoff.next()
            if self._backoff.failures == 1:
                log.warning("Redis is not answering: retrying, the training process goes on", error=str(exc))
            return now + delay
        if self._backoff.failures:
            log.info("Redis is answering again", failures=self._backoff.failures)
            self._backoff.reset()
        if renewal == "fenced":
            self.lease_until = now  # not ours any more: the guard stops the process at once
            log.error("the run is no longer ours (requeued elsewhere): stopping the training process")
        else:
            self.lease_until = now + agent.opts.lease
        if renewal in _ENDINGS and self.ending is None:
            kind, reason = _ENDINGS[renewal]
            self._end_early(child, channel, kind, reason, now + agent.opts.grace)
        if self.ending is None and renewal == "ok":
            try:
                if self.early.should_stop():
                    self._end_early(child, channel, "stop", "hyperband", now + agent.opts.grace)
            except REDIS_DOWN:  # judged again at the next heartbeat
                agent.metrics.redis_error()
        return now + agent.opts.heartbeat

    def _mark(self, reason: str) -> None:
        """Mark the run ``preempting`` in Redis (only while we hold it)."""
        if self.marked:
            return
        try:
            self.marked = self.agent.store.mark_preempting(self.claim, reason)
        except REDIS_DOWN as exc:
            self.agent.metrics.redis_error()
            if not self._mark_failed:
                log.warning("could not mark the run preempting yet: Redis is not answering", error=str(exc))
            self._mark_failed = True
            return
        self.reason = self.reason or reason
        log.warning("run marked preempting", reason=reason)

    def _end_early(self, child: Child, channel: Channel, kind: Ending, reason: str, kill_at: float) -> None:
        """Tell the training process to checkpoint and stop: the signal, and the API's flag."""
        agent = self.agent
        self.ending, self.reason, self.kill_at = kind, reason, kill_at
        if kind == "preempt":
            self.handing_off_at = self.handing_off_at or time.monotonic()
            self._mark(reason)
        grace = max(0.0, kill_at - time.monotonic())
        if agent.preemption.requested:
            agent.notifier.stopping(f"preempted ({reason}): run {self.claim.run_id} checkpointing")
            agent.notifier.extend_timeout(grace + 30)
        channel.send({"op": "preempting", "reason": reason, "grace": grace})
        child.signal(agent.opts.child_signal)
        log.warning(
            "stopping run" if kind == "stop" else "preempting run",
            reason=reason,
            grace=round(grace, 3),
            signal=agent.opts.child_signal.name,
        )

    # recording ----------------------------------------------------------------------------------

    def _record(self, returncode: int, seconds: float) -> None:
        """Apply the exit-status table (``states.outcome``) once, as the holder."""
        agent, claim = self.agent, self.claim
        agent.intake()  # a signal that arrived as the process exited still counts
        self._flush(final=True)
        # Preempting is what we decided (or the script said), whether or not Redis heard of it in
        # time: a Redis blip must not turn a preempted run into a failed one.
        # The platform may signal the training process itself at the moment it signals us (SLURM
        # at the end of GraceTime, Kubernetes to a whole pod): a run that ends while the agent is
        # being preempted is preempted, even if it exited before we could tell it.
        preempting = (
            self.marked or self.ending == "preempt" or self.child_marked.is_set() or self.agent.preemption.requested
        )
        if preempting and not self.reason and self.agent.preemption.requested:
            self.reason = self.agent.preemption.reason or "signal"
        end = states.outcome(returncode, preempting=preempting, stopping=self.ending == "stop")
        failed = end.state in (states.FAILED, states.CRASHED)
        if failed and claim.attempt <= agent.opts.max_retries:
            if self._persist(lambda: agent.store.requeue(claim, reason="retry")):
                agent.metrics.run_ended(end.state, end.reason)
                agent.metrics.requeued("retry", None)
                log.warning("run failed, retrying", exit_code=returncode, seconds=round(seconds, 3))
        elif end.requeue:
            reason = self.reason or end.reason
            if self._persist(lambda: agent.store.requeue(claim, reason=reason)):
                now = time.monotonic()
                took = agent.preemption.since_request(now)
                if took is None and self.handing_off_at is not None:
                    took = now - self.handing_off_at
                if reason != "operator-requeue":
                    agent.metrics.preempted(reason)
                agent.metrics.requeued(reason, took)
                event = {"event": "requeued", "run_id": claim.run_id, "attempt": claim.attempt, "reason": reason}
                self._persist(lambda: agent.store.add_event(agent.sid, event))
                log.warning("run requeued at the front", reason=reason, exit_code=returncode, handoff_seconds=took)
        elif self._persist(lambda: agent.store.complete(claim, end.state, returncode, self.reason or end.reason)):
            agent.metrics.run_ended(end.state, self.reason or end.reason)
            log.info("run ended", state=end.state, exit_code=returncode, seconds=round(seconds, 3))
        agent.count_outcome(failed)

    def _persist(self, write: Any) -> bool:
        """Do a fenced write, retrying while Redis is away and the lease may still hold. False when
        it was refused (no longer ours) or could not be made in time: the lease then expires and the
        reaper requeues the run, so nothing is lost."""
        backoff = Backoff(cap=max(0.1, self.agent.opts.heartbeat / 2))
        while True:
            try:
                if write():
                    return True
                log.warning("the run's end was not recorded: the run is no longer ours")
                return False
            except REDIS_DOWN as exc:
                self.agent.metrics.redis_error()
                if time.monotonic() + backoff.cap >= self.lease_until:
                    log.error("could not record the run's end before its lease expires", error=str(exc))
                    return False
                time.sleep(backoff.next())

    # the training process's side ----------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Called on the channel's threads: queue metrics, note a self-declared preemption, answer
        the API's hello (once answered, printed lines are no longer read for metrics)."""
        op = message.get("op")
        if op == "log" and isinstance(message.get("row"), dict):
            self.rows.add([message["row"]])
        elif op == "preempting":
            self.child_marked.set()
            self.agent.waker.wake()
        elif op == "hello":
            self.api.set()
            return {"op": "hello", "run_id": self.claim.run_id, "attempt": self.claim.attempt}
        return None

    def _on_stdout(self, lines: list[str]) -> None:
        """Called on the stdout pump's thread: the metrics a program prints (the sweep's
        ``stdout_metrics`` pattern) become rows, like the API's."""
        if self.pattern is None or self.api.is_set():
            return
        for line in lines:
            metrics: dict[str, Any] = dict(parse_line(self.pattern, line))
            if not metrics:
                continue
            given = metrics.pop(STEP, None)
            step = self.steps.assign(int(given) if given is not None else None)
            if step is not None and metrics:
                self.rows.add([{**metrics, STEP: step}])

    def _flush(self, final: bool = False) -> None:
        """Write buffered metrics and output. If Redis is away they stay buffered (bounded) and go
        with the next flush, so a blip loses nothing."""
        store, claim = self.agent.store, self.claim
        rows, lines = self.rows.take(), self.output.take()
        try:
            if rows and not store.log_metrics(claim, rows):
                log.warning("metrics refused: the run is no longer ours", rows=len(rows))
            rows = []
            store.append_log(claim.run_id, claim.attempt, lines)
            lines = []
        except REDIS_DOWN as exc:
            self.agent.metrics.redis_error()
            if final:
                log.warning("could not store the run's last metrics or output", error=str(exc))
        finally:
            self.rows.put_back(rows)
            self.output.put_back(lines)
