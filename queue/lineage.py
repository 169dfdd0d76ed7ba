"""PBT's members and lineages, from the runs' records (pure).

A run an exploit made carries its ``pbt`` record (member, generation, parent: the run whose
checkpoint it started from), written by pbt_decide.lua. The first generation carries none: the
search (or ``sweepd enqueue``) made it, and its runs are members 0, 1, ... in creation order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .records import RunRecord


def members(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """``runs`` (in creation order) with every first-generation run's ``pbt`` filled in."""
    out: list[RunRecord] = []
    first = 0
    for run in runs:
        if run.pbt is None:
            run = dataclasses.replace(run, pbt={"member": first, "generation": 0, "parent": None})
            first += 1
        out.append(run)
    return out


def lineage(runs: Sequence[RunRecord], rid: str) -> list[dict[str, Any]]:
    """The run ``rid`` and its ancestors, newest first: id, member, generation, params."""
    by_id = {run.id: run for run in runs}
    out: list[dict[str, Any]] = []
    current: str | None = rid
    while current is not None and current in by_id and len(out) <= len(by_id):
        run = by_id[current]
        info = run.pbt or {}
        out.append(
            {"id": run.id, "member": info.get("member"), "generation": info.get("generation"), "params": run.params}
        )
        current = info.get("parent")
    return out
