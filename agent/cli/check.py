"""``sweepd check [SWEEP_ID]``: a health probe for Kubernetes and systemd."""

from __future__ import annotations

import click

from .kit import redis_option, store_for


@click.command("check")
@click.argument("sweep_id", required=False)
@redis_option
def command(sweep_id: str | None, redis_url: str | None) -> None:
    """Exit 0 when Redis answers (and SWEEP_ID exists): for Kubernetes probes and systemd's
    ExecStartPre. Redis unreachable: exit 3; no such sweep: exit 2.

    \b
    Example:
      sweepd check abc123de && echo ok
    """
    store = store_for(redis_url)
    if sweep_id:
        store.sweep(sweep_id)
    click.echo("ok")
