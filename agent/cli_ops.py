"""An operator's commands: enqueue, requeue or stop one run, pause, resume, stop or cancel a sweep, reap.

Each is one atomic script and idempotent: running it twice changes nothing more. A held run is
never moved from under its agent: the agent stops or requeues it at its next heartbeat.
"""

from __future__ import annotations

from typing import Any

import click

from sweepd.queue import overrides
from sweepd.queue.errors import UserError
from sweepd.queue.resume import DEFAULT, TABLE, parse_mode
from sweepd.queue.store import new_id

from .clikit import redis_option, store_for

_RUN_RESULTS = {
    "stopped": "run {rid} stopped (it was queued)",
    "requeued": "run {rid} requeued at the front of its sweep's queue",
    "requested": "run {rid} is running: its agent will {action} it at its next heartbeat",
    "unchanged": "run {rid} is already {state}: nothing to do",
}


def _operate(rid: str, action: str, redis_url: str | None) -> None:
    store = store_for(redis_url)
    result = store.operate(rid, action)  # type: ignore[arg-type]
    click.echo(_RUN_RESULTS[result].format(rid=rid, action=action, state=store.run(rid).state))


@click.command("requeue")
@click.argument("run_id")
@redis_option
def requeue_cmd(run_id: str, redis_url: str | None) -> None:
    """Put RUN_ID back at the front of its sweep's queue (e.g. to re-run a failed grid point).

    \b
    Example:
      sweepd requeue k3j9x0qa
    """
    _operate(run_id, "requeue", redis_url)


@click.command("stop")
@click.argument("run_id")
@redis_option
def stop_cmd(run_id: str, redis_url: str | None) -> None:
    """Stop RUN_ID: a queued run now, a running one at its agent's next heartbeat; it ends `stopped`.

    \b
    Example:
      sweepd stop k3j9x0qa
    """
    _operate(run_id, "stop", redis_url)


@click.command("enqueue")
@click.argument("sweep_id")
@click.option("--param", "assignments", multiple=True, metavar="NAME=VALUE", help="A parameter's value; repeatable.")
@click.option("--id", "run_id", default=None, help="The run's ID (default: a new one).")
@click.option("--resume", default=None, metavar="must|allow|never", help="The resume table's mode (default: never).")
@click.option("--front", is_flag=True, help="At the front of the queue (default: the back).")
@redis_option
def enqueue_cmd(
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


@click.command("reap")
@click.argument("sweep_id", required=False)
@redis_option
def reap_cmd(sweep_id: str | None, redis_url: str | None) -> None:
    """Requeue now every run whose lease expired (agents do this on their own every heartbeat).

    \b
    Example:
      sweepd reap            # every sweep
      sweepd reap abc123de
    """
    store = store_for(redis_url)
    for sid in [store.sweep(sweep_id).id] if sweep_id else store.sweep_ids():
        for rid in store.reap(sid):
            click.echo(f"requeued {rid} (sweep {sid}): its lease had expired")


def _control(state: str, verb: str) -> Any:
    @click.command(verb)
    @click.argument("sweep_id")
    @redis_option
    def command(sweep_id: str, redis_url: str | None) -> None:
        previous = store_for(redis_url).control(sweep_id, state)
        click.echo(f"sweep {sweep_id}: {previous} -> {state}")

    command.help = _CONTROL_HELP[verb] + f"\n\n\b\nExample:\n  sweepd sweep {verb} abc123de"
    return command


_CONTROL_HELP = {
    "pause": "Hand out no new runs until resumed; running runs go on, agents wait.",
    "resume": "Hand out runs again after pause or stop.",
    "stop": "Hand out no new runs; running runs finish, then agents exit.",
    "cancel": "Stop now: queued runs end `stopped`, running runs are stopped at their next heartbeat.",
}

SWEEP_COMMANDS = {
    verb: _control(state, verb)
    for verb, state in (("pause", "paused"), ("resume", "running"), ("stop", "stopped"), ("cancel", "cancelled"))
}
COMMANDS = (enqueue_cmd, requeue_cmd, stop_cmd, reap_cmd)
