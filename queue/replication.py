"""Moves that survive a failover: behind Sentinel, each move waits for a replica to have it.

Replication is asynchronous: a master can acknowledge a move and die before any replica has it, and
the replica Sentinel promotes then knows nothing of it. So when the client is Sentinel-managed,
every script that makes a sweep or hands a run to a holder or ends it (create_sweep, claim,
create, complete, requeue, renew, preempt, reap, operate, control, resume, enqueue) is sent as
one pipeline ``EVALSHA; WAIT 1 ms`` on one connection, and WAIT's answer says whether a replica
has it:

- one replica or more: the move survives a failover;
- none, while the master has a replica online: ``NotReplicated``, a ConnectionError, so every caller treats
  it as the outage it may be (the holder does not count a renewal it cannot prove; a claim not
  proven is never started, and its lease runs out and is reaped like any lost agent's);
- none, and the master has no replica online: the move stands. Nothing can be promoted without it
  (a replica that connects later copies the whole data set first). With no replica online, moves
  are sent without WAIT (which would only time out); the count is looked up again every second.

Metric rows (``log``) are not waited for: losing the last rows to a failover costs a curve point,
not a run. A master that answers NOSCRIPT (a promoted replica never had ``SCRIPT LOAD``) gets the
script loaded and the move sent again; nothing ran the first time.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.sentinel import SentinelConnectionPool

#: How long a move waits for a replica's acknowledgement.
WAIT_MS = 1000
#: How often the number of online replicas is looked up again (and at once when a WAIT falls short).
RECHECK_S = 1.0
#: Scripts that are not moves of a run: waited for by nobody.
UNWAITED = frozenset({"log", "pool_leases"})


class NotReplicated(redis.ConnectionError):
    """The master applied a move that no replica acknowledged in time: it may not survive a
    failover, so it is not relied on."""


def wanted(client: redis.Redis) -> bool:
    """Moves wait for a replica only where a replica can be promoted: behind Sentinel."""
    return isinstance(client.connection_pool, SentinelConnectionPool)


class Replicated:
    """Runs scripts so that what they wrote is on a replica before the caller relies on it.

    WAIT for a replica that does not exist would cost every move its whole timeout, so the number
    of online replicas is looked up (INFO) at most every ``recheck_s`` and whenever WAIT falls
    short; with none, moves go without WAIT.
    """

    def __init__(self, client: redis.Redis, wait_ms: int = WAIT_MS, recheck_s: float = RECHECK_S) -> None:
        self.client, self.wait_ms, self.recheck_s = client, wait_ms, recheck_s
        self._replicas_at = -1e9
        self._replicas = 0

    def call(self, name: str, script: Script, keys: list[str], args: list[Any]) -> Any:
        for _ in range(2):
            waits = self.replicas() > 0
            with self.client.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                if waits:
                    pipe.wait(1, self.wait_ms)
                try:
                    result, *acked = pipe.execute()
                except NoScriptError:  # a newly promoted master: load it, send the move again
                    self.client.script_load(script.script)
                    continue
            if waits and int(acked[0]) < 1 and self.replicas(fresh=True) > 0:
                raise NotReplicated(f"{name}: no replica acknowledged it within {self.wait_ms} ms")
            return result
        raise NoScriptError(f"{name}: the master refused the script after loading it")

    def replicas(self, *, fresh: bool = False) -> int:
        """Replicas that follow the stream. One still copying the data set is not counted: what
        a move writes reaches it after the copy, in the stream the master buffers for it."""
        now = time.monotonic()
        if fresh or now - self._replicas_at >= self.recheck_s:
            info = self.client.info("replication")
            self._replicas = sum(
                1
                for k, v in info.items()
                if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
            )
            self._replicas_at = now
        return self._replicas
