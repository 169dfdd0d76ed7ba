"""An agent's slots: the runs it holds at once, one per GPU slot (``--gpus LIST|all [--gpus-per-run
K]``), or one slot without ``--gpus``.

A slot is one attempt at a time (attempt.py), with its own lease, heartbeat, fencing and attempt
token exactly as any holder's: the hold (hold.py) knows no difference. What the slots share is the
agent: its store, its preemption decision, its watchdog, its heartbeat (``SlotHost``). The agent's
loop (loop.py) claims into every free slot. A lone slot runs its attempt on the loop's own thread
(nothing to hand over on the pickup path), waking on the agent's waker; with two or more, each
attempt runs on a thread of its own and sleeps on its slot's waker, and its end wakes the loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweepd.queue.records import Claim
from sweepd.queue.store import Store

from ..hold.watchdog import Watchdog
from .metrics import Metrics
from .options import Options
from .preemption import Preemption
from .sdnotify import Notifier
from .signals import Waker


@dataclass(frozen=True)
class Result:
    """What a slot's attempt hands back to the loop: ``stop`` is an exit code that ends the agent;
    ``failed`` whether the recorded end was a failure (None: nothing was recorded)."""

    stop: int | None = None
    failed: bool | None = None


class Slot:
    """One slot: its devices, and the run it holds if any."""

    def __init__(self, index: int, devices: tuple[str, ...], waker: Waker | None) -> None:
        self.index, self.devices = index, devices
        self.own_waker = waker is None
        self.waker = Waker() if waker is None else waker  # what its attempt sleeps on
        self.thread: threading.Thread | None = None
        self.claim: Claim | None = None
        self.result: Result | None = None  # set when its attempt ended, until the loop collects it

    @property
    def env(self) -> dict[str, str]:
        """What the slot's training process is told: its devices, and which slot it is."""
        if not self.devices:
            return {}
        gpus = ",".join(self.devices)
        return {"CUDA_VISIBLE_DEVICES": gpus, "SWEEPD_GPUS": gpus, "SWEEPD_GPU_SLOT": str(self.index)}

    def describe(self) -> dict[str, Any]:
        return {"slot": self.index, "gpus": list(self.devices), "run_id": self.claim.run_id if self.claim else ""}

    def close(self) -> None:
        if self.own_waker:
            self.waker.close()


def make_slots(opts: Options, waker: Waker) -> list[Slot]:
    """``--gpus``' slots, each with a waker of its own; without it, one slot on the agent's waker."""
    if len(opts.slots) <= 1:
        return [Slot(0, opts.slots[0] if opts.slots else (), waker)]
    return [Slot(i, devices, None) for i, devices in enumerate(opts.slots)]


def held(slots: list[Slot], slotted: bool) -> dict[str, str]:
    """The agent's record's fields for what it holds (``sweepd agents``, ``status``)."""
    run_ids = ",".join(slot.claim.run_id for slot in slots if slot.claim is not None)
    if not slotted:
        return {"run_id": run_ids}
    return {"run_id": run_ids, "slots": json.dumps([slot.describe() for slot in slots])}


@dataclass
class SlotHost:
    """What one slot's attempt (attempt.py) sees of the agent: the agent's store, options,
    preemption, watchdog and heartbeat; its slot's waker (woken by a signal, a notice, an operator),
    metric series and environment (a GPU slot's CUDA_VISIBLE_DEVICES, SWEEPD_GPUS, SWEEPD_GPU_SLOT)."""

    store: Store
    opts: Options
    preemption: Preemption
    notifier: Notifier
    watchdog: Watchdog
    waker: Waker
    metrics: Metrics
    slot_env: dict[str, str]
    intake: Callable[[], None]
    beat: Callable[..., None]
    maybe_reap: Callable[[], None]
