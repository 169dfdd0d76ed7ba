"""An operator's commands: requeue or stop one run, pause, resume, stop or cancel a sweep, reap.

Each is one atomic script and idempotent: running it twice changes nothing more. A held run is
never moved from under its agent: the agent stops or requeues it at its next heartbeat.
"""

from __future__ import annotations

from typing import Any

import click

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
COMMANDS = (requeue_cmd, stop_cmd, reap_cmd)
