"""``sweepd agents`` (who is working, who went silent) and ``sweepd check`` (a health probe)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from sweepd.queue import keys
from sweepd.queue.records import iso
from sweepd.queue.store import Store

from .clikit import redis_option, store_for


def agent_rows(store: Store, sweep_ids: list[str]) -> list[dict[str, Any]]:
    """Every agent a sweep has seen: live ones (their record has not expired) and silent ones."""
    rows: list[dict[str, Any]] = []
    live_ids = set()
    for sid in sweep_ids:
        for agent in store.agents(sid):
            live_ids.add(agent["id"])
            beat = int(agent.get("heartbeat_at", "0") or 0)
            rows.append({**agent, "sweep_id": sid, "alive": True, "last_heartbeat": iso(beat)})
        seen: Any = store.r.zrange(keys.sweep_agents(sid), 0, -1, withscores=True)
        for raw_id, score in seen:
            aid = raw_id.decode()
            if aid not in live_ids:
                rows.append({"id": aid, "sweep_id": sid, "alive": False, "last_heartbeat": iso(int(score))})
    return rows


@click.command("agents")
@click.argument("sweep_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@redis_option
def agents_cmd(sweep_id: str | None, as_json: bool, redis_url: str | None) -> None:
    """Every agent (host, PID, sweep, run, last heartbeat, version), live ones first, then the
    ones that went silent (a silent agent's runs are requeued when their leases expire).

    \b
    Example:
      sweepd agents abc123de
    """
    store = store_for(redis_url)
    rows = agent_rows(store, [store.sweep(sweep_id).id] if sweep_id else store.sweep_ids())
    rows.sort(key=lambda a: (not a["alive"], a["sweep_id"], a["id"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
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
                f"{a['id']}  live    host={a.get('host', '')} pid={a.get('pid', '')} sweep={a['sweep_id']} "
                f"run={a.get('run_id') or '-'} heartbeat={ago:.1f}s ago version={a.get('version', '')}"
            )
        else:
            click.echo(f"{a['id']}  silent  sweep={a['sweep_id']} last heartbeat {a['last_heartbeat']}")


@click.command("check")
@click.argument("sweep_id", required=False)
@redis_option
def check_cmd(sweep_id: str | None, redis_url: str | None) -> None:
    """Exit 0 when Redis answers (and SWEEP_ID exists): for Kubernetes probes and systemd's
    ExecStartPre. Redis unreachable: exit 3; no such sweep: exit 2.

    \b
    Example:
      sweepd check abc123de && echo ok
    """
    store = store_for(redis_url)
    if sweep_id:
        store.sweep(sweep_id)
    click.echo("ok")


COMMANDS = (agents_cmd, check_cmd)
