"""``sweepd reap [SWEEP_ID]``: requeue now every run whose lease expired (agents do it every heartbeat)."""

from __future__ import annotations

import time

import click

from .kit import redis_option, store_for


@click.command("reap")
@click.argument("sweep_id", required=False)
@redis_option
def command(sweep_id: str | None, redis_url: str | None) -> None:
    """Requeue now every run whose lease expired (agents do this on their own every heartbeat).

    A lease that lapsed while nobody of the sweep could reach Redis (an outage) is given its holder's
    heartbeat first, from Redis's return: reap waits that long for it.

    \b
    Example:
      sweepd reap            # every sweep
      sweepd reap abc123de
    """
    store = store_for(redis_url)
    for sid in [store.sweep(sweep_id).id] if sweep_id else store.sweep_ids():
        got = store.reap_due(sid)
        if got.spared and got.earliest is not None:
            wait = max(0.0, (got.earliest - got.now_ms) / 1000)
            click.echo(f"{got.spared} lease(s) of sweep {sid} lapsed while Redis was away: waiting {wait:.1f} s")
            time.sleep(wait + 0.01)
            got = store.reap_due(sid)
        for rid in got.requeued:
            click.echo(f"requeued {rid} (sweep {sid}): its lease had expired")
