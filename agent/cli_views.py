"""Read-only commands: ``status``, ``logs``, ``suggest``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sweepd.queue import summary
from sweepd.queue.records import iso
from sweepd.queue.states import HELD
from sweepd.queue.store import Store

from . import watch
from .clikit import redis_option, store_for


def redis_now_ms(store: Store) -> int:
    """Redis's clock (``TIME``), the one run times are written on: ETAs and ages are measured on it."""
    seconds, micros = store.r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def status_json(store: Store, sid: str, now_ms: int | None = None) -> dict[str, Any]:
    """The sweep's status as JSON. Fields are a contract for scripts: add, never rename or drop.
    Completion is read first: once it holds, the runs read after it are the final ones."""
    complete = store.is_complete(sid)
    record, config = store.sweep(sid), store.config(sid)
    now_ms = redis_now_ms(store) if now_ms is None else now_ms
    runs = store.runs(sid)
    queued = store.queued_ids(sid)
    agents = store.agents(sid)
    by_id = {run.id: run for run in runs}
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
        # added for --watch
        "progress": summary.progress(config, runs, now_ms),
        "best_runs": summary.best_runs(config, runs, 5),
        "queue_next": [
            {"id": rid, "attempt": run.attempt, "requeues": run.requeues, "reason": run.reason}
            for rid in queued[:3]
            if (run := by_id.get(rid)) is not None
        ],
        "held_runs": [
            {"id": run.id, "agent_id": run.agent_id, "state": run.state, "attempt": run.attempt}
            for run in runs
            if run.state in HELD
        ],
        "observed_at": iso(now_ms),
    }


def print_status(store: Store, sid: str) -> None:
    s = status_json(store, sid)
    click.echo(f"sweep {s['id']} ({s['name']}): {s['method']}, {s['state']}, {s['runs']} runs")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in s["counts"].items() if v))
    click.echo(f"  queue: {s['queue_depth']} (head: {s['queue_head'] or '-'}); agents alive: {s['agents_alive']}")
    for event in s["recent_events"][:5]:
        click.echo(f"  {iso(event['at'])}: run {event['run_id']} {event['event']} ({watch.event_detail(event)})")
    best = s["best_run"]
    if best:
        click.echo(f"  best run: {best['id']} {best['metric']}={best['value']} {json.dumps(best['params'])}")


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
def status_cmd(sweep_id: str, as_json: bool, live: bool, interval: float, redis_url: str | None) -> None:
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
            now_ms = redis_now_ms(store)
            return status_json(store, sweep_id, now_ms), now_ms

        watch.watch(fetch, interval, tty=sys.stdout.isatty())
    elif as_json:
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
