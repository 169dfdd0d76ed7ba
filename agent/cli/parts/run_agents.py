"""`sweepd run`'s local agents: started, told what the user's signals mean, and waited for.

Each agent runs in a session of its own, so a Ctrl-C at the terminal reaches `sweepd run` alone
and is passed on exactly once: the first Ctrl-C (like SIGTERM, each of which is passed on as it
comes) preempts every held run as a SIGTERM to an agent does: it checkpoints within the agent's
grace and is requeued at the front. The second Ctrl-C kills the held runs' training processes at
once; their agents, preempting already, requeue them at the front as killed while preempting
(the exit-status table), at once and through their own records, and then exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Literal

import psutil

from ...daemon import secrets
from ...daemon.signals import SignalFlags, Waker

#: What a turn of the wait saw the user ask for.
Move = Literal["preempt", "kill"]


class LocalAgents:
    """``n`` processes of ``sweepd agent SID *extra``, each handed ``redis_url`` by a pipe, never its
    environment (secrets.py); with ``log_dir``, each one's output (its log lines and its runs' output)
    goes to ``agent-<i>.log`` there instead of this process's stdout and stderr."""

    def __init__(
        self,
        n: int,
        sid: str,
        env: Mapping[str, str],
        redis_url: str,
        log_dir: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.files: list[IO[bytes]] = []
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.files = [open(log_dir / f"agent-{i + 1}.log", "ab") for i in range(n)]  # noqa: SIM115
        self.procs = [self._start(i, sid, env, redis_url, extra) for i in range(n)]

    def _start(
        self, i: int, sid: str, env: Mapping[str, str], redis_url: str, extra: Sequence[str]
    ) -> subprocess.Popen[bytes]:
        child_env, fd = secrets.hand_over(redis_url, env)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "sweepd.agent", "agent", sid, *extra],
                env=child_env,
                stdin=subprocess.DEVNULL if self.files else None,
                stdout=self.files[i] if self.files else None,
                stderr=subprocess.STDOUT if self.files else None,
                start_new_session=True,  # the terminal's Ctrl-C is for `sweepd run`, which passes it on once
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def signal(self, signum: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signum)

    def kill_runs(self) -> int:
        """SIGKILL each agent's training process group: the run is then recorded by its agent, as
        a process killed by a signal is (requeued at the front while preempting). The training
        process leads a group of its own in its agent's session (daemon/process.py); the agent's
        watchdog leads a session of its own (hold/watchdog.py) and is spared. How many were killed."""
        killed = 0
        for p in self.procs:
            if p.poll() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(p.pid).children():
                    with contextlib.suppress(OSError):
                        if os.getpgid(child.pid) == child.pid and os.getsid(child.pid) != child.pid:
                            os.killpg(child.pid, signal.SIGKILL)
                            killed += 1
        return killed

    def codes(self) -> list[int]:
        return [p.wait() for p in self.procs]

    def close(self) -> None:
        for fh in self.files:
            fh.close()


class Supervisor:
    """The signals `sweepd run` traps, and what each asks of its agents. Handlers only record
    (``SignalFlags``); ``wait`` acts, on this process's main loop. Installed before the agents
    start, so no signal finds this process without them."""

    def __init__(self) -> None:
        self.waker, self.flags = Waker(), SignalFlags()
        self.flags.install({signal.SIGTERM, signal.SIGINT, signal.SIGHUP}, self.waker)
        self.ctrl_c = 0
        self.preempting = False  # the agents were told to preempt their runs
        self.killing = False  # the user asked twice: runs are killed as soon as they are seen
        self.hung_up = False  # the terminal is gone: nothing more to draw on it
        self._seen = 0

    def wait(self, agents: LocalAgents, timeout: float) -> list[Move]:
        """Sleep until a signal or ``timeout``; pass on to ``agents`` what arrived. The moves the
        user made now."""
        self.waker.wait(timeout)
        moves: list[Move] = []
        for signum in self.flags.received[self._seen :]:
            self._seen += 1
            if signum == signal.SIGINT:
                self.ctrl_c += 1
                if self.ctrl_c >= 2:
                    if not self.killing:
                        moves.append("kill")
                    self.killing = True
                    continue
            if signum == signal.SIGHUP:
                self.hung_up = True
            if not self.preempting:
                moves.append("preempt")
            self.preempting = True
            agents.signal(signal.SIGTERM if signum == signal.SIGHUP else signum)
        if self.killing:  # again each turn: a run its agent was starting as the user asked is killed too
            agents.kill_runs()
        return moves

    def close(self) -> None:
        self.flags.detach()  # the handlers stay until the process ends: a late signal only gets recorded
        self.waker.close()
