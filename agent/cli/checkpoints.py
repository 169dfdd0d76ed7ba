"""``sweepd checkpoints RUN_ID``: a run's committed checkpoint snapshots (an object-store root's;
a plain root keeps none in Redis), newest first, the latest marked."""

from __future__ import annotations

import json

import click

from .kit import redis_option, store_for


@click.command("checkpoints")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: snapshot, attempt, files, bytes, ...")
@redis_option
def command(run_id: str, as_json: bool, redis_url: str | None) -> None:
    """The committed checkpoint snapshots of RUN_ID: id, attempt, files, bytes, committed time, and
    which is the latest (the one its next attempt resumes from).

    \b
    Examples:
      sweepd checkpoints r4nd0m1d
      sweepd checkpoints r4nd0m1d --json
    """
    store = store_for(redis_url)
    store.run(run_id)  # an unknown run is one line, exit 2
    snapshots = store.checkpoints(run_id)
    if as_json:
        rows = [{**s.as_json(), "latest": i == 0} for i, s in enumerate(snapshots)]
        click.echo(json.dumps(rows, indent=2))
        return
    if not snapshots:
        click.echo(f"run {run_id} has no committed checkpoint")
        return
    click.echo(f"{'snapshot':<28} {'attempt':>7} {'files':>6} {'bytes':>14}  committed")
    for i, s in enumerate(snapshots):
        mark = ("  (latest)" if i == 0 else "") + (f"  (a reference: {s.run}'s objects hold it)" if s.run else "")
        click.echo(f"{s.snapshot:<28} {s.attempt:>7} {s.files:>6} {s.size:>14}  {s.as_json()['committed_at']}{mark}")
