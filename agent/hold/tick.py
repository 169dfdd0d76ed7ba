"""One turn of a holder's supervision, written once for every holder: an agent's attempt
(daemon/attempt.py) and a script that holds its own run (api/standalone.py) each call ``tick``
from their loop, and do with its ``Turn`` what only they know how to do.

A turn, in this order: the script's own preemption mark reaches Redis; the holder's machine going
away ends the run (or a repeated notice shortens its grace); the grace's end says kill; the lease
is renewed when due; the buffered rows are written every ``FLUSH_EVERY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sweepd.queue.store import Renewal

from .hold import FLUSH_EVERY, Hold


class Going(Protocol):
    """The holder's machine going away (daemon/preemption.py's ``Preemption``): whether, why, by when."""

    @property
    def requested(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...

    def kill_at(self) -> float: ...


@dataclass(frozen=True)
class Turn:
    """What the holder must do after a turn. ``kill``: the grace is over, kill what is left now
    (nothing else was done). ``renewed``: the renewal's answer when one was sent and answered.
    ``flushed``: the buffered rows were written (or tried), ``logged`` whether there were any."""

    kill: bool = False
    renewed: Renewal | None = None
    flushed: bool = False
    logged: bool = False


def tick(hold: Hold, now: float, *, marked: bool, going: Going | None = None) -> Turn:
    """One turn at ``now`` (monotonic). ``marked``: the script said it is being preempted;
    ``going``: the holder's own preemption (an agent's), None for a script holding its run."""
    if marked and not hold.marked:
        hold.script_marked()
    if going is not None and going.requested:
        if hold.ending is None:
            hold.end("preempt", going.reason or "signal", going.kill_at())
        elif hold.kill_at is not None:
            hold.kill_at = min(hold.kill_at, going.kill_at())  # a repeat cut the grace
    if hold.kill_at is not None and now >= hold.kill_at:
        return Turn(kill=True)
    renewed = hold.renew(now) if now >= hold.next_renew else None
    if now - hold.flushed_at < FLUSH_EVERY:
        return Turn(renewed=renewed)
    hold.flushed_at = now
    logged = len(hold.rows) > 0
    hold.flush_quietly()
    return Turn(renewed=renewed, flushed=True, logged=logged)
