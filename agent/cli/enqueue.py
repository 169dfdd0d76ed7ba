"""``sweepd enqueue SWEEP_ID``: put a specific run on a sweep's queue, under the resume table.

One atomic script (enqueue.lua) and idempotent for a known run: a held run is never moved from under
its agent.
"""

from __future__ import annotations

import click

from sweepd.queue import overrides
from sweepd.queue.errors import UserError
from sweepd.queue.ids import new_id
from sweepd.queue.resume import DEFAULT, TABLE, parse_mode

from .kit import redis_option, store_for


@click.command("enqueue")
@click.argument("sweep_id")
@click.option("--param", "assignments", multiple=True, metavar="NAME=VALUE", help="A parameter's value; repeatable.")
@click.option("--id", "run_id", default=None, help="The run's ID (default: a new one).")
@click.option("--resume", default=None, metavar="must|allow|never", help="The resume table's mode (default: never).")
@click.option("--front", is_flag=True, help="At the front of the queue (default: the back).")
@redis_option
def command(
    sweep_id: str,
    assignments: tuple[str, ...],
    run_id: str | None,
    resume: str | None,
    front: bool,
    redis_url: str | None,
) -> None:
    """Put a specific run on SWEEP_ID's queue, under the resume table.

    \b
    With --id: must (the run must exist: it is resumed), allow (resumed if it exists, else
    created), never (created; refused if it exists). Without --param a known run keeps its
    parameters; a new run needs every parameter that is not a constant. A value outside the
    search space is allowed, with a warning.

    \b
    Example (re-run a failed grid point, continuing its history):
      sweepd enqueue abc123de --id k3j9x0qa --resume must --front
      sweepd enqueue abc123de --param lr=0.02 --param width=64
    """
    given = overrides.parse(assignments)  # before Redis: a mistake stores nothing
    mode = parse_mode(resume, where="--resume", allowed=("must", "allow", "never"))
    if mode is not None and run_id is None:
        raise UserError("--resume needs --id (a new ID never exists)")
    mode = mode or DEFAULT
    spelled = f"--resume {mode}" if resume is not None else f"--resume {mode} (the default)"
    store = store_for(redis_url)
    sweep, config = store.sweep(sweep_id), store.config(sweep_id)
    rid = run_id if run_id is not None else new_id()
    owner = store.sweep_of(rid)
    if owner is not None and owner != sweep_id:
        raise UserError(f"run {rid!r} belongs to sweep {owner!r}, not {sweep_id!r}")
    rule = TABLE[mode]
    refused = rule.if_exists == "refuse" if owner is not None else rule.if_missing == "refuse"
    base = store.run(rid).params if owner is not None else None
    if refused or (owner is not None and not given):
        params = None  # refused: the script says so, with the table's message; else a known run keeps its own
    else:
        params, warnings = overrides.resolve(config, given, base, sweep_id)
        for warning in warnings:
            click.echo(f"sweepd: warning: {warning}", err=True)
    done = store.enqueue(sweep_id, rid, rule, params, front=front, spelled=spelled)
    where = "front" if front else "back"
    if done.result == "created":
        click.echo(f"run {rid} enqueued at the {where} of sweep {sweep_id}'s queue (a new run)")
    else:
        step = "" if done.last_step is None else f", continuing from step {done.last_step}"
        verb = "moved to" if done.result == "moved" else "enqueued at"
        click.echo(f"run {rid} {verb} the {where} of sweep {sweep_id}'s queue (attempt {done.attempts + 1}{step})")
    if sweep.state != "running":
        click.echo(f"note: sweep {sweep_id} is {sweep.state}: agents take no run from it until it is resumed", err=True)
