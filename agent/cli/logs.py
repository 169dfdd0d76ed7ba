"""``sweepd logs RUN_ID``: the kept output of a run, every attempt in order."""

from __future__ import annotations

import click

from .kit import redis_option, store_for


@click.command("logs")
@click.argument("run_id")
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt.")
@redis_option
def command(run_id: str, attempt: int | None, redis_url: str | None) -> None:
    """The kept output (stdout and stderr) of RUN_ID, every attempt in order.

    \b
    Example:
      sweepd logs k3j9x0qa --attempt 2
    """
    for line in store_for(redis_url).logs(run_id, attempt):
        click.echo(line)
