"""One turn of a holder's supervision (hold/tick.py), which an agent's attempt and a script holding
its own run both take, driven turn by turn with a clock of our own against a real Redis."""

from __future__ import annotations

import time
from typing import Any

from sweepd.agent.daemon.preemption import Preemption
from sweepd.agent.hold.hold import FLUSH_EVERY, Ending, Hold
from sweepd.agent.hold.tick import Turn, tick
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

ONE = {"method": "grid", "program": "train.py", "parameters": {"a": {"values": [1]}}}


class Told:
    """The held process, as the hold reaches it: what it was told, whether it was killed."""

    def __init__(self) -> None:
        self.told: list[tuple[Ending, str]] = []
        self.killed = False

    def kill(self) -> None:
        self.killed = True

    def tell(self, ending: Ending, reason: str, grace: float) -> None:
        self.told.append((ending, reason))


def held(store: Store) -> tuple[Hold, Told, float]:
    sid = store.create_sweep(validate(ONE))
    taken_at = time.monotonic()
    claim = store.create_next(sid, "a", 30)
    assert isinstance(claim, Claim)
    told = Told()
    said: list[Any] = []
    hold = Hold(store, claim, told, 10.0, 5.0, taken_at, say=lambda *a, **k: said.append(a))
    return hold, told, taken_at


def test_a_turn_renews_when_due_and_writes_rows_every_flush_interval(store: Store) -> None:
    hold, told, t0 = held(store)
    assert tick(hold, t0, marked=False) == Turn(flushed=True, logged=False)  # the first turn writes
    hold.add_rows([{"_step": 1, "loss": 0.5}])
    assert tick(hold, t0 + FLUSH_EVERY / 2, marked=False) == Turn()  # not yet: rows wait
    assert store.run(hold.claim.run_id).summary == {}
    assert tick(hold, t0 + FLUSH_EVERY, marked=False) == Turn(flushed=True, logged=True)
    assert store.run(hold.claim.run_id).summary["loss"] == 0.5
    assert tick(hold, t0 + 10.0, marked=False) == Turn(renewed="ok", flushed=True, logged=False)
    assert hold.next_renew == t0 + 20.0 and not told.told and not told.killed


def test_the_scripts_mark_reaches_redis_a_preemption_ends_the_run_the_grace_says_kill(store: Store) -> None:
    hold, told, t0 = held(store)
    tick(hold, t0, marked=True)
    assert hold.marked and hold.preempting and hold.reason == "child-marked"
    assert store.run(hold.claim.run_id).state == "preempting" and hold.ending is None and not told.told
    going = Preemption(grace=5.0)
    going.request("spot-notice", now=t0 + 1)
    assert not tick(hold, t0 + 1, marked=True, going=going).kill  # the agent's preemption ends it
    assert told.told == [("preempt", "spot-notice")] and hold.kill_at == t0 + 6
    going.repeat(now=t0 + 2)
    going.repeat(now=t0 + 4)  # a second signal halves what is left of the grace
    assert not tick(hold, t0 + 4, marked=True, going=going).kill and hold.kill_at == t0 + 5
    assert tick(hold, t0 + 5, marked=True, going=going) == Turn(kill=True)  # nothing else done
    assert told.told == [("preempt", "spot-notice")] and not told.killed  # the caller kills
