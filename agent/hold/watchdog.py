"""A dead man's switch outside the agent: a process of its own that kills a held run's process tree
when the lease deadline it was last given for it passes.

Invariant 5 (a holder that cannot renew kills its process before its lease can lapse) is kept by
the hold's guard thread while the holder's interpreter runs. This process keeps it when the
interpreter cannot: the agent frozen (SIGSTOP), stalled (a pattern that backtracks for minutes
while holding the interpreter lock), starved, or killed. One watchdog serves every run its holder
holds (an agent starts it once, so a run's start costs it a pipe write, not a process); the holder
feeds it one line per event on its stdin:

- ``watch PID DEADLINE [group]``: guard PID's tree until DEADLINE (seconds on CLOCK_MONOTONIC, which
  every process on the machine shares); ``group``: PID leads its own process group, kill that too;
- ``feed PID DEADLINE``: a renewal moved PID's deadline;
- ``release PID``: PID's run ended (or was recorded): stop guarding it.

When a deadline passes, or the pipe closes (the holder died) with runs still watched, the watchdog
kills those trees: SIGKILL to the process group where asked and to every descendant found in /proc,
so one that left the group (setsid) goes too. It runs as ``python -I -S watchdog.py`` and imports
only the standard library, so it needs no installed package, and it ignores SIGINT, SIGTERM and
SIGHUP (a terminal's Ctrl-C or a unit's stop is for its holder, which then releases its runs). What
no process can see is the whole machine pausing (holder, watchdog and child together): see
docs/design.md.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid``, read from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int, group: bool) -> None:
    """SIGKILL ``pid``'s descendants (found first, while they are still linked to it), its process
    group when ``group``, and ``pid`` itself."""
    tree = [p for p in descendants(pid) if p != os.getpid()]  # a script holding its own run started us
    if group:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    for target in [pid, *tree]:
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)


class Guarded:
    """The runs being watched: pid -> (deadline, kill its group too)."""

    def __init__(self) -> None:
        self.runs: dict[int, tuple[float, bool]] = {}

    def apply(self, line: bytes) -> None:
        words = line.split()
        try:
            if words[0] == b"watch":
                self.runs[int(words[1])] = (float(words[2]), words[3:] == [b"group"])
            elif words[0] == b"feed" and int(words[1]) in self.runs:
                pid = int(words[1])
                self.runs[pid] = (float(words[2]), self.runs[pid][1])
            elif words[0] == b"release":
                self.runs.pop(int(words[1]), None)
        except (IndexError, ValueError):
            pass  # not a line of ours: ignored

    def kill_due(self, now: float) -> list[int]:
        due = [pid for pid, (deadline, _) in self.runs.items() if deadline <= now]
        for pid in due:
            kill_tree(pid, self.runs.pop(pid)[1])
        return due

    def kill_all(self) -> list[int]:
        return self.kill_due(float("inf"))


def serve(feed: int) -> None:
    """Apply the feed's lines and kill what is due, until the feed closes; then kill what is left."""
    guarded, pending = Guarded(), b""
    while True:
        for pid in guarded.kill_due(time.monotonic()):
            say(
                f"the lease of the run in process {pid} was not renewed in time (its holder could not run): "
                "killed its process tree, so that no other can run the same run at once"
            )
        timeout = min((d for d, _ in guarded.runs.values()), default=None)
        ready, _, _ = select.select([feed], [], [], None if timeout is None else max(0.0, timeout - time.monotonic()))
        if not ready:
            continue
        try:
            chunk = os.read(feed, 65536)
        except InterruptedError:
            continue
        if not chunk:
            for pid in guarded.kill_all():
                say(f"its holder is gone: killed the process tree of {pid}")
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            guarded.apply(line)


class Watchdog:
    """The holder's end: starts the watchdog process (at ``start()``, else with the first run it
    watches, and again if it died), then feeds it. Writes never block (a frozen watchdog cannot
    stall its holder); a write that fails leaves the guard thread guarding, as before."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the process now (an agent does at its own start), so that no run waits for it."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def watch(self, pid: int, deadline: float, *, group: bool) -> None:
        self._send(f"watch {pid} {deadline!r}{' group' if group else ''}\n", start=True)

    def feed(self, pid: int, deadline: float) -> None:
        self._send(f"feed {pid} {deadline!r}\n")

    def release(self, pid: int) -> None:
        self._send(f"release {pid}\n")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """No more runs: the watchdog, watching none, exits when its feed closes."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _send(self, line: str, start: bool = False) -> None:
        with self._lock:
            if start and (self._proc is None or self._proc.poll() is not None):
                self._start()
            if self._proc is None or self._proc.stdin is None:
                return
            with contextlib.suppress(OSError):  # full (frozen) or gone: the guard thread still guards
                os.write(self._proc.stdin.fileno(), line.encode())

    def _start(self) -> None:
        with contextlib.suppress(OSError):
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the holder's group (Ctrl-C) is not for it
            )
            assert self._proc.stdin is not None
            os.set_blocking(self._proc.stdin.fileno(), False)


def say(text: str) -> None:
    print(f"sweepd watchdog: {text}", file=sys.stderr, flush=True)


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    serve(sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
