"""One attempt of one run: launch the training process, supervise it, and record how it ended.

Holding the run (lease, renewal answers, the guard that kills before the lease can lapse, the
record and its retries) is hold.py's; this module says how to kill and tell the training process,
and supervises it: a preemption (the agent's decision, or an operator's requeue) or a stop (an
operator's, hyperband's, a cancelled sweep's) tells the script (signal and channel), waits up to
the grace period, kills what is left, and the hold records the end once.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from sweepd.queue import bounds
from sweepd.queue.errors import ConfigError
from sweepd.queue.records import Claim
from sweepd.queue.store import LOG_CAP, Renewal

from ..checkpoints import travel
from ..checkpoints.remote import first_line
from ..checkpoints.sync import Syncer
from ..hold.backoff import REDIS_DOWN
from ..hold.hold import FLUSH_EVERY, Ending, Hold
from ..hold.tick import tick
from . import launch, logs, slurm_steps, wandb_env, wandb_follow
from .channel import Channel
from .early_stop import EarlyStop
from .heard import Heard
from .member import Member
from .output import Kept
from .process import Child
from .rungs import Rungs
from .slots import Result, SlotHost

log = logs.get("sweepd.agent")

TICK = 0.05  # the longest sleep when the platform gives no pidfd to wait on


def say(level: str, event: str, /, **fields: Any) -> None:
    getattr(log, level)(event, **fields)


class Attempt:
    def __init__(self, agent: SlotHost, claim: Claim, workdir: str, taken_at: float) -> None:
        self.agent, self.claim, self.workdir = agent, claim, workdir
        self.hold = Hold(agent.store, claim, self, agent.opts.heartbeat, agent.opts.grace, taken_at, say=say)
        self.hold.on_redis_error, self.hold.watchdog = agent.metrics.redis_error, agent.watchdog
        self.hold.give_up = self._going_away
        #: The claim's sweep's config (a pool agent's runs come from many sweeps).
        self.config = config = agent.store.config(claim.sweep_id)
        self.heard = Heard(self.hold, claim, config, agent.waker)  # what the training process says
        self.handing_off_at: float | None = None  # when we learned the run must go back (monotonic)
        self.early = EarlyStop(agent.store.reads, config, claim.sweep_id, claim.run_id)
        self.rungs = Rungs(agent.store.reads, config, claim.run_id)  # ASHA's pauses
        self.member = Member(agent.store, config, claim, agent.opts)  # PBT's
        self.child: Child | None = None
        self.slurm: slurm_steps.Steps | None = None  # the SLURM job steps the run's sruns start
        self.channel: Channel | None = None
        self.wandb: wandb_follow.Follower | None = None  # the script's W&B run, read as it is written
        #: The attempt's output, bounded in lines and bytes (process.py), written here rather than
        #: by the hold: the store is told how many lines to keep.
        self.output = Kept(LOG_CAP)
        self.sync: Syncer | None = None  # the run's checkpoints, with an object-store root (travel.py)

    # the process, as the hold reaches it ---------------------------------------------------------

    def kill(self) -> None:
        if self.child is not None:
            sruns = self.slurm.sruns() if self.slurm is not None else set()
            self.child.kill_tree(self._spare())
            if self.slurm is not None:  # after the tree: the kill comes first, SLURM's commands take time
                self.slurm.end(sruns)
        self.agent.waker.wake()

    def _spare(self) -> set[int]:
        """The agent's own children, never the run's leftovers: the watchdog, wandb's reader."""
        pid = self.agent.watchdog.pid
        return ({pid} if pid is not None else set()) | (self.wandb.pids() if self.wandb is not None else set())

    def tell(self, ending: Ending, reason: str, grace: float) -> None:
        """Tell the training process to checkpoint and stop: the signal, and the API's flag."""
        agent = self.agent
        if ending == "preempt":
            self.handing_off_at = self.handing_off_at or time.monotonic()
        if agent.preemption.requested:
            agent.notifier.stopping(f"preempted ({reason}): run {self.claim.run_id} checkpointing")
            agent.notifier.extend_timeout(grace + 30)
        if self.channel is not None:
            self.channel.accept()  # a script that has just connected is told too
            self.channel.send({"op": "preempting", "reason": reason, "grace": grace})
        signum = wandb_follow.child_signal(self.wandb, agent.opts.child_signal, agent.opts.wandb_signal)
        if self.child is not None and (self.slurm is None or not self.slurm.tell(signum)):
            self.child.signal(signum)  # a run with SLURM steps: their tasks got it through SLURM
        log.warning(
            {"stop": "stopping run", "pause": "pausing run at its rung"}.get(ending, "preempting run"),
            reason=reason,
            grace=round(grace, 3),
            signal=signum.name,
        )

    def _going_away(self) -> bool:
        """The end of a run waits for Redis past its lease: stop waiting once the agent is preempted
        and its grace is over (the machine is going away; the reaper requeues the run)."""
        agent = self.agent
        agent.intake()
        return agent.preemption.requested and time.monotonic() >= agent.preemption.kill_at()

    # launching ----------------------------------------------------------------------------------

    def run(self) -> Result:
        """Run the attempt to its end and record it."""
        refused = self._restore()
        if refused is not None:
            return refused
        child = self._launch()
        if isinstance(child, Result):
            return child
        returncode = self._watch(child)
        if returncode is None:
            return Result()
        return self._end(returncode, time.monotonic() - child.started)

    def _restore(self) -> Result | None:
        """With an object-store root, the working copy becomes the latest committed snapshot (or
        empty); a Result when the attempt ends here."""
        agent, claim = self.agent, self.claim
        self.sync = sync = travel.syncer(agent.opts, agent.store, claim, self.hold, say, agent.metrics)
        if sync is None:
            return None
        try:
            restored, _ = travel.renewing(self.hold, sync.restore, None)
        except Exception as exc:  # the store is away: the run goes back untouched, counted as a failure
            log.error("cannot restore the run's checkpoint: run requeued", error=first_line(exc))
            agent.store.requeue(claim, reason="checkpoint-restore")
            return Result(failed=True)
        return None if restored else Result()  # not restored: no longer ours, the reaper or the next holder has it

    def _launch(self) -> Child | Result:
        """Start the training process, held and guarded; a Result when it could not start."""
        agent, claim = self.agent, self.claim
        try:
            params_file = launch.write_params(claim, str(agent.opts.checkpoints))
        except OSError as exc:
            log.error("cannot write the run's parameters", error=str(exc))
            return self._record(126, 0.0)
        try:
            argv = launch.argv(self.config, claim, params_file)
        except ConfigError as exc:
            # This machine cannot build the run's command: give the run back untouched and say why.
            agent.store.requeue(claim, reason="agent-config")
            log.error("cannot build the run's command", error=str(exc))
            return Result(stop=2)
        heard = self.heard
        self.channel = channel = Channel(os.path.join(self.workdir, "agent.sock"), heard.on_message, self.hold.cut)
        on_stdout = heard.on_stdout if heard.pattern is not None else None
        try:
            env = launch.environment(claim, str(agent.opts.checkpoints), params_file, channel.path)
            env.update(agent.slot_env)
            self.wandb = heard.wandb = follower = wandb_follow.Follower(
                claim.run_id,
                wandb_env.wandb_dir(env),
                claim.last_step,
                env,
                self.workdir,
                on_rows=self.hold.add_rows,
                on_summary=self.hold.add_summary,
                on_found=heard.api.set,  # printed lines are no longer read for metrics
                on_preempting=lambda: heard.on_message({"op": "preempting"}),
            )
            self.child = child = Child(argv, env, self.output.add, on_stdout=on_stdout)
        except OSError as exc:
            # As a shell says it, and as the setpriv spawn path reports it: 127 not found, 126 not runnable.
            channel.close()
            log.error("cannot start the run's command", argv=argv, error=str(exc))
            return self._record(127 if isinstance(exc, FileNotFoundError) else 126, 0.0)
        log.info("run started", argv=argv, params=claim.params, pid=child.pid)  # after the spawn: off its path
        self.slurm = slurm_steps.Steps(child.pid)
        agent.metrics.run_started()
        follower.follow(child.pid)  # its thread starts in _supervise, once the run has lived a little
        if self.sync is not None:
            self.sync.start(agent.opts.checkpoint_sync)
        self.hold.guard(child.pid, group=True)  # the child leads its own process group (process.py)
        return child

    def _watch(self, child: Child) -> int | None:
        """Supervise the process to its end, then leave nothing of it behind; its exit status, or
        None when the run was lost."""
        try:
            return self._supervise(child)
        except BaseException:
            # We can no longer supervise it, so it must not run on: no training process ever
            # outlives its supervision (its lease would expire while it still ran).
            self.kill()
            child.wait(None)
            raise
        finally:
            # However it ended, nothing it started outlives the attempt (it would overlap the next
            # one); and the output is what the pipes hold now, not what a leftover might still write.
            child.end(self._spare())
            if self.sync is not None:
                self.sync.stop()
            if self.wandb is not None:
                self.wandb.finish()  # what the W&B run logged up to its end, before the end is recorded
            self.hold.release()
            self.agent.metrics.run_exited()
            child.close()
            if self.channel is not None:
                self.channel.close()

    def _end(self, returncode: int, seconds: float) -> Result:
        """Record the end; with an object-store root, after the last snapshot is committed."""
        sync = self.sync
        if sync is None:
            return self._record(returncode, seconds)
        # The snapshot that matters most: what the process saved at the signal, before the run goes back.
        outcome = travel.final(sync, self.hold, self._sync_deadline(), keep=1 if returncode == 0 else sync.keep)
        result = self._record(returncode, seconds)
        travel.forget(sync, outcome)
        return result

    def _sync_deadline(self) -> float:
        """By when the last snapshot must be committed: what is left of a preemption's grace (a
        notice's deadline less its margin), or of an ending's, else a grace period from now."""
        agent, hold = self.agent, self.hold
        agent.intake()  # a signal that came as the process exited still counts
        if agent.preemption.requested:
            return agent.preemption.kill_at()
        if hold.kill_at is not None:
            return hold.kill_at
        return time.monotonic() + agent.opts.grace

    # supervising --------------------------------------------------------------------------------

    def _supervise(self, child: Child) -> int | None:
        """Wait for the process; None when the run was lost (the guard stopped the process)."""
        agent, hold = self.agent, self.hold
        heartbeat = agent.opts.heartbeat
        while True:
            agent.intake()
            returncode = child.poll()
            if returncode is not None and returncode >= 0:
                # It exited by itself (the guard and the watchdog kill with a signal), however late
                # the loop sees it (a Redis call that hung through an outage): its status is its own,
                # and the record is checked against our token.
                return returncode
            if hold.fenced.is_set() or (returncode is not None and hold.lapsing()):
                child.wait(None)
                return None
            if returncode is not None:
                return returncode
            now = time.monotonic()
            if self.wandb is not None:
                self.wandb.start_once_due(now - child.started)
            marked = self.heard.child_marked.is_set()
            if marked:  # the script's mark starts the handoff (a preemption's already did: tell)
                self.handing_off_at = self.handing_off_at or now
            turn = tick(hold, now, marked=marked, going=agent.preemption)
            if turn.kill:
                log.warning("grace period over: killing the process tree", reason=hold.reason)
                if self.slurm is not None:
                    self.slurm.end()  # the run's SLURM steps first, on every node, then its tree
                child.kill_tree()
                return child.wait(None)
            if turn.renewed is not None:
                self._renew(turn.renewed, now)
            if turn.flushed:
                if hold.refused is not None and hold.ending is None:  # a poison run: ended, failed
                    hold.end("stop", "refused", now + agent.opts.grace)
                self._flush_output(quietly=True)
                if turn.logged:  # hyperband judges a curve when it reaches a bracket, not a heartbeat later
                    self._judge(now, new_bracket_only=True)
            try:
                agent.maybe_reap()
            except REDIS_DOWN:  # a failed reap waits for the next heartbeat
                agent.metrics.redis_error()
            agent.notifier.maybe_watchdog()
            wake_at = min(hold.next_renew, now + FLUSH_EVERY)
            if hold.kill_at is not None:
                wake_at = min(wake_at, hold.kill_at)
            interval = agent.notifier.watchdog_interval()
            timeout = min(wake_at - now, interval / 2 if interval else heartbeat)
            if child.pidfd is None:
                timeout = min(timeout, TICK)
            fds = [channel.fileno()] if (channel := self.channel) is not None else []
            if child.pidfd is not None:
                fds.append(child.pidfd)
            agent.waker.wait(timeout, *fds)
            if channel is not None:
                channel.accept()  # the script's connection (channel.py): served on a thread of its own

    def _renew(self, answer: Renewal, now: float) -> None:
        """The hold renewed the lease (tick.py): a renewed lease is a heartbeat too, and the moment
        hyperband judges."""
        agent = self.agent
        if answer == "fenced":
            return
        with contextlib.suppress(*REDIS_DOWN):
            agent.beat(force=True)
        if answer == "ok":
            self._judge(now)

    def _judge(self, now: float, new_bracket_only: bool = False) -> None:
        """Ask hyperband about the held run (EarlyStop reads Redis only when its curve reached a bracket)."""
        agent, hold = self.agent, self.hold
        if hold.ending is not None or hold.fenced.is_set():
            return
        try:
            if self.early.should_stop(new_bracket_only):
                hold.end("stop", "hyperband", now + agent.opts.grace)
            elif (pause := self.rungs.reached() or self.member.reached()) is not None:
                hold.rung = pause.rung
                hold.end(pause.ending, pause.reason, now + agent.opts.grace)
        except REDIS_DOWN:  # judged again at the next rows or heartbeat
            agent.metrics.redis_error()

    # recording ----------------------------------------------------------------------------------

    def _record(self, returncode: int, seconds: float) -> Result:
        """Record the end through the hold (the exit-status table, once), then count and log it."""
        agent, hold = self.agent, self.hold
        agent.intake()  # a signal that arrived as the process exited still counts
        # Preempting is what we decided (or the script said), whether or not Redis heard of it in
        # time: a Redis blip must not turn a preempted run into a failed one.
        # The platform may signal the training process itself at the moment it signals us (SLURM
        # at the end of GraceTime, Kubernetes to a whole pod): a run that ends while the agent is
        # being preempted is preempted, even if it exited before we could tell it.
        if self.heard.child_marked.is_set():
            hold.script_marked(mark=False)
        if agent.preemption.requested:
            hold.note_preempting(agent.preemption.reason or "signal")
        hold.persist(self._flush_output)
        # The script marked the run preempting with no signal or notice here, and exited non-zero
        # at once: counted, so that a run doing it again and again fails (bounds.QUICK_MARKS).
        quick = (
            self.heard.child_marked.is_set()
            and not agent.preemption.requested
            and hold.ending is None
            and returncode != 0
            and seconds < bounds.QUICK_SECONDS
        )
        done = hold.record(returncode, retries=agent.opts.max_retries, quick_mark=quick)
        if done is None:
            return Result()
        if done.how == "retry":
            agent.metrics.run_ended(done.state, done.reason)
            agent.metrics.requeued("retry", None)
            log.warning("run failed, retrying", exit_code=returncode, seconds=round(seconds, 3))
        elif done.how == "requeued":
            now = time.monotonic()
            took = agent.preemption.since_request(now)
            if took is None and self.handing_off_at is not None:
                took = now - self.handing_off_at
            if done.reason != "operator-requeue":
                agent.metrics.preempted(done.reason)
            agent.metrics.requeued(done.reason, took)
            log.warning("run requeued at the front", reason=done.reason, exit_code=returncode, handoff_seconds=took)
        elif done.how == "paused":
            agent.metrics.run_ended(done.state, done.reason)
            log.info("run paused at its rung", rung=hold.rung, exit_code=returncode, seconds=round(seconds, 3))
        elif done.how == "ended":
            agent.metrics.run_ended(done.state, done.reason)
            log.info("run ended", state=done.state, exit_code=returncode, seconds=round(seconds, 3))
        return Result(failed=done.failed)

    def _flush_output(self, quietly: bool = False) -> bool:
        """Write the output that waits (not fenced: an attempt's log is its own). ``quietly``: a
        periodic write, which leaves it waiting when Redis is away."""
        store, claim = self.agent.store, self.claim
        try:
            self.output.flush(lambda lines, keep: store.append_log(claim.run_id, claim.attempt, lines, keep=keep))
        except REDIS_DOWN:
            if not quietly:
                raise
            self.agent.metrics.redis_error()
        return True
