"""What an operator's move of one run (``sweepd stop``, ``sweepd requeue``: operate.lua) became, in one
line: the two commands share it, and each result is worded once."""

from __future__ import annotations

from typing import Literal

from sweepd.queue.store import Store

_RESULTS = {
    "stopped": "run {rid} stopped (it was queued)",
    "requeued": "run {rid} requeued at the front of its sweep's queue",
    "requested": "run {rid} is running: its agent will {action} it at its next heartbeat",
    "unchanged": "run {rid} is already {state}: nothing to do",
}


def operate(store: Store, run_id: str, action: Literal["stop", "requeue"]) -> str:
    """Ask for ``action`` on the run, and say what became of it."""
    result = store.operate(run_id, action)
    return _RESULTS[result].format(rid=run_id, action=action, state=store.run(run_id).state)
