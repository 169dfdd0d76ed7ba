"""``sweepd runs``: the run table of a sweep (text for people, ``--json`` and ``--csv`` for scripts)."""

from __future__ import annotations

import sys

import click

from sweepd.queue import bounds
from sweepd.queue.errors import UserError
from sweepd.queue.states import STATES

from .kit import redis_option, store_for
from .parts import table


@click.command("runs")
@click.argument("sweep_id")
@click.option(
    "--state",
    "states",
    type=click.Choice(STATES),
    multiple=True,
    help="Only runs in this state; repeat for several (--state failed --state crashed).",
)
@click.option(
    "--sort",
    "--sort-by",
    "sort",
    metavar="KEY",
    default=None,
    help="Order by KEY: 'metric' (the sweep's metric, best first for its goal), a parameter, a summary "
    "metric, id, state, attempt, exit_code, or 'created' (the default). Ascending; '-KEY' descending. "
    "Runs without a value come last.",
)
@click.option("--reverse", "-r", is_flag=True, help="Reverse the sort direction (runs without a value stay last).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="Only the first N runs after sorting.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: id, state, attempt, exit_code, parameters, metrics.")
@redis_option
def command(
    sweep_id: str,
    states: tuple[str, ...],
    sort: str | None,
    reverse: bool,
    limit: int | None,
    as_json: bool,
    as_csv: bool,
    redis_url: str | None,
) -> None:
    """The runs of SWEEP_ID with their state, attempt, exit code, parameters and metric summary.

    Filtering, sorting and --limit apply to the table, --json and --csv alike. Floats in the table
    are shortened to 5 significant digits and a missing value is '-'; --csv and --json are exact.

    \b
    Examples:
      sweepd runs abc123de --sort metric -n 5          # the five best runs
      sweepd runs abc123de --sort -lr --state finished # by lr, largest first
      sweepd runs abc123de --state failed --state crashed --json
      sweepd runs abc123de --csv > runs.csv
    """
    if as_json and as_csv:
        raise UserError("--json and --csv cannot be used together: pick one")
    store = store_for(redis_url)
    config = store.config(sweep_id)
    everything = store.runs(sweep_id)
    cols = table.columns(config, everything)  # the same columns whatever the filter: scripts rely on them
    runs = table.order(config, cols, table.select(everything, states), sort, reverse=reverse)[:limit]
    if as_json:
        latest = store.latest_checkpoints([r.id for r in runs])  # the snapshot each would resume from
        found = [{**r.to_json(), "checkpoint": (c.as_json() if (c := latest[r.id]) else None)} for r in runs]
        click.echo(bounds.dumps(found, indent=2))
        return
    rows = table.rows(cols, runs)
    if as_csv:
        table.write_csv(cols, rows, sys.stdout)
        return
    for line in table.text(cols, rows):
        click.echo(line)
