"""``sweepd status --watch``: a sweep's status drawn with rich, refreshed in place on a terminal and
printed as plain snapshots (no escape codes) when stdout is a pipe or a file.

``render`` is a pure function of the status dict (``sweepd.queue.views.status_json``) and the time it was
read at, so the view is tested without Redis; ``watch`` is the refresh loop around a fetch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from sweepd.queue.connections import REDIS_DOWN

from .table import printable

#: How many of the sweep's newest requeue and resume events the view shows.
EVENTS_SHOWN = 8
BAR_WIDTH = 40

#: Reads the status and Redis's time (ms) at that read: what one frame is drawn from.
Fetch = Callable[[], tuple[dict[str, Any], int]]


def duration(seconds: float) -> str:
    """A short human duration (``45s``, ``3m 20s``, ``2h 05m``): an ETA needs no more precision."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def clock(ms: int) -> str:
    """A millisecond timestamp as a UTC time of day, as the view's header and event rows show it."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%H:%M:%S")


def event_detail(event: dict[str, Any]) -> str:
    """What one sweep event says beyond its run and attempt, whatever its kind: a requeue's reason
    (a preemption, a lost lease), how long a resumed run waited, else its other fields."""
    if event.get("event") == "resumed" and isinstance(event.get("after_ms"), (int, float)):
        return f"after {event['after_ms'] / 1000:.1f}s"
    if event.get("reason") is not None:
        return str(event["reason"])
    rest = {k: v for k, v in event.items() if k not in ("at", "event", "run_id", "attempt")}
    return " ".join(f"{k}={v}" for k, v in rest.items())


def bar(fraction: float, width: int = BAR_WIDTH) -> Text:
    """A bar that reads the same with or without colour (rich's own is one glyph in two colours)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "grey50"))


def _header(status: dict[str, Any], now_ms: int) -> Text:
    state = status["state"]
    style = {"running": "green", "finished": "bold green", "paused": "yellow"}.get(state, "red")
    text = Text.assemble(
        ("sweep ", "bold"),
        (str(status["id"]), "bold cyan"),
        f" ({status['name'] or '-'}): {status['method']}, ",
        (state, style),
        f", {status['runs']} runs",
    )
    metric = status.get("metric")
    if metric:
        text.append(f", metric {metric['name']} ({metric['goal']})")
    text.append(f"  at {clock(now_ms)} UTC", "dim")
    return text


def _progress(status: dict[str, Any]) -> RenderableType:
    p = status["progress"]
    if p["total"] is None:
        note = f"{p['done']} runs done (no run_cap: the search has no end to show)"
        return Text(note) if status["complete"] else Spinner("dots", text=note)
    line = bar(p["fraction"] or 0.0)
    line.append(f"  {p['done']}/{p['total']} runs done ({(p['fraction'] or 0.0):.0%})")
    if status["complete"]:
        line.append("  complete", "bold green")
    elif p["eta_seconds"] is not None:
        line.append(f"  ETA {duration(p['eta_seconds'])}")
    else:
        line.append("  ETA unknown until a run ends", "dim")
    return line


def _counts(status: dict[str, Any]) -> Text:
    shown = [(k, v) for k, v in status["counts"].items() if v]
    if not shown:
        return Text("no runs yet", "dim")
    return Text("  ".join(f"{k} {v}" for k, v in shown))


def _queue(status: dict[str, Any]) -> Text:
    text = Text(f"queue: {status['queue_depth']}")
    head = status["queue_head"]
    if head is None:
        return text.append(", empty", "dim")
    text.append(", head: ").append(head, "cyan")
    first = next((q for q in status.get("queue_next", []) if q["id"] == head), None)
    if first is not None and first["attempt"]:
        text.append(f" (back after attempt {first['attempt']}: {first['reason'] or 'requeued'})")
    elif first is not None:
        text.append(" (new)", "dim")
    return text


def _table(title: str, columns: list[str], **column: Any) -> Table:
    """A table whose title and headers are plain text: rich reads markup (``[bold]``) in a string."""
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        table.add_column(Text(name), **column)
    return table


def _row(table: Table, *cells: str | Text) -> None:
    """A row of plain text (no markup read in a value: a host, a reason, params are anyone's)."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def printable_status(value: Any) -> Any:
    """``value`` with every string in it, keys too, through ``table.printable``: a sweep's name, a
    metric's, a reason, a parameter come from users, and ESC, BEL or a bidi override in one must
    not reach the terminal raw."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_status(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_status(v) for v in value]
    return value


def _agents(status: dict[str, Any], now_ms: int) -> RenderableType:
    """Live agents with the run each holds (from the runs' holders: an agent's heartbeat hash names
    its run only as of its last beat), then holders gone silent, whose leases will expire."""
    agents = status["agents"]
    held = {h["agent_id"]: h for h in status.get("held_runs", []) if h.get("agent_id")}
    silent = [h for aid, h in held.items() if aid not in {a["id"] for a in agents}]
    if not agents and not silent:
        return Text("Agents: none alive", "dim")
    table = _table(f"Agents ({len(agents)} alive)", ["agent", "host", "pid", "run", "attempt", "heartbeat"])
    for a in agents:
        beat = int(a.get("heartbeat_at") or 0)
        ago = f"{max(0.0, (now_ms - beat) / 1000):.1f}s ago" if beat else "-"
        if a.get("slots"):
            _slot_rows(table, a, status, ago)
            continue
        h = held.get(a["id"])
        run = h["id"] if h else a.get("run_id") or a.get("run") or ""
        attempt = str(h["attempt"]) if h else ""
        _row(table, a["id"], str(a.get("host", "")), str(a.get("pid", "")), run or Text("idle", "dim"), attempt, ago)
    for h in silent:
        _row(table, h["agent_id"], "-", "-", h["id"], str(h["attempt"]), Text("none recent", "yellow"))
    return table


def _slot_rows(table: Table, agent: dict[str, Any], status: dict[str, Any], ago: str) -> None:
    """A GPU agent (``--gpus``): a row per slot, its devices and the run it holds."""
    attempts = {h["id"]: str(h["attempt"]) for h in status.get("held_runs", [])}
    for slot in agent["slots"]:
        name = f"{agent['id']} slot {slot.get('slot')} [{','.join(slot.get('gpus', []))}]"
        rid = slot.get("run_id") or ""
        run: str | Text = rid or Text("idle", "dim")
        _row(table, name, str(agent.get("host", "")), str(agent.get("pid", "")), run, attempts.get(rid, ""), ago)


def _events(status: dict[str, Any], now_ms: int) -> RenderableType:
    events = status["recent_events"][:EVENTS_SHOWN]
    if not events:
        return Text("Preemptions and recoveries: none", "dim")
    table = _table("Preemptions and recoveries (newest first)", ["at", "ago", "run", "event", "attempt", "detail"])
    for e in events:
        at = int(e.get("at") or 0)
        kind = str(e.get("event", "?"))
        style = {"requeued": "yellow", "resumed": "green"}.get(kind, "")
        _row(
            table,
            clock(at) if at else "-",
            duration((now_ms - at) / 1000) if at else "-",
            str(e.get("run_id", "")),
            Text(kind, style),
            str(e.get("attempt", "")),
            event_detail(e),
        )
    return table


def _best(status: dict[str, Any]) -> RenderableType:
    metric, best = status.get("metric"), status.get("best_runs") or []
    if metric is None:
        return Text("Best runs: the sweep has no metric", "dim")
    if not best:
        return Text(f"Best runs: no run has reported {metric['name']} yet", "dim")
    table = _table(
        f"Best runs by {metric['name']} ({metric['goal']})", ["#", "run", metric["name"], "params"], overflow="fold"
    )
    for i, b in enumerate(best, 1):
        _row(table, str(i), b["id"], f"{b['value']:.6g}", json.dumps(b["params"], separators=(",", ":")))
    return table


def render(status: dict[str, Any], now_ms: int, note: str | None = None) -> RenderableType:
    """One frame of the view, from ``status_json``'s dict read at ``now_ms`` (Redis clock).
    ``note``: a line to show above the rest (Redis unreachable: the frame is the last one read).
    Every string of the status is made printable first (``printable_status``)."""
    status = printable_status(status)
    parts: list[RenderableType] = []
    if note:
        parts.append(Text(note, "bold red"))
    parts += [
        _header(status, now_ms),
        _progress(status),
        _counts(status),
        _queue(status),
        Text(""),
        _agents(status, now_ms),
        Text(""),
        _events(status, now_ms),
        Text(""),
        _best(status),
    ]
    return Group(*parts)


def frames(fetch: Fetch, interval: float) -> Iterator[tuple[RenderableType, bool]]:
    """Each interval, a frame and whether the sweep is complete. A lost connection keeps the last
    status on screen with a note, and the watch goes on (it is read-only: retrying costs nothing)."""
    status: dict[str, Any] | None = None
    now_ms = 0
    while True:
        note = None
        try:
            status, now_ms = fetch()
        except REDIS_DOWN as exc:
            if status is None:
                raise
            note = f"Redis unreachable, retrying: {exc}"
        assert status is not None
        yield render(status, now_ms, note), note is None and bool(status["complete"])
        time.sleep(interval)


def plain_console() -> Console:
    """A console for pipes and files: no escape codes, a width that does not depend on a terminal."""
    width = None if os.environ.get("COLUMNS") else 120
    return Console(force_terminal=False, no_color=True, highlight=False, width=width, soft_wrap=False)


def watch(fetch: Fetch, interval: float, *, tty: bool, console: Console | None = None) -> None:
    """Refresh until the sweep is complete (the last frame stays) or Ctrl-C; either ends cleanly.
    On a terminal the frame is redrawn in place; otherwise each refresh prints one block."""
    try:
        if tty:
            _live(fetch, interval, console or Console())
        else:
            _plain(fetch, interval, console or plain_console())
    except KeyboardInterrupt:
        pass  # a reader that leaves a pipe (`| head`) is rich's: quietly, exit 1


def _live(fetch: Fetch, interval: float, console: Console) -> None:
    with Live(console=console, auto_refresh=True, refresh_per_second=4, transient=False) as live:
        for frame, complete in frames(fetch, interval):
            live.update(frame, refresh=True)
            if complete:
                return


def _plain(fetch: Fetch, interval: float, console: Console) -> None:
    for i, (frame, complete) in enumerate(frames(fetch, interval)):
        if i:
            console.print()
        console.print(frame)
        console.file.flush()
        if complete:
            return
