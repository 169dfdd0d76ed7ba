"""What became of the runs `sweepd run`'s agents held when the user interrupted it.

``held_by`` reads which runs the local agents hold (their agents' pids, from the agents' records);
``fates`` is pure: one line per run, from its record read once the agents have gone.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Sequence

from sweepd.queue.reads import Reads
from sweepd.queue.records import RunRecord
from sweepd.queue.states import HELD


def held_by(reads: Reads, sid: str, pids: Collection[int]) -> list[str]:
    """The ids of the sweep's held runs whose holder is one of the agents with these pids, here."""
    host = socket.gethostname()
    ours = {a["id"] for a in reads.agents(sid) if a.get("host") == host and a.get("pid") in {str(p) for p in pids}}
    return [run.id for run in reads.runs(sid) if run.state in HELD and run.agent_id in ours]


def fate(run: RunRecord, sid: str) -> str:
    """One line: where the run is now, and what to do to go on with it."""
    why = f" ({run.reason})" if run.reason else ""
    if run.state == "queued":
        return (
            f"  run {run.id}: requeued at the front{why} after attempt {run.attempt}; `sweepd agent {sid}` resumes it"
        )
    if run.state in HELD:
        return f"  run {run.id}: still {run.state} (its agent is gone): requeued when its lease expires"
    return f"  run {run.id}: {run.state}{why} as it was being preempted"


def fates(runs: Sequence[RunRecord], sid: str, *, killed: bool = False) -> list[str]:
    """The summary's lines for the runs that were held when the user interrupted `sweepd run`
    (``killed``: a second Ctrl-C killed what was still running of them)."""
    how = "interrupted twice, the held runs killed" if killed else "interrupted, the held runs preempted"
    if not runs:
        return [f"sweepd: {how.split(',')[0]}; no run was held"]
    return [f"sweepd: {how}; what became of each:", *(fate(run, sid) for run in runs)]
