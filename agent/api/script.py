"""The run object a training script holds (``run.init()`` returns one; ``from sweepd.agent import run``
delegates to the current one). Where its rows and notices go is its ``Sink``: the agent's socket
(link.py), Redis directly when there is no agent (standalone.py), or stderr (no agent, no init).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

from sweepd.queue import bounds, rows


class Sink(Protocol):
    """Where a run's rows and its script's word go. Neither call may block the script for long."""

    def rows(self, items: list[dict[str, Any]], cut: int = 0) -> None:
        """``items`` are within the bounds (bounds.py); ``cut``: what was cut to make them so."""

    def mark(self) -> None: ...

    def close(self, exit_code: int) -> None: ...


class Printed:
    """No agent and no ``init()``: rows are printed to stderr as JSON, nothing is stored."""

    def rows(self, items: list[dict[str, Any]], cut: int = 0) -> None:
        for row in items:
            print(json.dumps(row), file=sys.stderr)

    def mark(self) -> None:
        pass

    def close(self, exit_code: int) -> None:
        pass


def exit_code(exc: BaseException | None) -> int:
    """The exit status a process ending with ``exc`` has, as the exit-status table reads it."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        return 0 if code is None else code if isinstance(code, int) else 1
    if isinstance(exc, KeyboardInterrupt):
        return -int(signal.SIGINT)  # Python ends a Ctrl-C by the signal itself
    return 1


#: Where a process learns its rank in a run that spans processes: torchrun's, then srun's (the agent
#: passes what it inherited itself as ``SWEEPD_INHERITED_<NAME>``: launch.py).
RANK_VARS = ("RANK", "SLURM_PROCID")


def rank(environ: Mapping[str, str]) -> tuple[str, int]:
    """This process's rank in a run whose command launches several (``torchrun``'s ``RANK``, else
    ``srun``'s ``SLURM_PROCID``), and the variable that says so; ``("", 0)`` for a process of its own.
    A value the run's first process inherited from its agent (``SWEEPD_INHERITED_<NAME>``: an agent
    that is itself a task of a SLURM step) is not a rank of the run's."""
    for name in RANK_VARS:
        value = environ.get(name, "").strip()
        if not value.isdigit() or value == environ.get(f"SWEEPD_INHERITED_{name}", "").strip():
            continue
        return name, int(value)
    return "", 0


class Run:
    """One start (attempt) of one run, as its training script sees it.

    ``step`` is the step ``log()`` gives a row without one: after a resume it continues from the
    run's last logged step (``resumed_from_step``), so the history is one series across attempts.
    """

    def __init__(
        self,
        *,
        run_id: str | None,
        sweep_id: str | None,
        params: dict[str, Any],
        attempt: int,
        resumed: bool,
        last_step: int | None,
        checkpoint_dir: str | None,
        sink: Sink | None = None,
    ) -> None:
        self.run_id = run_id
        self.sweep_id = sweep_id
        #: The run's parameters (the sweep's point, or what the script gave a run it started).
        self.params = params
        #: Counts up each time the same run starts again (1 on its first start).
        self.attempt = attempt
        #: True when this start continues a run that started before.
        self.resumed = resumed
        #: The last step the run logged before this start (None: new, or it never logged).
        self.resumed_from_step = last_step if resumed else None
        #: A directory for the run's checkpoints: the same on every attempt (shared storage: any machine).
        self.checkpoint_dir = checkpoint_dir
        #: Set when preemption is coming (the agent's word, or an operator's stop or requeue).
        self.preempting = False
        self.preempt_reason: str | None = None
        self.finished = False
        self.sink: Sink = sink or Printed()
        self._steps = rows.Steps(last_step)
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._warned = False
        #: Only rank 0 records metrics: every rank of a run calls log() alike (multi-node training).
        self.rank_var, self.rank = rank(os.environ)
        self._rank_said = False
        self._cut_said = False

    @property
    def id(self) -> str | None:
        """The run ID, under W&B's name for it."""
        return self.run_id

    @property
    def step(self) -> int:
        """The step the next ``log()`` without a step records at."""
        return self._steps.next

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record a row of metrics at ``step`` (by default the next one). Never blocks for long: rows
        are buffered and written in the background, and kept while Redis is away. A row whose step
        goes back before the last one logged is dropped, as W&B drops it; so is every row of a
        process whose rank is not 0 (``RANK``/``SLURM_PROCID``: a run that spans processes)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"log() takes a mapping of metric names to values, got {type(metrics).__name__}")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise TypeError(f"log(step=...) takes an int, got {step!r}")
        if self.finished:
            self._warn("log() after finish(): the row is dropped")
            return
        if self.rank != 0:
            if not self._rank_said:
                self._rank_said = True
                print(
                    f"sweepd: note: run {self.run_id}: this process is rank {self.rank} ({self.rank_var}): "
                    "log() records rank 0's metrics only, so this rank's are ignored (said once)",
                    file=sys.stderr,
                )
            return
        with self._lock:
            at = self._steps.assign(step)
        if at is None:
            self._warn(f"log(step={step}) goes back before step {self._steps.last}: the row is dropped")
            return
        row, cuts = bounds.clean_row(json.loads(json.dumps({**metrics, rows.STEP: at}, default=rows.plain)))
        if cuts and not self._cut_said:
            self._cut_said = True
            self._warn(f"log() was given more than a row may hold ({cuts[0]}): cut at sweepd's bounds (said once)")
        if row is not None:
            self.sink.rows([row], cut=len(cuts))

    def on_preempting(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on a background thread) when preemption is coming."""
        self._callbacks.append(callback)
        if self.preempting:
            callback()

    def mark_preempting(self) -> None:
        """Say this run is being preempted, as W&B's: a non-zero exit after this requeues it."""
        self.preempting = True
        self.sink.mark()

    def finish(self, exit_code: int = 0) -> None:
        """End the run's attempt now with ``exit_code``, as the exit-status table reads it (without
        an agent; under one the agent records the process's own exit status). Called at exit."""
        if self.finished:
            return
        self.finished = True
        self.sink.close(exit_code)

    def notice(self, reason: str) -> None:
        """Preemption is coming (called on a sink's thread): set the flag, call the callbacks."""
        if self.preempting and self.preempt_reason is not None:
            return
        self.preempting, self.preempt_reason = True, reason
        for callback in list(self._callbacks):
            callback()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish(exit_code(exc))

    def _warn(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            print(f"sweepd: warning: run {self.run_id}: {text} (said once)", file=sys.stderr)
