"""Where an agent works: one sweep (``sweepd agent SWEEP_ID``), or a pool of them (pool.py).

The agent's loop (loop.py) and its heartbeat (heartbeat.py) are the same wherever it works; a
``Place`` is what differs: how the next run is found, whether the work is over, and which keys its
heartbeat, record, reap and wait use. Each method is one step of the store's, or a few.
"""

from __future__ import annotations

from typing import Protocol

from sweepd.queue.next_run import NextRuns
from sweepd.queue.presence import Beat, Woken
from sweepd.queue.records import Claim
from sweepd.queue.space import SweepConfig
from sweepd.queue.store import Reaped, Store

from . import logs
from .options import Options

log = logs.get("sweepd.agent")


class Place(Protocol):
    """What the loop and the heartbeat ask of where the agent works."""

    #: What the agent's record says it works (``sweep_id``; a pool's record names its pool too).
    sweep_id: str

    def next_claim(self) -> Claim | None:
        """The next run this agent now holds, or None: no work."""

    def complete(self) -> bool:
        """Nothing more to do: the agent exits 0."""

    def beat(self, clock: bool = False, record: bool = True) -> Beat:
        """The idle heartbeat: liveness, the record's TTL (``record``), the earliest lease."""

    def record(self, info: dict[str, object]) -> None:
        """Write the agent's whole record (and its liveness)."""

    def reap_wanted(self) -> bool:
        """Whether a busy agent's periodic reap is worth its round trip now."""

    def reap(self) -> Reaped:
        """Requeue the runs whose lease lapsed; what an idle agent sleeps on next."""

    def wait(self, timeout: float, interrupt_fd: int) -> Woken:
        """Block until a token on the wake list, ``interrupt_fd`` readable, or ``timeout``."""

    def gone(self) -> None:
        """The agent is leaving: its record and liveness go at once."""


class SweepPlace:
    """One sweep: its queue first, then its search (the caller asks it: ``NextRuns``)."""

    def __init__(self, store: Store, opts: Options, agent_id: str) -> None:
        self.store, self.opts, self.aid = store, opts, agent_id
        self.sweep_id = self.sid = opts.sweep_id
        self.config: SweepConfig = store.config(self.sid)
        self.next_runs = NextRuns(store.reads, store.operations)  # the search is asked here, not in a write
        self._search_first = False  # the last run came from the search

    def next_claim(self) -> Claim | None:
        """A queued run first (a requeued run comes back before any new one), else a new one.

        After a run made by the search the search is asked first: create.lua refuses while a run
        is queued ('queued'), so the queue still goes first, and an empty queue costs no claim.lua
        (a round trip of each run's gap)."""
        lease, sid, aid = self.opts.lease, self.sid, self.aid
        et = self.config.early_terminate
        asha = et is not None and et.type == "asha"
        first = self._search_first and not asha  # ASHA: a promotion goes before a new run
        made = self.next_runs.create_next(sid, aid, lease, unless_queued=True) if first else None
        if isinstance(made, Claim):
            return made
        claim = self.store.claim(sid, aid, lease)
        if claim is not None:
            self._search_first = False
            return claim
        promoted = self.store.promote_next(sid, aid, lease) if asha else None
        if promoted is not None:
            log.info("promoting a paused run to its next rung", run_id=promoted.run_id)
            return promoted
        if made is None or made == "queued":  # not asked yet, or the queued run went to another agent
            made = self.next_runs.create_next(sid, aid, lease)
            if isinstance(made, Claim):
                self._search_first = True
                return made
        return None

    def complete(self) -> bool:
        return self.store.is_complete(self.sid)

    def beat(self, clock: bool = False, record: bool = True) -> Beat:
        return self.store.idle_beat(self.sid, self.aid, self.opts.lease, clock=clock, record=record)

    def record(self, info: dict[str, object]) -> None:
        self.store.agent_beat(self.sid, self.aid, info, ttl_s=self.opts.lease)

    def reap_wanted(self) -> bool:
        return True  # every agent reaps its sweep once a heartbeat

    def reap(self) -> Reaped:
        return self.store.reap_due(self.sid, self.opts.heartbeat)

    def wait(self, timeout: float, interrupt_fd: int) -> Woken:
        return self.store.wait_for_work(self.sid, timeout, interrupt_fd)

    def gone(self) -> None:
        self.store.agent_gone(self.sid, self.aid)
