"""``sweepd status SWEEP_ID``: counts by state, the queue, agents and the best run; ``--watch`` for a live view."""

from __future__ import annotations

import sys
from typing import Any

import click

from sweepd.queue import bounds
from sweepd.queue.reads import Reads
from sweepd.queue.records import iso
from sweepd.queue.views import status_json

from .kit import redis_option, store_for
from .parts import watch


def print_status(reads: Reads, sid: str) -> None:
    """The status as text; every string of it printable (``watch.printable_status``): names come from users."""
    s = watch.printable_status(status_json(reads, sid))
    click.echo(f"sweep {s['id']} ({s['name']}): {s['method']}, {s['state']}, {s['runs']} runs")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in s["counts"].items() if v))
    click.echo(f"  queue: {s['queue_depth']} (head: {s['queue_head'] or '-'}); agents alive: {s['agents_alive']}")
    for event in s["recent_events"][:5]:
        click.echo(f"  {iso(event['at'])}: run {event['run_id']} {event['event']} ({watch.event_detail(event)})")
    best = s["best_run"]
    if best:
        click.echo(f"  best run: {best['id']} {best['metric']}={best['value']} {bounds.dumps(best['params'])}")
    if s.get("lineage"):
        chain = " <- ".join(f"{r['id']} (member {r['member']}, gen {r['generation']})" for r in s["lineage"])
        click.echo(f"  lineage: {chain}")


@click.command("status")
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--watch",
    "live",
    is_flag=True,
    help="Refresh until the sweep is complete or Ctrl-C: in place on a terminal, else a plain block per refresh.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between refreshes with --watch.",
)
@redis_option
def command(sweep_id: str, as_json: bool, live: bool, interval: float, redis_url: str | None) -> None:
    """Counts by state, queue depth, agents alive and the best run of SWEEP_ID.

    With --watch: a live view (progress toward the run cap or the grid's size with an ETA, counts,
    the queue's head, live agents and their runs, recent preemptions and recoveries, the best runs)
    until the sweep is complete; plain text, one snapshot per refresh, when stdout is not a terminal.

    \b
    Example:
      sweepd status abc123de --json
      sweepd status abc123de --watch --interval 5
    """
    if as_json and live:
        raise click.UsageError("--json and --watch do not go together")
    store = store_for(redis_url)
    if live:
        store.sweep(sweep_id)  # no such sweep: one line and exit 2, before any frame

        def fetch() -> tuple[dict[str, Any], int]:
            now_ms = store.now_ms()
            return status_json(store.reads, sweep_id, now_ms), now_ms

        watch.watch(fetch, interval, tty=sys.stdout.isatty())
    elif as_json:
        click.echo(bounds.dumps(status_json(store.reads, sweep_id), indent=2))
    else:
        print_status(store.reads, sweep_id)
