"""``sweepd runs``: the run table of a sweep."""

from __future__ import annotations

import json

import click

from sweepd.queue.states import STATES

from .clikit import redis_option, store_for


@click.command("runs")
@click.argument("sweep_id")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only runs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@redis_option
def runs_cmd(sweep_id: str, state: str | None, as_json: bool, redis_url: str | None) -> None:
    """The runs of SWEEP_ID with their state, attempt, params and metric summary.

    \b
    Example:
      sweepd runs abc123de --state failed --json
    """
    store = store_for(redis_url)
    runs = [r for r in store.runs(sweep_id) if state is None or r.state == state]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in runs], indent=2))
        return
    for r in runs:
        code = "" if r.exit_code is None else f" exit={r.exit_code}"
        click.echo(f"{r.id}  {r.state:<10} attempt={r.attempt}{code}  {json.dumps(r.params)}  {json.dumps(r.summary)}")


COMMANDS = (runs_cmd,)
