"""The training process: started from an argv list (never a shell), in its own process group, with a
parent-death signal, its output passed through and kept; stopped as a whole tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import psutil

PR_SET_PDEATHSIG = 1


@functools.cache
def _setpriv() -> str | None:
    """util-linux's ``setpriv``, when it has ``--pdeathsig`` (2.33+, in every Debian, Ubuntu and RHEL
    base image). It sets the parent-death signal and execs the command: a spawn without Python code
    between fork and exec, which lets subprocess use vfork (about 1 ms against 5-10 ms for
    ``preexec_fn``, which must fork the agent's whole address space). This is what a run's pickup
    latency is made of."""
    path = shutil.which("setpriv")
    if path is None or not sys.platform.startswith("linux"):
        return None
    try:
        out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in out else None


def _child_setup(parent: int) -> Callable[[], None]:
    """The fallback without setpriv, run between fork and exec: own process group; die with the agent."""

    def setup() -> None:
        os.setpgid(0, 0)
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the agent died before prctl took effect
                os._exit(1)

    return setup


def spawn_options(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The argv and Popen options that start ``argv`` in its own process group, SIGKILLed if the
    agent dies. With setpriv the window between fork and prctl is about a millisecond, in which an
    agent SIGKILLed leaves its child to the platform's own clean-up (the unit's cgroup, the job
    step, the pod); the fallback closes even that window, at the cost of a slower spawn."""
    setpriv = _setpriv()
    if setpriv is not None and sys.version_info >= (3, 11):
        return [setpriv, "--pdeathsig", "KILL", "--", *argv], {"process_group": 0}
    return argv, {"preexec_fn": _child_setup(os.getpid())}


class Child:
    """One attempt's training process. ``on_lines`` receives its output lines (stdout and stderr) in
    batches, and ``on_stdout`` its stdout lines alone, after ``on_lines`` has them."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        on_lines: Callable[[list[str]], None],
        cwd: str | None = None,
        on_stdout: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        spawn_argv, options = spawn_options(self.argv)
        self.proc = subprocess.Popen(
            spawn_argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **options,
        )
        self.pid = self.proc.pid
        self.started = time.monotonic()
        #: Readable once the process exits (Linux 5.3+), so the agent can sleep until then.
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(self.pid)
        self._on_lines = on_lines
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, sys.stdout, on_stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, sys.stderr, None), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, src: IO[bytes] | None, dst: IO[str], also: Callable[[list[str]], None] | None) -> None:
        """Pass the child's output through to ours, line by line, and hand each line on."""
        if src is None:
            return
        out = getattr(dst, "buffer", None)
        for raw in iter(src.readline, b""):
            if out is not None:
                try:
                    out.write(raw)
                    out.flush()
                except (OSError, ValueError):
                    out = None  # our own stdout went away: keep reading so the child never blocks
            lines = [raw.decode(errors="replace").rstrip("\n")]
            self._on_lines(lines)
            if also is not None:
                also(lines)
        src.close()

    def poll(self) -> int | None:
        """The return code, or None while the process runs."""
        return self.proc.poll()

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def wait(self, timeout: float | None) -> int | None:
        """The return code, or None if still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def drain(self, timeout: float = 5.0) -> None:
        """Wait for the output pumps after exit, so the last lines are kept."""
        for pump in self._pumps:
            pump.join(timeout)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_tree(self) -> None:
        """SIGKILL the process group and every descendant that left it (psutil)."""
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        self.signal(signal.SIGKILL)
        for proc in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
