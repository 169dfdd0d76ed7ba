"""``sweepd requeue RUN_ID``: an operator puts a run back at the front of its sweep's queue."""

from __future__ import annotations

import click

from .kit import redis_option, store_for
from .parts.operated import operate


@click.command("requeue")
@click.argument("run_id")
@redis_option
def command(run_id: str, redis_url: str | None) -> None:
    """Put RUN_ID back at the front of its sweep's queue (e.g. to re-run a failed grid point).

    \b
    Example:
      sweepd requeue k3j9x0qa
    """
    click.echo(operate(store_for(redis_url), run_id, "requeue"))
