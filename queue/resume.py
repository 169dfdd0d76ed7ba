"""The resume table, pure: what starting a run with a given ID does, whether or not that ID exists.

It is W&B's table for ``wandb.init(id=..., resume=...)``, and sweepd applies it everywhere a run is
started by name: ``init()`` in a training script, ``SWEEPD_RUN_ID``/``SWEEPD_RESUME`` from outside,
and ``sweepd enqueue --id --resume``.

==========  ==========================================  ====================================
mode        the run ID exists                           the run ID does not exist
==========  ==========================================  ====================================
``must``    resumed (from its last step)                error (``RunMissing``)
``allow``   resumed (from its last step)                a new run with that ID
``never``   error (``RunExists``)                       a new run with that ID
``auto``    resumed (from its last step)                a new run with that ID
==========  ==========================================  ====================================

``auto`` differs from ``allow`` only in where the ID comes from when none is given: a file in the
working directory that remembers the run this directory last started (see ``agent/run.py``).

The Lua scripts that start runs (``resume.lua``, ``enqueue.lua``) take the table's row as two words,
``if_exists`` and ``if_missing`` (``Rule``), so the table lives here once and the check against
Redis stays one atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ResumeRefused, RunExists, RunMissing, UserError

Mode = Literal["must", "allow", "never", "auto"]
MODES: tuple[Mode, ...] = ("must", "allow", "never", "auto")

#: The mode when none is given: an ID that exists is refused, so nothing is resumed by accident.
DEFAULT: Mode = "never"


@dataclass(frozen=True)
class Rule:
    """One row of the table: what to do when the run exists, and when it does not."""

    if_exists: Literal["resume", "refuse"]
    if_missing: Literal["create", "refuse"]


TABLE: dict[Mode, Rule] = {
    "must": Rule("resume", "refuse"),
    "allow": Rule("resume", "create"),
    "never": Rule("refuse", "create"),
    "auto": Rule("resume", "create"),
}


def parse_mode(value: str | None, *, where: str = "resume", allowed: tuple[Mode, ...] = MODES) -> Mode | None:
    """``value`` as a mode (None stays None); a ``UserError`` naming ``where`` for anything else."""
    if value is None:
        return None
    text = value.strip().lower()
    for mode in allowed:
        if text == mode:
            return mode
    raise UserError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def decide(mode: Mode, exists: bool, run_id: str, *, spelled: str = "") -> Literal["resume", "create"]:
    """Apply the table: ``resume`` or ``create``, or raise why not (``RunMissing``, ``RunExists``).

    ``spelled`` is how the user wrote the mode (``resume='must'``, ``--resume must``), for the message.
    """
    rule = TABLE[mode]
    if exists and rule.if_exists == "resume":
        return "resume"
    if not exists and rule.if_missing == "create":
        return "create"
    raise refusal("exists" if exists else "missing", run_id, spelled or f"resume={mode!r}")


def refusal(why: Literal["exists", "missing"], run_id: str, spelled: str, detail: str = "") -> ResumeRefused:
    """The error for a start the table refuses, in one line that says what to do instead."""
    if why == "missing":
        return RunMissing(
            f"run {run_id!r} does not exist{detail}, and {spelled} resumes only an existing run "
            "(use allow to start it if it is missing)"
        )
    return RunExists(
        f"run {run_id!r} exists already{detail}, and {spelled} never resumes a run "
        "(use allow or must to resume it, or choose another ID)"
    )
