"""A run's SLURM job steps: told the child signal through SLURM, and ended with the run.

A run inside a SLURM allocation (``SLURM_JOB_ID`` set) may start its ranks with ``srun``: each srun
is a job step whose tasks run under slurmstepd, on this node or on others, never as the run's
descendants. srun answers SIGTERM by killing its tasks ("forcing job termination", 0.12 s later),
so the child signal must not reach the srun. The step's tasks get it from SLURM instead:
``scancel --signal=SIG JOB.STEP`` has the slurmd of every node of the step signal its tasks, and the
step goes on (no KillWait, no SIGKILL after it). At the grace's end the steps are ended (``scancel
--signal=KILL``, then ``scancel``) before the run's tree is killed, so no task outlives its run.

Which steps are the run's: those whose srun is in the run's process tree. ``scontrol show step
JOB`` names each step's srun (``SrunHost:Pid``), so a step is the run's when that host is this node
and that pid one of the run's srun processes: never another run's step (an agent holding a run per
GPU), never the batch script's own steps (its preemption relay), and no guess at step names or at
process ids on other nodes. Not ``scancel --signal=SIG JOB``: that signals every step of the job,
the relay (which would tell the agent of a preemption) and other runs' steps too, and ``--full``
the batch script and the agent as well. A run with no srun in its tree costs one walk of its tree,
and no command.

The decisions (``parse``, ``ours``, ``direct``) are pure; the I/O is psutil and two SLURM commands.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import psutil

from . import logs
from .process import run_own

log = logs.get("sweepd.agent")

SRUN = "srun"
TIMEOUT = 5.0  # seconds one scontrol or scancel may take (slurmctld answers in milliseconds): the
# supervisor waits on it, while the guard thread keeps the lease's deadline
FIELD = re.compile(r"(\S+?)=(\S*)")


@dataclass(frozen=True)
class Step:
    """A job step an srun started: its id as scontrol prints it (``12.0``, ``12_3.0`` for an array
    task; scancel takes either form), and where its srun runs."""

    id: str
    host: str
    pid: int


def parse(text: str) -> list[Step]:
    """``scontrol -o show step JOB`` -> the steps an srun started (the batch, extern and interactive
    steps have no srun: ``SrunHost:Pid=(null):0``)."""
    steps = []
    for line in text.splitlines():
        fields = dict(FIELD.findall(line))
        step_id = fields.get("StepId", "")
        host, _, pid = fields.get("SrunHost:Pid", "").rpartition(":")
        if step_id.rpartition(".")[2].isdigit() and pid.isdigit() and int(pid) > 0:
            steps.append(Step(step_id, host, int(pid)))
    return steps


def short(host: str) -> str:
    return host.split(".")[0]


def ours(steps: Iterable[Step], host: str, sruns: Collection[int]) -> list[Step]:
    """The steps whose srun is one of the run's (``sruns``, on ``host``, this node)."""
    return [step for step in steps if step.pid in sruns and short(step.host) == short(host)]


def direct(group: Iterable[int], owners: Collection[int]) -> list[int]:
    """The processes of the run's group that get the child signal themselves: all but the sruns
    whose steps SLURM signals (a wrapper script, a launcher beside the srun)."""
    return [pid for pid in group if pid not in owners]


class Steps:
    """One attempt's steps, found from its process tree (rooted at ``root``, its group's leader)."""

    def __init__(self, root: int, environ: Mapping[str, str] = os.environ) -> None:
        self.root = root
        self.job = environ.get("SLURM_JOB_ID") or None
        self.host = socket.gethostname()
        self.known: dict[str, Step] = {}  # every step found so far: ended with the run

    def sruns(self) -> set[int]:
        """The srun processes of the run's tree; none outside an allocation (no lookup at all)."""
        if self.job is None:
            return set()
        return {proc.pid for proc in _tree(self.root) if _name(proc) == SRUN}

    def find(self, sruns: Collection[int]) -> list[Step]:
        """The run's steps now (asked of SLURM only when the tree holds an srun), and remembered."""
        if self.job is None or not sruns:
            return []
        done = _command("scontrol", "-o", "show", "step", self.job)
        if done is None:
            return []
        found = ours(parse(done), self.host, sruns)
        self.known.update((step.id, step) for step in found)
        return found

    def tell(self, signum: signal.Signals) -> bool:
        """Send ``signum`` to every task of the run's steps, through SLURM, and to the rest of the
        run's process group but those steps' sruns. False when the run has no step: the caller
        signals the process group as for any run."""
        found = self.find(self.sruns())
        if not found:
            return False
        ids = [step.id for step in found]
        _command("scancel", f"--signal={signum.name}", *ids)
        owners = {step.pid for step in found}
        for pid in direct(_group(self.root), owners):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        log.info("child signal sent to the run's SLURM steps", steps=ids, signal=signum.name)
        return True

    def end(self, sruns: Collection[int] | None = None) -> None:
        """End every step of the run: its tasks SIGKILLed on every node (``scancel --signal=KILL``:
        at once, where a plain scancel gives a task that ignores SIGTERM KillWait more), then the
        step cancelled. ``sruns``: the run's sruns, read before its tree was killed."""
        self.find(self.sruns() if sruns is None else sruns)
        if not self.known:
            return
        ids = sorted(self.known)
        _command("scancel", "--signal=KILL", *ids, done_ok=True)
        _command("scancel", *ids, done_ok=True)
        log.warning("the run's SLURM steps ended", steps=ids)


def _command(*argv: str, done_ok: bool = False) -> str | None:
    """Run a SLURM command; its output, or None (logged) when it failed. ``done_ok``: a scancel that
    ends steps, which fails harmlessly for a step that has already ended (the end wanted)."""
    binary = shutil.which(argv[0])
    if binary is None:
        log.warning("SLURM command not found", command=argv[0])
        return None
    try:
        done = run_own([binary, *argv[1:]], TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("SLURM command failed", argv=list(argv), error=str(exc))
        return None
    if done.returncode != 0:
        level = log.info if done_ok else log.warning
        level("SLURM command failed", argv=list(argv), exit_code=done.returncode, stderr=done.stderr.strip())
        return None
    return done.stdout


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return ""


def _group(pgid: int) -> list[int]:
    """The members of the process group ``pgid`` among its leader's tree (what killpg reaches)."""
    found = []
    for proc in _tree(pgid):
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
    return found
