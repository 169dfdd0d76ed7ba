"""Bounded, jittered backoff for when Redis does not answer, and the errors that mean it did not."""

from __future__ import annotations

import random

import redis

from sweepd.queue.connections import REDIS_DOWN as REDIS_DOWN  # retry later, keep the training process


def refused(exc: BaseException) -> bool:
    """Redis answered a write with an error that trying again will not mend (a script's error, a
    key of the wrong type), as opposed to one that passes (a replica during a failover, memory full)."""
    return (
        isinstance(exc, redis.ResponseError)
        and not isinstance(exc, redis.ReadOnlyError)
        and not str(exc).startswith(("OOM", "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN"))
    )


class Backoff:
    """Delays that double from ``base`` up to ``cap``, each drawn at random below that bound ("full
    jitter"), so that agents that lost Redis together do not all come back at the same instant."""

    def __init__(self, base: float = 0.1, cap: float = 5.0, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self._rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        bound = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(bound / 2, bound)

    def reset(self) -> None:
        self.failures = 0
