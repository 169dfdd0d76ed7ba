"""``sweepd sweep ...``: create a sweep, and pause, resume, stop or cancel it; ``set`` its pool,
priority and weight (pools.py).

Each control is one atomic script (control.lua) and idempotent: running it twice changes nothing
more. A held run is never moved from under its agent: the agent acts at its next heartbeat.
"""

from __future__ import annotations

from typing import Any

import click

from sweepd.queue.config import load_config
from sweepd.queue.errors import UserError
from sweepd.queue.pools import check_pool, parse_priority, parse_weight

from .kit import redis_option, store_for


@click.group("sweep")
def group() -> None:
    """Create and manage sweeps.

    \b
    Example:
      sweepd sweep create sweep.yaml
      sweepd sweep pause abc123de
    """


def pool_options(f: Any) -> Any:
    """``--pool``, ``--priority``, ``--weight``: read as text, so a bad value is one line, exit 2."""
    f = click.option(
        "--weight", default=None, metavar="W", help="The sweep's share of its pool (a positive number; default 1)."
    )(f)
    f = click.option(
        "--priority", default=None, metavar="P", help="Higher is served first in its pool (an integer; default 0)."
    )(f)
    return click.option(
        "--pool", default=None, metavar="NAME", help="Put the sweep in pool NAME (sweepd agent --pool NAME)."
    )(f)


def _pool_values(
    pool: str | None, priority: str | None, weight: str | None
) -> tuple[str | None, int | None, float | None]:
    """The values checked, before anything is stored (UserError: one line, exit 2)."""
    return (
        None if pool is None else check_pool(pool),
        None if priority is None else parse_priority(priority),
        None if weight is None else parse_weight(weight),
    )


@group.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
@click.option("--seed", type=int, default=None, help="Seed of the random search (default: random).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the sweep ID.")
@pool_options
@redis_option
def create(
    file: str,
    name: str | None,
    seed: int | None,
    quiet: bool,
    pool: str | None,
    priority: str | None,
    weight: str | None,
    redis_url: str | None,
) -> None:
    """Validate FILE (W&B sweep YAML or JSON) and create a sweep from it.

    \b
    Example:
      SWEEP=$(sweepd sweep create sweep.yaml --quiet)
      sweepd agent $SWEEP
      sweepd sweep create sweep.yaml --pool lab --priority 10 --weight 2   # agents: sweepd agent --pool lab
    """
    config = load_config(file)  # before touching Redis: a bad config stores nothing
    place = _pool_values(pool, priority, weight)
    if pool is None and place != (None, None, None):
        raise UserError("--priority and --weight need --pool (or use `sweepd sweep set` on a pooled sweep)")
    store = store_for(redis_url)
    sid = store.create_sweep(config, name=name, seed=seed)
    if pool is not None:
        store.set_pool(sid, pool=place[0], priority=place[1] or 0, weight=place[2] or 1.0)
    if quiet:
        click.echo(sid)
        return
    for note in config.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"created sweep {sid} ({config.method}, {len(config.params)} parameters)")
    click.echo(
        f"start an agent with: sweepd agent {sid}" if pool is None else f"in pool {pool}: sweepd agent --pool {pool}"
    )


@group.command("set")
@click.argument("sweep_id")
@pool_options
@redis_option
def set_(sweep_id: str, pool: str | None, priority: str | None, weight: str | None, redis_url: str | None) -> None:
    """Put SWEEP_ID in a pool, or change its priority or weight, while it runs (no running run is
    stopped: the pool's next choices follow the new values).

    \b
    Example:
      sweepd sweep set abc123de --pool lab --priority 5
    """
    values = _pool_values(pool, priority, weight)
    if values == (None, None, None):
        raise UserError("nothing to set: give --pool, --priority or --weight")
    store = store_for(redis_url)
    now = store.set_pool(sweep_id, pool=values[0], priority=values[1], weight=values[2])
    priority_now, weight_now = store.pool_settings(sweep_id)
    where = f"pool {now}" if now else "no pool"
    click.echo(f"sweep {sweep_id}: {where}, priority {priority_now}, weight {weight_now:g}")


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
