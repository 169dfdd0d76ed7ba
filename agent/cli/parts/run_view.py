"""`sweepd run` at a terminal: the live view of `status --watch` (watch.render), redrawn in place
while the local agents work, with what `sweepd run` adds: what an interrupt did, and where the
agents' logs went. The agents' own lines never reach the screen (run_agents.py puts them in files).

``notes`` is pure (what the view says about an interrupt); ``RunView`` draws.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from sweepd.queue.store import Store
from sweepd.queue.views import status_json

from ...hold.backoff import REDIS_DOWN
from . import watch
from .run_agents import Supervisor

INTERVAL = 1.0  # seconds between reads of the status


def notes(sid: str, *, preempting: bool, killing: bool, ctrl_c: int, held: int | None, over: bool = False) -> list[str]:
    """What the view says about the user's interrupts, above the status (``over``: the agents are gone)."""
    if killing:
        return ["Ctrl-C again: killing the held runs; each goes back to the front of the queue now."]
    if not preempting:
        return []
    what = "Ctrl-C" if ctrl_c else "Stopping"
    runs = "the held runs" if held is None else f"{held} held run{'' if held == 1 else 's'}"
    said = [
        f"{what}: preempting {runs}: each checkpoints and goes back to the front of the queue "
        f"(`sweepd agent {sid}` resumes the sweep)."
    ]
    return said if over else [*said, "Ctrl-C again to kill them now."]


class RunView:
    """The live view on a terminal, for as long as the agents run; its last frame stays."""

    def __init__(self, store: Store, sid: str, log_dir: Path, console: Console | None = None) -> None:
        self.store, self.sid, self.log_dir = store, sid, log_dir
        self.live = Live(console=console or Console(), auto_refresh=True, refresh_per_second=4, transient=False)
        self._status: dict[str, Any] | None = None
        self._now_ms = 0
        self._error: str | None = None
        self._next_read = 0.0
        self._held: int | None = None
        self._dead = False  # the terminal went away: draw no more
        self._sup: Supervisor | None = None

    def __enter__(self) -> RunView:
        self.live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            if not self._dead:
                self._read()
                self._draw(self._sup, over=True)
            self.live.__exit__(kind, exc, tb)

    def held(self, count: int) -> None:
        """How many runs were held when the user interrupted (the note names them)."""
        self._held = count

    def tick(self, sup: Supervisor, moved: bool) -> None:
        """Called each turn of `sweepd run`'s wait: read the status when due, and redraw."""
        self._sup = sup
        if sup.hung_up:
            self._dead = True
        if self._dead:
            return
        if moved or time.monotonic() >= self._next_read:
            self._read()
            try:
                self._draw(sup)
            except OSError:  # the terminal is gone (a hang-up): the agents go on without a view
                self._dead = True

    def _read(self) -> None:
        self._next_read = time.monotonic() + INTERVAL
        try:
            now_ms = self.store.now_ms()
            self._status, self._now_ms, self._error = status_json(self.store.reads, self.sid, now_ms), now_ms, None
        except REDIS_DOWN as exc:
            self._error = f"Redis unreachable, retrying: {exc}"

    def _draw(self, sup: Supervisor | None, over: bool = False) -> None:
        parts: list[RenderableType] = []
        if sup is not None:
            said = notes(
                self.sid, preempting=sup.preempting, killing=sup.killing, ctrl_c=sup.ctrl_c, held=self._held, over=over
            )
            parts += [Text(line, "bold yellow") for line in said]
        if self._status is not None:
            parts.append(watch.render(self._status, self._now_ms, self._error))
        elif self._error:
            parts.append(Text(self._error, "bold red"))
        parts += [
            Text(""),
            Text(f"agents' logs: {self.log_dir}/agent-N.log; a run's output: sweepd logs RUN_ID", "dim"),
        ]
        self.live.update(Group(*parts), refresh=True)
