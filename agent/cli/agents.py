"""``sweepd agents [SWEEP_ID]``: who is working, and who went silent."""

from __future__ import annotations

import time
from typing import Any

import click

from sweepd.queue import bounds
from sweepd.queue.pool_view import pool_agent_rows, pool_names
from sweepd.queue.views import agent_rows

from .kit import redis_option, store_for


@click.command("agents")
@click.argument("sweep_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@redis_option
def command(sweep_id: str | None, as_json: bool, redis_url: str | None) -> None:
    """Every agent (host, PID, sweep or pool, run, last heartbeat, version; a GPU agent's slots, each with
    its devices and run), live ones first, then the ones that went silent (a silent agent's runs
    are requeued when their leases expire).

    \b
    Example:
      sweepd agents abc123de
    """
    store = store_for(redis_url)
    rows = agent_rows(store.reads, [store.sweep(sweep_id).id] if sweep_id else store.sweep_ids())
    if not sweep_id:  # and the pools' agents (sweepd agent --pool), each with its pool
        rows += pool_agent_rows(store.reads, pool_names(store.reads))
    rows.sort(key=lambda a: (not a["alive"], a["sweep_id"], a["id"]))
    if as_json:
        click.echo(bounds.dumps(rows, indent=2))
        return
    if not rows:
        where = f" on sweep {sweep_id}" if sweep_id else ""
        click.echo(f"no agents{where} (an agent that exits cleanly leaves no record)")
        return
    now = time.time()
    for a in rows:
        if a["alive"]:
            ago = now - int(a["heartbeat_at"]) / 1000
            click.echo(
                f"{a['id']}  live    host={a.get('host', '')} pid={a.get('pid', '')} {place(a)} "
                f"run={a.get('run_id') or '-'} heartbeat={ago:.1f}s ago version={a.get('version', '')}"
            )
            for slot in a.get("slots", []):  # a GPU agent: a line per slot, and the run it holds
                gpus = ",".join(slot.get("gpus", []))
                click.echo(f"    slot {slot.get('slot')} gpus={gpus} run={slot.get('run_id') or '-'}")
        else:
            click.echo(f"{a['id']}  silent  {place(a)} last heartbeat {a['last_heartbeat']}")


def place(a: dict[str, Any]) -> str:
    """What the agent works: its sweep, or its pool."""
    return f"pool={a['pool']}" if a.get("pool") else f"sweep={a['sweep_id']}"
