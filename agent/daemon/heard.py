"""What the training process tells its attempt: the API's messages and the metrics it prints.

attempt.py supervises the process; this is the process's side of the talk, called on the channel's
and the stdout pump's threads, which only hand rows to the hold and set flags the attempt reads.
"""

from __future__ import annotations

import threading
from typing import Any

from sweepd.queue import bounds
from sweepd.queue.records import Claim
from sweepd.queue.rows import STEP, Steps, compile_pattern, parse_line
from sweepd.queue.space import SweepConfig

from ..hold.hold import Hold
from . import wandb_follow
from .signals import Waker


class Heard:
    """The flags and rows the training process gives: its preemption mark, whether it uses the API."""

    def __init__(self, hold: Hold, claim: Claim, config: SweepConfig, waker: Waker) -> None:
        self.hold, self.claim, self.waker = hold, claim, waker
        self.child_marked = threading.Event()  # the script called mark_preempting()
        #: A process of the attempt uses the Python API: it reports metrics through it, so printed
        #: lines are no longer read for metrics (nothing is counted twice).
        self.api = threading.Event()
        pattern = config.stdout_metrics
        self.pattern = compile_pattern(pattern) if pattern else None  # checked at create: it compiles
        self.steps = Steps(claim.last_step)  # printed rows continue the run's history
        self.wandb: wandb_follow.Follower | None = None  # the script's W&B run, read as it is written

    def on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Called on the channel's threads: queue metrics, note a self-declared preemption, answer
        the API's hello (once answered, printed lines are no longer read for metrics)."""
        op = message.get("op")
        if op == "log" and isinstance(message.get("row"), dict):
            self.hold.add_rows([message["row"]])
            cut = message.get("cut")  # what the script's API cut already (bounds.py)
            if isinstance(cut, int) and 0 < cut <= bounds.LINE_BYTES:
                self.hold.cut("cut by the script's API", count=cut)
        elif op == "preempting":
            self.child_marked.set()
            self.waker.wake()
        elif op == "hello":
            self.api.set()
            if self.wandb is not None:  # its rows come through the API, not also from its W&B run
                self.wandb.muted.set()
            return {"op": "hello", "run_id": self.claim.run_id, "attempt": self.claim.attempt}
        return None

    def on_stdout(self, lines: list[str]) -> None:
        """Called on the stdout pump's thread: the metrics a program prints (the sweep's
        ``stdout_metrics`` pattern) become rows, like the API's."""
        if self.pattern is None or self.api.is_set():
            return
        for line in lines:
            metrics: dict[str, Any] = dict(parse_line(self.pattern, line))
            if not metrics:
                continue
            given = metrics.pop(STEP, None)
            if given is not None and not 0 <= given < bounds.MAX_STEP:  # no step: the series goes on
                self.hold.cut("row with a bad _step")
                continue
            step = self.steps.assign(int(given) if given is not None else None)
            if step is not None and metrics:
                self.hold.add_rows([{**metrics, STEP: step}])
