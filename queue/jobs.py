"""The function every sweepd rq job names, and the only one.

Each queued run is an rq job so that rq's tools see the queue, but sweepd agents never let rq import
or call anything: they read a run's params from sweepd's own run hash (JSON) and run the sweep's
command themselves. Should someone point a plain ``rq worker`` at a sweepd queue, the job's function
is this one, and it refuses.
"""

from __future__ import annotations


def agent_only(run_id: str) -> None:
    """Refuse: sweepd runs are executed by ``sweepd agent``, never by an rq worker."""
    raise RuntimeError(f"run {run_id} belongs to a sweepd sweep: start `sweepd agent`, not `rq worker`")


FUNC_NAME = f"{__name__}.agent_only"
