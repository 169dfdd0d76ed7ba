"""``sweepd suggest SWEEP_ID --dry-run``: the next runs the sweep's search would create, creating none."""

from __future__ import annotations

import json

import click

from sweepd.queue import bounds

from .kit import redis_option, store_for


@click.command("suggest")
@click.argument("sweep_id")
@click.option("-n", "count", type=click.IntRange(min=1, max=1000), default=5, show_default=True, help="How many.")
@click.option("--dry-run", is_flag=True, required=True, help="Print the suggestions; create no run (required).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@redis_option
def command(sweep_id: str, count: int, dry_run: bool, as_json: bool, redis_url: str | None) -> None:
    """Print the next N runs the sweep's search would create, without creating them.

    Each suggestion after the first counts the ones before it as pending, as agents racing for
    the next runs would. Useful for checking a config.

    \b
    Example:
      sweepd suggest abc123de --dry-run -n 5
    """
    store = store_for(redis_url)
    out = store.preview(sweep_id, count)
    if as_json:
        click.echo(bounds.dumps(out, indent=2))
        return
    for i, params in enumerate(out):
        click.echo(f"{i + 1}: {json.dumps(params)}")
    if len(out) < count:
        click.echo(f"(the search has no more points after these {len(out)})")
