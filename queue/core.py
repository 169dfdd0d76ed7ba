"""What every write of the store shares: the Redis client and sweepd's Lua scripts, each registered
behind ``scripts/prelude.lua`` and run as one EVALSHA (behind Sentinel, waiting for a replica).

The prelude is the Lua the scripts share (the clock, the requeue step, wake and event pushes), so
that step is written once and each script is still one EVAL.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from . import bounds, replication

PRELUDE = "prelude"  # scripts/prelude.lua: put in front of every other script, never run alone
#: The scripts the store runs: resume and enqueue start runs by name (runs.py); checkpoint commits a
#: snapshot (checkpoints.py); pools.py's make a pool's order.
NAMES = (
    "create_sweep",
    "claim",
    "create",
    "complete",
    "requeue",
    "renew",
    "preempt",
    "reap",
    "operate",
    "control",
    "log",
    "resume",
    "enqueue",
    "checkpoint",
    "pause",
    "promote",
    "pbt_standing",
    "pbt_decide",
    "claim_pool",
    "pool_set",
    "pool_leases",
)


@cache
def _lua(name: str) -> str:
    return resources.files("sweepd.queue.scripts").joinpath(f"{name}.lua").read_text()


def script_source(name: str) -> str:
    """The text Redis runs for script ``name``: the shared prelude, then the script itself. The
    prelude only defines local functions, so the script's own header still says what it touches."""
    if name == PRELUDE:
        raise ValueError("the prelude is put in front of the scripts, not run alone")
    return f"local KEPT_ATTEMPTS = {bounds.KEPT_ATTEMPTS}\n" + _lua(PRELUDE) + "\n" + _lua(name)


#: rq's own hash for a run's job as field/value pairs, given (sweep id, run id): store.py lays it out,
#: the only module that imports rq; a script that makes a run writes it.
JobFields = Callable[[str, str], list[Any]]


class Core:
    """What the store's parts share: the client, its registered scripts, and rq's job layout.
    Cheap to make, no state but the scripts' hashes."""

    def __init__(self, client: redis.Redis, job_fields: JobFields) -> None:
        self.r = client
        self.job_fields = job_fields
        self.scripts: dict[str, Script] = {name: client.register_script(script_source(name)) for name in NAMES}
        self.replicated = replication.Replicated(client) if replication.wanted(client) else None

    def run(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """One script, one EVALSHA; behind Sentinel a move also waits for a replica (replication.py)."""
        if self.replicated is not None and name not in replication.UNWAITED:
            return self.replicated.call(name, self.scripts[name], keys_, args)
        return self.scripts[name](keys=keys_, args=args)
