"""The training process: started from an argv list (never a shell), in its own process group, with a
parent-death signal, its output passed through and kept; stopped as a whole tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

import psutil

PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> Callable[[], None]:
    """What the child runs between fork and exec: own process group; die with the agent (Linux)."""

    def setup() -> None:
        os.setpgid(0, 0)
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the agent died before prctl took effect
                os._exit(1)

    return setup


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
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_child_setup(os.getpid()),
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
