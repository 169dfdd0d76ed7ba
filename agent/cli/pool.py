"""``sweepd pool status NAME [--json]`` and ``sweepd pool list``: a pool's sweeps, in the order the
pool serves them, and its demand (queue/pool_view.py), the figure an autoscaler scales agents on."""

from __future__ import annotations

import json

import click

from sweepd.queue.pool_view import pool_names, pool_status

from .kit import redis_option, store_for


@click.group("pool")
def group() -> None:
    """Pools: many sweeps served by one fleet (sweepd agent --pool NAME).

    \b
    Example:
      sweepd sweep create a.yaml --pool lab --priority 10
      sweepd pool status lab
    """


@group.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@redis_option
def status(name: str, as_json: bool, redis_url: str | None) -> None:
    """Per sweep of pool NAME: priority, weight, held and queued runs, demand; and the pool's demand.

    \b
    Example:
      sweepd pool status lab --json
    """
    got = pool_status(store_for(redis_url).reads, name)
    if as_json:
        click.echo(json.dumps(got, indent=2))
        return
    click.echo(
        f"pool {name}: demand {got['demand']} (held {got['held']}, queued {got['queued']}), agents {got['agents']}"
    )
    head = (
        f"{'sweep':<12} {'state':<10} {'priority':>8} {'weight':>7} {'held':>5} {'queued':>6} {'left':>6} {'demand':>6}"
    )
    click.echo(head)
    for row in got["sweeps"]:
        left = "-" if row["left"] is None else str(row["left"])
        click.echo(
            f"{row['sweep_id']:<12} {row['state']:<10} {row['priority']:>8} {row['weight']:>7g} "
            f"{row['held']:>5} {row['queued']:>6} {left:>6} {row['demand']:>6}"
        )


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the pools as JSON.")
@redis_option
def list_(as_json: bool, redis_url: str | None) -> None:
    """Every pool: its sweeps, held and queued runs, and demand.

    \b
    Example:
      sweepd pool list
    """
    store = store_for(redis_url)
    rows = []
    for name in pool_names(store.reads):
        got = pool_status(store.reads, name)
        rows.append(
            {k: got[k] for k in ("pool", "demand", "held", "queued", "agents")} | {"sweeps": len(got["sweeps"])}
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'pool':<20} {'sweeps':>6} {'held':>5} {'queued':>6} {'agents':>6} {'demand':>6}")
    for row in rows:
        click.echo(
            f"{row['pool']:<20} {row['sweeps']:>6} {row['held']:>5} {row['queued']:>6} "
            f"{row['agents']:>6} {row['demand']:>6}"
        )
