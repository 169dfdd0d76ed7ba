"""The functions the baselines' rq jobs and Optuna objectives run (importable by an rq worker started
with this directory on its path)."""

from __future__ import annotations

import subprocess
import time


def noop() -> None:
    """A job that does nothing: what a no-op costs the queue itself."""


def spawn(argv: list[str]) -> int:
    """A job that runs a command, as a sweep's run does (no shell, output captured)."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode


def sleep(seconds: float) -> None:
    """A long job: a training run that a preemption interrupts."""
    time.sleep(seconds)
