"""The live channel: one poller per sweep in the server, whatever the number of open pages.

Each channel (a sweep's, or the sweep list's) polls a cheap change marker (Reads.change_marker: a
few commands, whatever the sweep's size) every ``interval`` seconds and re-reads the sweep only when
the marker moved (at most once every ``gap`` seconds), or every ``refresh`` seconds (agents expire
without a write). The snapshot it keeps is what every page's JSON request is served from, and every
page's server-sent-events stream only hears that the snapshot changed: Redis sees one poller per
sweep, not one per page. A channel nobody listens to for ``idle`` seconds stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sweepd.queue import bounds
from sweepd.queue.errors import UserError

#: Seconds between looks at the change marker (8 commands, plus 4 per held run): a run's change
#: reaches the page within about this, the sweep's re-read and the page's fetch of the snapshot.
INTERVAL = 0.5
#: Seconds at least between two re-reads of the sweep (each reads every run): a sweep that changes
#: all the time is re-read once a second, not at every look.
GAP = 1.0
#: Seconds between full re-reads even when the marker did not move (an agent's record expiring).
REFRESH = 15.0
#: Seconds a channel goes on with no stream open and no snapshot asked for, before it stops.
IDLE = 30.0
#: Seconds between the comments that keep an idle stream (and the proxies on its way) open.
KEEPALIVE = 15.0


@dataclass
class Source:
    """What a channel reads: ``marker()`` (cheap, run every interval) and ``load()`` (the snapshot)."""

    marker: Callable[[], str]
    load: Callable[[], dict[str, Any]]


@dataclass
class Channel:
    """One polled snapshot and the pages waiting on it."""

    source: Source
    version: int = 0
    payload: bytes = b""
    snapshot: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    listeners: int = 0
    last_use: float = field(default_factory=time.monotonic)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None


class Hub:
    """Every channel of one server, by key (``sweep:<sid>``, ``sweeps``)."""

    def __init__(
        self, interval: float = INTERVAL, refresh: float = REFRESH, idle: float = IDLE, gap: float = GAP
    ) -> None:
        self.interval, self.refresh, self.idle, self.gap = interval, refresh, idle, gap
        self.channels: dict[str, Channel] = {}

    def _channel(self, key: str, source: Callable[[], Source]) -> Channel:
        channel = self.channels.get(key)
        if channel is None or channel.task is None or channel.task.done():
            channel = Channel(source())
            self.channels[key] = channel
            channel.task = asyncio.get_running_loop().create_task(self._poll(key, channel))
        channel.last_use = time.monotonic()
        return channel

    async def snapshot(self, key: str, source: Callable[[], Source]) -> tuple[int, bytes]:
        """The channel's current snapshot as JSON (its version and bytes), waiting for the first load.
        Raises what the load raised (no such sweep, Redis down) when there is no snapshot at all."""
        channel = self._channel(key, source)
        async with channel.changed:
            await channel.changed.wait_for(lambda: channel.version > 0 or channel.error is not None)
        if channel.version == 0:
            # The first load failed: read again here so the caller gets the error itself.
            loaded = await asyncio.to_thread(channel.source.load)
            return 0, bounds.dumps(loaded).encode()
        return channel.version, channel.payload

    async def stream(self, key: str, source: Callable[[], Source]) -> AsyncIterator[bytes]:
        """Server-sent events for one page: ``change`` with the new version each time the snapshot
        changes (the first at once), ``problem`` when reading fails, comments to keep the stream open."""
        channel = self._channel(key, source)
        channel.listeners += 1
        seen: int = 0
        said: str | None = None

        def news() -> bool:
            return channel.version != seen or channel.error != said

        try:
            while True:
                async with channel.changed:
                    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                        await asyncio.wait_for(channel.changed.wait_for(news), KEEPALIVE)
                channel.last_use = time.monotonic()
                if channel.error != said:
                    said = channel.error
                    yield _event("problem", {"error": said})
                if channel.version != seen:
                    seen = channel.version
                    yield _event("change", {"version": seen})
                else:
                    yield b": keepalive\n\n"
        finally:
            channel.listeners -= 1
            channel.last_use = time.monotonic()

    async def _poll(self, key: str, channel: Channel) -> None:
        marker: str | None = None
        loaded_at = -self.refresh
        while channel.listeners or time.monotonic() - channel.last_use < self.idle:
            began = time.monotonic()
            try:
                now = await asyncio.to_thread(channel.source.marker)
                due = now != marker or began - loaded_at >= self.refresh
                if due and began - loaded_at >= self.gap:
                    snapshot, payload = await asyncio.to_thread(_load, channel.source)
                    marker, loaded_at = now, began
                    async with channel.changed:
                        if payload != channel.payload:
                            channel.version += 1
                            channel.snapshot, channel.payload = snapshot, payload
                        channel.error = None
                        channel.changed.notify_all()
            except Exception as exc:  # Redis down, the sweep gone: said to the pages, tried again
                async with channel.changed:
                    channel.error = f"{type(exc).__name__}: {exc}"
                    channel.changed.notify_all()
                marker = None
                if isinstance(exc, UserError) and channel.version == 0:
                    break  # no such sweep (or a bad id): nothing to poll for
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - began)))
        if self.channels.get(key) is channel:
            del self.channels[key]

    async def close(self) -> None:
        for channel in list(self.channels.values()):
            if channel.task is not None:
                channel.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await channel.task
        self.channels.clear()


def _load(source: Source) -> tuple[dict[str, Any], bytes]:
    """The snapshot and its JSON, made on a worker thread (10,000 runs take tens of milliseconds)."""
    snapshot = source.load()
    return snapshot, bounds.dumps(snapshot).encode()


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
