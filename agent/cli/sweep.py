"""``sweepd sweep ...``: create a sweep, and pause, resume, stop or cancel it.

Each control is one atomic script (control.lua) and idempotent: running it twice changes nothing
more. A held run is never moved from under its agent: the agent acts at its next heartbeat.
"""

from __future__ import annotations

from typing import Any

import click

from sweepd.queue.config import load_config

from .kit import redis_option, store_for


@click.group("sweep")
def group() -> None:
    """Create and manage sweeps.

    \b
    Example:
      sweepd sweep create sweep.yaml
      sweepd sweep pause abc123de
    """


@group.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
@click.option("--seed", type=int, default=None, help="Seed of the random search (default: random).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the sweep ID.")
@redis_option
def create(file: str, name: str | None, seed: int | None, quiet: bool, redis_url: str | None) -> None:
    """Validate FILE (W&B sweep YAML or JSON) and create a sweep from it.

    \b
    Example:
      SWEEP=$(sweepd sweep create sweep.yaml --quiet)
      sweepd agent $SWEEP
    """
    config = load_config(file)  # before touching Redis: a bad config stores nothing
    store = store_for(redis_url)
    sid = store.create_sweep(config, name=name, seed=seed)
    if quiet:
        click.echo(sid)
        return
    for note in config.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"created sweep {sid} ({config.method}, {len(config.params)} parameters)")
    click.echo(f"start an agent with: sweepd agent {sid}")


_CONTROLS = {  # verb: (the state it sets, its help)
    "pause": ("paused", "Hand out no new runs until resumed; running runs go on, agents wait."),
    "resume": ("running", "Hand out runs again after pause or stop."),
    "stop": ("stopped", "Hand out no new runs; running runs finish, then agents exit."),
    "cancel": ("cancelled", "Stop now: queued runs end `stopped`, running runs are stopped at their next heartbeat."),
}


def _control(verb: str, state: str, text: str) -> Any:
    @click.command(verb, help=f"{text}\n\n\b\nExample:\n  sweepd sweep {verb} abc123de")
    @click.argument("sweep_id")
    @redis_option
    def command(sweep_id: str, redis_url: str | None) -> None:
        previous = store_for(redis_url).control(sweep_id, state)
        click.echo(f"sweep {sweep_id}: {previous} -> {state}")

    return command


for _verb, (_state, _text) in _CONTROLS.items():
    group.add_command(_control(_verb, _state, _text))
