"""Why `sweepd run`'s runs failed, said in plain words, whenever some did.

An agent stops when its runs fail fast or keep failing (W&B's crash guards, ``Agent._failing``),
and what it logs then ("stopping: runs fail fast") leaves the user to dig the cause out of
scrolled-away output; a small sweep may also complete before any guard trips, every run failed.
Either way ``explain`` turns what Redis holds of the failed runs into the last lines
`sweepd run` prints: how many failed and how fast, the first one's id and last output line, and
how to see the rest. A program that could not import a module also gets the interpreter that ran
it and the two ways out. ``explain`` is pure (tested without Redis); ``gather`` reads its input.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sweepd.queue.command import DEFAULT_COMMAND
from sweepd.queue.reads import Reads
from sweepd.queue.records import RunRecord

from ...daemon import launch
from .table import printable
from .watch import duration

FAILED = ("failed", "crashed")
INTERPRETER = "${interpreter}"
#: An exception's line: ``ValueError: ...``, ``torch.cuda.OutOfMemoryError: ...``, ``KeyboardInterrupt``.
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Failure)\b(:.*)?$")
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


@dataclass(frozen=True)
class Failures:
    """What the explanation is made of: the sweep's failed runs, the first of them, the command."""

    sweep_id: str
    count: int  # runs failed or crashed
    slowest_seconds: float | None  # the longest of their runs, start to end (None: not known)
    first_run_id: str
    first_exit_code: int | None
    last_line: str | None  # the first failed run's error line (error_line)
    command: tuple[str, ...]  # the sweep's command, macros unexpanded
    interpreter: str  # ${interpreter} as this machine resolves it: a full path where it can be found
    own_python: str  # the Python sweepd runs on: one that can import sweepd
    stopped: bool = True  # the agents stopped on the failures (else the sweep ended with them)
    finished: int = 0  # runs of the sweep that finished


def missing_module(line: str | None) -> str | None:
    """The module a ``ModuleNotFoundError`` line names, else None."""
    found = _MISSING.search(line or "")
    return found.group(1) if found else None


def error_line(output: Sequence[str]) -> str | None:
    """The line that says why a run failed, from its kept output (stdout and stderr as their pumps
    kept them: a line printed before a traceback may be kept after it). After the last Python
    traceback its exception's line (the first not indented below the frames that names an exception,
    else the first not indented); else the last line."""
    lines = [line.rstrip() for line in output if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if starts:
        after = [line for line in lines[starts[-1] + 1 :] if not line[:1].isspace()]
        named = [line for line in after if _EXCEPTION.match(line)]  # stdout may land among the frames
        if named or after:
            return (named or after)[0]
    return lines[-1].strip() if lines else None


def explain(f: Failures) -> list[str]:
    """The lines that say why the runs failed and what to do next."""
    how_fast = ""
    if f.slowest_seconds is not None:
        how_fast = f", {'' if f.count == 1 else 'each '}within {_seconds(f.slowest_seconds)} of its start"
    plural = "run" if f.count == 1 else "runs"
    if f.stopped:
        lines = [f"sweepd: the agents stopped because runs fail: {f.count} {plural} failed{how_fast}"]
    else:
        done = "no run finished" if not f.finished else f"{f.finished} finished"
        lines = [f"sweepd: {f.count} {plural} failed{how_fast}; {done}"]
    code = "" if f.first_exit_code is None else f" (exit code {f.first_exit_code})"
    lines.append(f"  first failed run: {f.first_run_id}{code}")
    lines.append(f"  its last error line: {printable(f.last_line)}" if f.last_line else "  it printed nothing")
    lines.append(f"  all of its output: sweepd logs {f.first_run_id}")
    module = missing_module(f.last_line)
    if module is None:
        return lines
    if INTERPRETER in f.command:
        lines.append(f"  the program ran on {INTERPRETER} = {f.interpreter}, which cannot import {module!r}")
    else:
        lines.append(f"  the interpreter the sweep's command names cannot import {module!r}")
    lines += [
        "  two ways out:",
        f"    - activate the environment that has {module!r} (e.g. `. .venv/bin/activate`) and run again, or",
        "    - name the interpreter in the sweep's command, e.g.",
        f"        command: [{', '.join(_named(f.command, _python_for(module, f.own_python)))}]",
    ]
    return lines


def _seconds(s: float) -> str:
    """A run's length: tenths below a minute (a failure at start-up takes well under a second)."""
    return f"{s:.1f}s" if s < 60 else duration(s)


def _python_for(module: str, own_python: str) -> str:
    """The example's interpreter: this sweepd's own when the module is sweepd (it has it), else a stand-in."""
    return own_python if module.partition(".")[0] == "sweepd" else "/path/to/env/bin/python"


def _named(command: Sequence[str], python: str) -> list[str]:
    """The sweep's command with its interpreter written out (W&B's default when it names none)."""
    items = list(command) if INTERPRETER in command else list(DEFAULT_COMMAND)
    return [python if item == INTERPRETER else item for item in items]


def resolved_interpreter() -> str:
    """``${interpreter}`` as the local agents resolve it (they share this process's PATH), in full."""
    name = launch.interpreter()
    return shutil.which(name) or name


def gather(reads: Reads, sid: str, codes: Sequence[int], runs: Sequence[RunRecord]) -> Failures | None:
    """The sweep's failures (of ``runs``, the sweep's) whenever a run failed, and whether an agent
    stopped on them (exit code 1, the sweep not complete); None when no run failed."""
    failed = [run for run in runs if run.state in FAILED]
    if not failed:
        return None
    first = min(failed, key=lambda run: (run.started_at or 0, run.created_at or 0))
    spans = [(run.ended_at - run.started_at) / 1000 for run in failed if run.started_at and run.ended_at]
    return Failures(
        sweep_id=sid,
        count=len(failed),
        slowest_seconds=max(spans) if spans else None,
        first_run_id=first.id,
        first_exit_code=first.exit_code,
        last_line=error_line(reads.logs(first.id)),
        command=tuple(reads.config(sid).command or DEFAULT_COMMAND),
        interpreter=resolved_interpreter(),
        own_python=sys.executable,
        stopped=1 in codes and not reads.is_complete(sid),
        finished=sum(run.state == "finished" for run in runs),
    )
