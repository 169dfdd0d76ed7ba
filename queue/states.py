"""The run lifecycle as pure logic: the states, the moves between them, and the exit-status table.

A run is in exactly one place at a time (invariant 1 in docs/design.md): the sweep's queue
(``queued``), held by one agent (``running``, ``preempting``), parked at an ASHA rung (``paused``),
or a terminal state. The Lua scripts
in ``scripts/`` are the only writers of ``state``; this module says which moves are legal and what
an exit status means, so that both the scripts' callers and the tests read one table.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal

State = Literal["queued", "running", "preempting", "finished", "failed", "crashed", "stopped", "paused"]

QUEUED: State = "queued"
RUNNING: State = "running"
PREEMPTING: State = "preempting"
FINISHED: State = "finished"
FAILED: State = "failed"
CRASHED: State = "crashed"
STOPPED: State = "stopped"
#: Parked at an ASHA rung (search/asha.py): neither queued nor held nor ended; a promotion holds it again.
PAUSED: State = "paused"

STATES: tuple[State, ...] = (QUEUED, RUNNING, PREEMPTING, FINISHED, FAILED, CRASHED, STOPPED, PAUSED)
HELD: frozenset[State] = frozenset({RUNNING, PREEMPTING})
TERMINAL: frozenset[State] = frozenset({FINISHED, FAILED, CRASHED, STOPPED})

#: Legal moves. Leaving a terminal state needs an explicit operator action (requeue, enqueue).
MOVES: dict[State, frozenset[State]] = {
    QUEUED: frozenset({RUNNING, STOPPED}),
    RUNNING: frozenset({PREEMPTING, QUEUED, PAUSED, *TERMINAL}),
    PREEMPTING: frozenset({QUEUED, PAUSED, *TERMINAL}),
    PAUSED: frozenset({RUNNING}),  # promoted to the next rung (promote.lua), same run id
    FINISHED: frozenset({QUEUED}),
    FAILED: frozenset({QUEUED}),
    CRASHED: frozenset({QUEUED}),
    STOPPED: frozenset({QUEUED}),
}


def can_move(src: State, dst: State) -> bool:
    return dst in MOVES[src]


@dataclass(frozen=True)
class Outcome:
    """What one attempt's end means: the run's next state, and whether it goes back to the queue."""

    state: State
    requeue: bool
    reason: str


def outcome(returncode: int | None, *, preempting: bool, stopping: bool = False) -> Outcome:
    """Apply the exit-status table to one attempt.

    ``returncode`` is what ``subprocess`` reports (negative: killed by that signal), or None when
    there is no status at all (the agent or its machine died; the reaper applies that row).

    ======================  ======================  ===============================
    status                  not preempting          preempting
    ======================  ======================  ===============================
    0                       finished                finished (not requeued)
    non-zero                failed                  requeued at the front
    killed by a signal      crashed                 requeued at the front
    none                    requeued at the front   requeued at the front
    ======================  ======================  ===============================

    A run the operator or early termination stopped ends ``stopped`` whatever its status, unless
    it finished.
    """
    if returncode == 0:
        return Outcome(FINISHED, False, "exit-0")
    if returncode is None:
        return Outcome(QUEUED, True, "no-status")
    if stopping:
        return Outcome(STOPPED, False, "stopped")
    if preempting:
        return Outcome(QUEUED, True, "preempted")
    if returncode < 0:
        return Outcome(CRASHED, False, f"signal-{signal_name(-returncode)}")
    return Outcome(FAILED, False, f"exit-{returncode}")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
