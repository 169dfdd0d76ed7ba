"""The training process: started from an argv list (never a shell), in its own process group, with a
parent-death signal, its output passed through and kept within bounds; stopped as a whole tree,
with whatever it leaves behind. What is kept of its output, and how, is output.py's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import IO, Any

import psutil

from .output import Lines

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

READ_BYTES = 65_536  # one read of the child's output: what the agent holds of it at a time, per pipe
STOP_BYTES = 1024 * 1024  # read from a pipe after the tree is dead: a full pipe (Linux's largest)
REAP_WAIT = 1.0  # seconds an attempt's end waits for the leftovers it killed to be reapable

#: The training processes this process started that have not been reaped, and the lock their spawn
#: and every search for leftovers take: an agent holding several runs at once (slots.py) never
#: takes another run's process, started a moment ago, for a leftover of the run that just ended.
_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()


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


@functools.cache
def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux 3.4+): a process the run leaves behind (double
    fork, setsid) is re-parented to us rather than to init when its parent dies, so it stays findable
    as one of our descendants, and killable. Once per process; False where the platform has none."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


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
        become_subreaper()
        spawn_argv, options = spawn_options(self.argv)
        with _LIVE_LOCK:
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
            _LIVE.add(self.pid)
        self.started = time.monotonic()
        #: Readable once the process exits (Linux 5.3+), so the agent can sleep until then.
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(self.pid)
        self._born: float | None = None  # its creation (psutil's clock): read before it is reaped
        self._on_lines = on_lines
        self._stop_r, self._stop_w = os.pipe()  # written once the tree is dead: read what is left, stop
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, sys.stdout, on_stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, sys.stderr, None), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, src: IO[bytes] | None, dst: IO[str], also: Callable[[list[str]], None] | None) -> None:
        """Pass the child's output through to ours as it comes, and hand its lines on (``Lines``)."""
        if src is None:
            return
        fd, out, lines = src.fileno(), getattr(dst, "buffer", None), Lines()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        left: int | None = None  # bytes still read once stopped
        while left is None or left > 0:
            if left is None and any(ready == self._stop_r for ready, _ in poller.poll()):
                os.set_blocking(fd, False)
                left = STOP_BYTES
            try:
                chunk = os.read(fd, READ_BYTES)
            except OSError:  # BlockingIOError once stopped: all that was there is read
                break
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            if out is not None:
                try:
                    out.write(chunk)
                    out.flush()
                except (OSError, ValueError):
                    out = None  # our own stdout went away: keep reading so the child never blocks
            self._hand(lines.feed(chunk), also)
        self._hand(lines.close(), also)
        src.close()

    def _hand(self, lines: list[str], also: Callable[[list[str]], None] | None) -> None:
        if lines:
            self._on_lines(lines)
            if also is not None:
                also(lines)

    def poll(self) -> int | None:
        """The return code, or None while the process runs."""
        self._birth()
        return self.proc.poll()

    def _birth(self) -> float | None:
        """When the child was created: what the run starts is created after it. Read off the spawn
        path (it would slow the pickup), and before the child is reaped (its pid is then not its own)."""
        if self._born is None and self.proc.returncode is None:
            self._born = _created(self.pid)
        return self._born

    def close(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self.pid)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self._stop_w >= 0 and not any(pump.is_alive() for pump in self._pumps):
            os.close(self._stop_r)
            os.close(self._stop_w)
            self._stop_r = self._stop_w = -1

    def wait(self, timeout: float | None) -> int | None:
        """The return code, or None if still running after ``timeout`` seconds."""
        self._birth()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def end(self, spare: Collection[int] = (), timeout: float = 5.0) -> None:
        """Once the child has exited: kill what is left of its tree (a leftover would overlap the next
        attempt, and holds our pipes open) and reap it, then stop the pumps once they have read what
        the pipes hold, rather than wait for an end of output that may never come."""
        deadline = time.monotonic() + REAP_WAIT
        while True:  # again while the leftovers fork faster than we kill them, or are still dying
            self.kill_tree(spare)
            if not self._reap(spare) or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        for pump in self._pumps:
            pump.join(timeout)  # only a write to our own stdout can hold a pump now

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_tree(self, spare: Collection[int] = ()) -> None:
        """SIGKILL the process group, every descendant that left it (psutil), and what the run left
        to us (orphans re-parented to the agent, a subreaper) and their descendants. ``spare``: the
        agent's own children (the watchdog), never the run's."""
        targets = _tree(self.pid) if self.proc.returncode is None else []  # once reaped, its pid is not its own
        for orphan in self._orphans(spare):
            targets += [orphan, *_tree(orphan.pid)]
        self.signal(signal.SIGKILL)
        for proc in targets:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def _orphans(self, spare: Collection[int]) -> list[psutil.Process]:
        """Our children the run left behind: created since the run started, neither it nor ``spare``."""
        born = self._birth()
        if born is None:
            return []
        found = []
        with _LIVE_LOCK:  # another attempt's process is never this one's leftover
            try:
                children = psutil.Process().children()
            except psutil.Error:
                return []
            for proc in children:
                with contextlib.suppress(psutil.Error):
                    if proc.pid not in _LIVE and proc.pid not in spare and proc.create_time() >= born:
                        found.append(proc)
        return found

    def _reap(self, spare: Collection[int]) -> int:
        """Collect the exit of the orphans (killed, or dead already), so that no zombie accumulates
        in a long-lived agent; only theirs, never another child's (subprocess's). How many are left."""
        left = 0
        for proc in self._orphans(spare):
            try:
                pid, _ = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                continue
            left += pid == 0
        return left


def run_own(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A short command of the agent's own (a SLURM command), counted live while it runs: no search
    for a run's leftovers (another slot's, or this run's on another thread) takes it for one."""
    with _LIVE_LOCK:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _LIVE.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _created(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None
