"""``sweepd requeue RUN_ID``: an operator puts a run back at the front of its sweep's queue."""

from __future__ import annotations

from .kit import run_command

command = run_command(
    "requeue",
    """Put RUN_ID back at the front of its sweep's queue (e.g. to re-run a failed grid point).

    \b
    Example:
      sweepd requeue k3j9x0qa
    """,
)
