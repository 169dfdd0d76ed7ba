"""Pools: one fleet of agents serving many sweeps, in an order decided atomically in Redis.

A sweep put in a pool (``sweep create --pool``, ``sweep set``) carries a ``priority`` (an integer,
default 0) and a ``weight`` (a positive number, default 1) in its hash. A pool agent
(``sweepd agent --pool``) asks ``claim_pool.lua`` what to do next, in one step whatever the number
of agents: only sweeps of the highest priority that has work are served; among them a queued run
(a requeued one) is claimed before any new run is made; new runs go to the sweep holding the fewest
runs per unit of weight. A queued run is claimed in that step; a new run's point is the sweep's
search (Python), so the step names the sweep and the agent creates in it (``create.lua``'s CAS,
``Store.create_next``). The prelude's ``wake``/``wake_all`` push to the pool's wake list too, so
every event that gives a sweep work wakes the pool's idle agents (no polling).

``Store`` (store.py) holds this part; core.py registers its scripts with the others.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from . import keys, search
from .core import Core
from .errors import UserError
from .presence import Presence, Woken
from .reads import Reads
from .records import Claim
from .runs import step_of
from .space import SweepConfig

#: The scripts of this module (core.py registers them with the others).
SCRIPTS = ("claim_pool", "pool_set", "pool_leases")


def check_pool(name: str) -> str:
    """A pool name follows the id rules (it is part of key names)."""
    return keys.check_id(name, "pool name")


def parse_priority(text: str) -> int:
    """``--priority``: an integer (higher is served first)."""
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"--priority {text!r}: not an integer") from None


def parse_weight(text: str) -> float:
    """``--weight``: a positive finite number (a sweep's share of its pool's runs)."""
    try:
        weight = float(text.strip())
    except ValueError:
        raise UserError(f"--weight {text!r}: not a number") from None
    if not math.isfinite(weight) or weight <= 0:
        raise UserError(f"--weight {text!r}: must be a positive number")
    return weight


def bounds(config: SweepConfig) -> tuple[str, int]:
    """What claim_pool.lua needs of the search to tell whether it can still create a run: the grid's
    size ('' for random and bayes: no end) and run_cap (0: none)."""
    points = str(search.grid.size(config)) if config.method == "grid" else ""
    return points, config.run_cap or 0


@dataclass(frozen=True)
class PoolBeat:
    """What a pool agent's heartbeat learnt: whether its record was still there, whether a pool
    agent has been silent (its runs may lapse: read the leases), Redis's clock when asked for
    (else None)."""

    recorded: bool
    silent: bool
    now_ms: int | None


@dataclass(frozen=True)
class Quiet:
    """No sweep of the pool has work (claim_pool.lua): ``gen``, the pool's ``:gen`` then. Passed
    back as ``since``, the next look reads nothing until the pool has changed."""

    gen: str


@dataclass(frozen=True)
class PoolLeases:
    """The pool's leases (pool_leases.lua): Redis's clock, the earliest deadline not yet passed
    (None: none), how many pool agents are silent, and the sweeps with a lapsed lease."""

    now_ms: int
    earliest: int | None
    silent: int
    lapsed: list[str]


class Pools:
    """The pool's writes and an agent's calls (a part of ``Store``): its own scripts, a sweep's
    config from the reads, and the record and wait an agent of a sweep has (presence.py)."""

    def __init__(self, core: Core, reads: Reads, presence: Presence) -> None:
        self.core, self.r, self.reads, self.presence = core, core.r, reads, presence

    def set_pool(
        self, sid: str, *, pool: str | None = None, priority: int | None = None, weight: float | None = None
    ) -> str:
        """Put the sweep in ``pool`` and/or set its priority and weight (pool_set.lua); wakes the
        pool's idle agents. Returns the sweep's pool ('' when it is in none)."""
        keys.check_id(sid, "sweep id")
        points, run_cap = bounds(self.reads.config(sid))  # NotFound for a sweep that does not exist
        got = self.core.run(
            "pool_set",
            [keys.sweep(sid), keys.POOLS],
            [
                sid,
                keys.PREFIX,
                check_pool(pool) if pool is not None else "",
                "" if priority is None else str(priority),
                "" if weight is None else repr(float(weight)),
                points,
                run_cap,
            ],
        )
        return (got or b"").decode()

    def pool_settings(self, sid: str) -> tuple[int, float]:
        """The sweep's priority and weight (their defaults when unset)."""
        priority, weight = self.r.hmget(keys.sweep(keys.check_id(sid, "sweep id")), ["priority", "weight"])
        return int(priority or 0), float(weight or 1)

    def pool_claim(self, pool: str, agent_id: str, lease_s: float, since: str = "") -> Claim | str | Quiet:
        """The pool's next step for this agent (claim_pool.lua): a queued run it now holds, the id of
        the sweep to create a run in, or Quiet when no sweep of the pool has work. ``since``: the
        ``gen`` of this agent's last Quiet (no sweep is read while the pool has not changed)."""
        token = uuid.uuid4().hex
        got = self.core.run(
            "claim_pool",
            [keys.pool(pool), keys.pool_gen(pool)],
            [
                keys.PREFIX,
                keys.rq_queue(""),
                keys.PREFIX + "run:",
                keys.RQ_JOB_PREFIX,
                agent_id,
                token,
                int(lease_s * 1000),
                since,
            ],
        )
        if got[0] == b"quiet":
            return Quiet(got[1].decode())
        sid: str = got[1].decode()
        if got[0] == b"create":
            return sid
        recovery_ms = int(got[4])
        return Claim(
            sid,
            got[2].decode(),
            int(got[3]),
            token,
            json.loads(got[5]),
            step_of((got[6] or b"").decode()) if len(got) > 6 else None,
            recovered_after=None if recovery_ms < 0 else recovery_ms / 1000,
        )

    def pool_beat(self, pool: str, aid: str, lease_s: float, silent_s: float, *, clock: bool = False) -> PoolBeat:
        """A pool agent's heartbeat, one round trip of three commands whatever the number of sweeps
        (as ``idle_beat``): its score in the pool's ``:agents`` (its clock), its record's TTL (a
        lease), and whether any pool agent has not beaten for ``silent_s`` (the caller says how
        long that is: a lease less a heartbeat, so that its runs are read before they can lapse
        by more than a heartbeat). ``clock``: Redis's ``TIME`` too."""
        now_ms = int(time.time() * 1000)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.pool_agents(pool), {aid: now_ms})
            pipe.pexpire(keys.agent(aid), max(1000, int(lease_s * 1000)))
            pipe.zrangebyscore(keys.pool_agents(pool), "-inf", f"({now_ms - int(silent_s * 1000)}", start=0, num=1)
            if clock:
                pipe.time()
            got = pipe.execute()
        redis_ms = int(got[3][0]) * 1000 + int(got[3][1]) // 1000 if clock else None
        return PoolBeat(recorded=bool(got[1]), silent=bool(got[2]), now_ms=redis_ms)

    def pool_leases(self, pool: str, lease_s: float, silent_s: float) -> PoolLeases:
        """The pool's next lease deadline and the sweeps whose lease lapsed (pool_leases.lua: one
        command, a few reads of the pool's ``:held`` index whatever the number of sweeps); counts
        the agents silent for ``silent_s``, forgets those silent for two leases."""
        now_ms = int(time.time() * 1000)
        got = self.core.run(
            "pool_leases",
            [keys.pool_held(pool), keys.pool_agents(pool)],
            [now_ms - int(silent_s * 1000), now_ms - 2 * int(lease_s * 1000)],
        )
        earliest = None if got[1] is None else int(got[1])
        return PoolLeases(int(got[0]), earliest, int(got[2]), [sid.decode() for sid in got[3:]])

    def pool_record(self, pool: str, aid: str, info: dict[str, Any], ttl_s: float) -> None:
        """Write a pool agent's record and its heartbeat in the pool's ``:agents``; the pool is
        listed (``pool list``) from its first agent on, sweeps or not."""
        self.presence.record(keys.pool_agents(pool), aid, info, ttl_s)
        self.r.sadd(keys.POOLS, pool)

    def pool_agent_gone(self, pool: str, aid: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(keys.agent(aid))
            pipe.zrem(keys.pool_agents(pool), aid)
            pipe.execute()

    def wait_for_pool(self, pool: str, timeout_s: float, interrupt_fd: int | None = None) -> Woken:
        """Block on the pool's wake list, as ``wait_for_work`` on a sweep's."""
        return self.presence.block(keys.pool_wake(check_pool(pool)), timeout_s, interrupt_fd)
