"""An agent's presence in Redis: its record, its heartbeat, and how an idle agent waits for work.

What an idle agent costs Redis is what it does here, so it is kept to the least that keeps the
contract: a heartbeat that only says the agent is alive (``idle_beat``: four commands, one round
trip; one says the store is up, ``up_ttl_ms``) and one BLPOP on the sweep's wake list, long enough
to reach the next thing that is due. The record's fields (host, pid, run...) are written only when
they change (``agent_beat``).
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from . import keys
from .core import Core
from .reads import Reads

#: What a wait on the wake list ended with: a token (look at the queue and the search), the
#: caller's own file descriptor readable (a signal, a notice: the caller acts), or its timeout.
Woken = Literal["token", "interrupted", "timeout"]


@dataclass(frozen=True)
class Beat:
    """What an idle heartbeat learnt: ``earliest`` the first lease deadline of the sweep (ms on the
    Redis clock; None: nothing held), ``now_ms`` Redis's clock when asked for (else None), and
    ``recorded`` False when the agent's record had expired (an outage longer than its TTL): the
    caller writes it again."""

    earliest: int | None
    now_ms: int | None
    recorded: bool


def up_ttl_ms(lease_s: float) -> int:
    """How long one heartbeat or renewal says the store is up (``sweepd:sweep:<sid>:up``): half a
    lease, 1.5 heartbeats. A silence longer than that is an outage (reap.lua, design.md)."""
    return max(1, int(lease_s * 1000) // 2)


class Presence:
    """Agents' records and heartbeats, and the idle wait (a part of ``Store``)."""

    def __init__(self, core: Core, reads: Reads) -> None:
        self.r, self.reads = core.r, reads

    def agent_beat(self, sid: str, aid: str, info: dict[str, Any], ttl_s: float) -> None:
        """Write the agent's record (its hash expires when the agent goes silent) and its heartbeat."""
        self.record(keys.sweep_agents(sid), aid, info, ttl_s, up=keys.sweep_up(sid))

    def record(self, agents: str, aid: str, info: dict[str, Any], ttl_s: float, up: str = "") -> None:
        """The agent's record and its score in ``agents`` (a sweep's or a pool's), in one MULTI; ``up``:
        the sweep's word that the store is up, pushed on (a pool has none)."""
        now_ms = int(time.time() * 1000)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.agent(aid), mapping={**{k: str(v) for k, v in info.items()}, "heartbeat_at": now_ms})
            pipe.expire(keys.agent(aid), max(1, int(ttl_s + 0.999)))
            pipe.zadd(agents, {aid: now_ms})
            if up:
                pipe.pexpire(up, up_ttl_ms(ttl_s))  # the store is up (reap.lua)
            pipe.execute()

    def idle_beat(self, sid: str, aid: str, ttl_s: float, *, clock: bool = False, record: bool = True) -> Beat:
        """Say the agent is alive without rewriting its record (its last heartbeat is the sweep's
        ``:agents`` score, its record's TTL is pushed on), and read the sweep's earliest lease
        deadline, so the caller can sleep until the next lease could lapse. ``clock``: Redis's
        ``TIME`` too, which the caller needs now and then to read deadlines. ``record=False`` leaves
        the record's TTL (a lease) alone: an idle agent pushes it on every other heartbeat, so it
        still outlives the next push by a heartbeat, and a dead agent's record goes no later than
        it did (``recorded`` is then True: not looked at)."""
        now_ms = int(time.time() * 1000)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.sweep_agents(sid), {aid: now_ms})
            pipe.zrange(keys.sweep_held(sid), 0, 0, withscores=True)
            pipe.pexpire(keys.sweep_up(sid), up_ttl_ms(ttl_s))  # the store is up (reap.lua)
            if record:
                pipe.pexpire(keys.agent(aid), max(1000, int(ttl_s * 1000)))
            if clock:
                pipe.time()
            got = pipe.execute()
        first, now = got[1], got[-1] if clock else None
        return Beat(
            earliest=int(first[0][1]) if first else None,
            now_ms=int(now[0]) * 1000 + int(now[1]) // 1000 if now else None,
            recorded=bool(got[3]) if record else True,
        )

    def agent_gone(self, sid: str, aid: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(keys.agent(aid))
            pipe.zrem(keys.sweep_agents(sid), aid)
            pipe.execute()

    def wait_for_work(self, sid: str, timeout_s: float, interrupt_fd: int | None = None) -> Woken:
        """Block on the sweep's wake list until a token comes (something may have changed: a run
        was queued, the sweep may be complete), ``interrupt_fd`` is readable, or ``timeout_s``.

        One BLPOP however long the wait: the client's socket timeout does not cut it short, since
        the reply is waited for here, beside ``interrupt_fd``; a BLPOP given up for the caller (or
        unanswered a while after its timeout: Redis is not answering, ``redis.TimeoutError``) costs
        its connection, which the pool opens again."""
        return self.block(keys.sweep_wake(sid), timeout_s, interrupt_fd)

    def block(self, key: str, timeout_s: float, interrupt_fd: int | None) -> Woken:
        """``wait_for_work``'s BLPOP on one wake list (a sweep's or a pool's)."""
        if interrupt_fd is None and timeout_s < self.reads.call_timeout():
            return "token" if self.r.blpop([key], timeout=timeout_s) else "timeout"
        pool = self.r.connection_pool
        conn: Any = pool.get_connection()  # redis-py's connection methods are untyped
        answered = False
        try:
            conn.send_command("BLPOP", key, f"{max(0.001, timeout_s):.3f}")
            sock = conn._sock.fileno()
            poller = select.poll()  # not select(): a process with many files has descriptors past 1024
            for fd in (sock,) if interrupt_fd is None else (sock, interrupt_fd):
                poller.register(fd, select.POLLIN)
            ready = [fd for fd, _ in poller.poll(1000 * (timeout_s + max(1.0, self.reads.call_timeout())))]
            if sock in ready:
                got = conn.read_response()
                answered = True
                return "token" if got else "timeout"
            if ready:
                return "interrupted"
            raise redis.TimeoutError(f"Redis did not answer a BLPOP of {timeout_s:.1f} s")
        finally:
            if not answered:  # a BLPOP still pending: this connection's next reply would be its
                conn.disconnect()
            pool.release(conn)
