"""``sweepd stop RUN_ID``: an operator stops one run (``sweepd sweep stop`` stops a whole sweep)."""

from __future__ import annotations

import click

from .kit import redis_option, store_for
from .parts.operated import operate


@click.command("stop")
@click.argument("run_id")
@redis_option
def command(run_id: str, redis_url: str | None) -> None:
    """Stop RUN_ID: a queued run now, a running one at its agent's next heartbeat; it ends `stopped`.

    \b
    Example:
      sweepd stop k3j9x0qa
    """
    click.echo(operate(store_for(redis_url), run_id, "stop"))
