"""Read-only commands: ``status``, ``logs``, ``suggest``."""

from __future__ import annotations

import json
from typing import Any

import click

from sweepd.queue import summary
from sweepd.queue.records import iso
from sweepd.queue.store import Store

from .clikit import redis_option, store_for


def status_json(store: Store, sid: str) -> dict[str, Any]:
    record, config = store.sweep(sid), store.config(sid)
    runs = store.runs(sid)
    queued = store.queued_ids(sid)
    agents = store.agents(sid)
    complete = store.is_complete(sid)
    return {
        "id": sid,
        "name": record.name,
        "method": config.method,
        "state": "finished" if complete and record.state == "running" else record.state,
        "complete": complete,
        "runs": len(runs),
        "run_cap": config.run_cap,
        "counts": summary.counts(runs),
        "queue_depth": len(queued),
        "queue_head": queued[0] if queued else None,
        "agents_alive": len(agents),
        "agents": agents,
        "metric": {"name": config.metric.name, "goal": config.metric.goal} if config.metric else None,
        "best_run": summary.best_json(config, runs),
        "recent_events": store.events(sid),
        "created_at": iso(record.created_at),
    }


def print_status(store: Store, sid: str) -> None:
    s = status_json(store, sid)
    click.echo(f"sweep {s['id']} ({s['name']}): {s['method']}, {s['state']}, {s['runs']} runs")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in s["counts"].items() if v))
    click.echo(f"  queue: {s['queue_depth']} (head: {s['queue_head'] or '-'}); agents alive: {s['agents_alive']}")
    for event in s["recent_events"][:5]:
        click.echo(f"  {iso(event['at'])}: run {event['run_id']} {event['event']} ({event['reason']})")
    best = s["best_run"]
    if best:
        click.echo(f"  best run: {best['id']} {best['metric']}={best['value']} {json.dumps(best['params'])}")


@click.command("status")
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
def status_cmd(sweep_id: str, as_json: bool, redis_url: str | None) -> None:
    """Counts by state, queue depth, agents alive and the best run of SWEEP_ID.

    \b
    Example:
      sweepd status abc123de --json
    """
    store = store_for(redis_url)
    if as_json:
        click.echo(json.dumps(status_json(store, sweep_id), indent=2))
    else:
        print_status(store, sweep_id)


@click.command("logs")
@click.argument("run_id")
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt.")
@redis_option
def logs_cmd(run_id: str, attempt: int | None, redis_url: str | None) -> None:
    """The kept output (stdout and stderr) of RUN_ID, every attempt in order.

    \b
    Example:
      sweepd logs k3j9x0qa --attempt 2
    """
    for line in store_for(redis_url).logs(run_id, attempt):
        click.echo(line)


@click.command("suggest")
@click.argument("sweep_id")
@click.option("-n", "count", type=click.IntRange(min=1, max=1000), default=5, show_default=True, help="How many.")
@click.option("--dry-run", is_flag=True, required=True, help="Print the suggestions; create no run (required).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@redis_option
def suggest_cmd(sweep_id: str, count: int, dry_run: bool, as_json: bool, redis_url: str | None) -> None:
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
        click.echo(json.dumps(out, indent=2))
        return
    for i, params in enumerate(out):
        click.echo(f"{i + 1}: {json.dumps(params)}")
    if len(out) < count:
        click.echo(f"(the search has no more points after these {len(out)})")


COMMANDS = (status_cmd, logs_cmd, suggest_cmd)
