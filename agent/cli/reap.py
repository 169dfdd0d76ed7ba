"""``sweepd reap [SWEEP_ID]``: requeue now every run whose lease expired (agents do it every heartbeat)."""

from __future__ import annotations

import click

from .kit import redis_option, store_for


@click.command("reap")
@click.argument("sweep_id", required=False)
@redis_option
def command(sweep_id: str | None, redis_url: str | None) -> None:
    """Requeue now every run whose lease expired (agents do this on their own every heartbeat).

    \b
    Example:
      sweepd reap            # every sweep
      sweepd reap abc123de
    """
    store = store_for(redis_url)
    for sid in [store.sweep(sweep_id).id] if sweep_id else store.sweep_ids():
        for rid in store.reap(sid):
            click.echo(f"requeued {rid} (sweep {sid}): its lease had expired")
