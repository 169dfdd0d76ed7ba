"""``sweepd stop RUN_ID``: an operator stops one run (``sweepd sweep stop`` stops a whole sweep)."""

from __future__ import annotations

from .kit import run_command

command = run_command(
    "stop",
    """Stop RUN_ID: a queued run now, a running one at its agent's next heartbeat; it ends `stopped`.

    \b
    Example:
      sweepd stop k3j9x0qa
    """,
)
