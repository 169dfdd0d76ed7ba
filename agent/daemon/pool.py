"""A pool (``sweepd agent --pool NAME``): where a pool agent works (place.py's ``Place``), every
sweep of the pool instead of one; its loop, slots and heartbeat are any agent's.

What differs from a sweep's agent is only where it works:

- the next run is the pool's choice (``Store.pool_claim``: claim_pool.lua's one atomic step): a
  queued run of the chosen sweep, already held, or the sweep to create a run in, which the agent's
  search makes as any agent's (``create_next``: create.lua's compare-and-set);
- it is never complete: a pool has no end, sweeps come and go (preemption still ends it, 0);
- it waits on the pool's wake list, which the scripts push to for every sweep of the pool; a look
  that found no work is not repeated (claim_pool.lua reads only the pool's ``:gen``) until the pool
  has changed, so its periodic look for a lost token costs two commands, not a few per sweep;
- its heartbeat (``Store.pool_beat``) costs three commands whatever the number of sweeps, and asks
  only whether a pool agent has gone silent (a lease less a heartbeat): then (and every ``SCAN_EVERY`` heartbeats)
  it reads the pool's index of lease deadlines in one script (``pool_leases.lua``) and reaps the
  lapsed sweeps, so a dead pool agent's runs come back within a lease and a heartbeat, as a sweep's;
- its record and heartbeat are in the pool's ``:agents``, its record names the pool.
"""

from __future__ import annotations

from sweepd.queue.next_run import NextRuns
from sweepd.queue.pools import Quiet
from sweepd.queue.presence import Beat, Woken
from sweepd.queue.records import Claim
from sweepd.queue.store import Reaped, Store

from .options import Options

#: Heartbeats between two reads of the pool's leases that no silent agent asked for: a run held by
#: no pool agent (a sweep's own agent, a script run by hand) is reaped within its lease and these.
SCAN_EVERY = 30
#: Looks at the pool in one turn: a create can lose to a racing agent (a run was queued meanwhile,
#: the sweep paused or ran out), and the pool is asked again.
TRIES = 8


class PoolPlace:
    def __init__(self, store: Store, opts: Options, agent_id: str) -> None:
        self.store, self.opts, self.aid = store, opts, agent_id
        self.pool = opts.pool
        self.sweep_id = opts.sweep_id  # '': a pool agent has no sweep of its own
        self.next_runs = NextRuns(store.reads, store.operations)
        self._beats = 0
        self._scan_due = True  # a first look at the pool's leases
        self._quiet = ""  # the pool's gen when the last look found no work ('': look)
        #: A pool agent not heard of for a lease less a heartbeat may be dead: its runs are read then,
        #: before their leases (renewed up to a heartbeat after its last beat) can have lapsed.
        self.silent_s = opts.lease - opts.heartbeat

    def next_claim(self) -> Claim | None:
        """The pool's order: a queued run of the highest priority first, else a new run of the
        sweep the pool names (fewest held runs per weight)."""
        lease = self.opts.lease
        for _ in range(TRIES):
            got = self.store.pool_claim(self.pool, self.aid, lease, since=self._quiet)
            if isinstance(got, Quiet):
                self._quiet = got.gen
                return None
            self._quiet = ""
            if isinstance(got, Claim):
                return got
            made = self.next_runs.create_next(got, self.aid, lease, unless_queued=True)
            if isinstance(made, Claim):
                return made
        return None

    def complete(self) -> bool:
        return False  # a pool never is: the agent waits for the next sweep

    def reap_wanted(self) -> bool:
        """A busy pool agent reaps only when its heartbeat said a lease may lapse (a silent pool
        agent) or the periodic scan is due."""
        return self._scan_due

    def reap(self) -> Reaped:
        """Reap the pool's sweeps with a lapsed lease (one script finds them). While a pool agent is
        silent, its runs' deadlines are what to sleep until; else nothing needs watching."""
        self._scan_due = False
        seen = self.store.pool_leases(self.pool, self.opts.lease, self.silent_s)
        requeued: list[str] = []
        deadlines = [seen.earliest] if seen.earliest is not None else []
        for sid in seen.lapsed:
            got = self.store.reap_due(sid, self.opts.heartbeat)
            requeued += got.requeued
            if got.earliest is not None:
                deadlines.append(got.earliest)
        return Reaped(requeued, seen.now_ms, min(deadlines, default=None) if seen.silent else None)

    def beat(self, clock: bool = False, record: bool = True) -> Beat:
        """The pool's heartbeat: three commands. A silent pool agent, or every ``SCAN_EVERY``
        heartbeats, makes a reap due now (earliest 0: long past)."""
        seen = self.store.pool_beat(self.pool, self.aid, self.opts.lease, self.silent_s, clock=clock)
        self._beats += 1
        if seen.silent or self._beats % SCAN_EVERY == 0:
            self._scan_due = True
        return Beat(earliest=0 if self._scan_due else None, now_ms=seen.now_ms, recorded=seen.recorded)

    def record(self, info: dict[str, object]) -> None:
        self.store.pool_record(self.pool, self.aid, {**info, "pool": self.pool}, ttl_s=self.opts.lease)

    def wait(self, timeout: float, interrupt_fd: int) -> Woken:
        return self.store.wait_for_pool(self.pool, timeout, interrupt_fd)

    def gone(self) -> None:
        self.store.pool_agent_gone(self.pool, self.aid)
