"""A PBT member as the agent holding its run applies ``method: pbt`` (search/pbt.py decides).

Asked as rows arrive and at each renewal: when the run's last logged step crosses a multiple of the
interval, the member's value there is noted (pbt_standing.lua) and the decision made once for that
member and step (pbt_decide.lua). In the bottom quantile, the member continues as a new run: the
top member's parameters, explored; its checkpoint directory starting as a copy of the top member's
(``copy_checkpoint``; with an object store, a reference to its latest snapshot: no byte moves); then
this run is stopped as at a preemption (child signal, grace) and ends ``stopped``, reason
``pbt-exploited``. At ``steps`` the run is ended ``finished`` (reason ``pbt-budget``). A top
member with no checkpoint yet (none committed, or an empty directory) has no weights to give: the
member goes on as it is (as Ray Tune's PBT skips such an exploit), rather than a child starting from
scratch under the parent's step.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from typing import Any

from sweepd.queue.ids import new_id
from sweepd.queue.population import NextRun
from sweepd.queue.records import Claim
from sweepd.queue.search import pbt
from sweepd.queue.space import SweepConfig
from sweepd.queue.store import Store

from ..checkpoints import run_dir
from ..checkpoints.travel import Roots
from . import launch, logs
from .options import Options
from .rungs import Pause

log = logs.get("sweepd.agent")


def has_checkpoint(opts: Roots, store: Store, sid: str, parent: str) -> bool:
    """Whether the parent has a checkpoint to start a child from: a committed snapshot with an object
    store root, a non-empty directory (its parameters file aside) on a plain one."""
    if opts.checkpoint_url is not None:
        return store.latest_checkpoint(parent) is not None
    source = run_dir(opts.checkpoints, sid, parent)
    return source.is_dir() and any(not p.name.startswith(launch.PARAMS_NAME) for p in source.iterdir())


def copy_checkpoint(opts: Options, sid: str, parent: str, child: str) -> str:
    """The child's checkpoint starts as the parent's latest. On the plain-path root (shared
    storage): a directory copy, the parent's params file left out; returns "". With an object-store
    root: nothing is copied; returns the parent, whose latest committed snapshot pbt_decide.lua
    commits as the child's first by reference (pinned against the parent's retention until the
    child commits its own), so its first attempt restores it as any resumed attempt does."""
    if opts.checkpoint_url is not None:
        return parent
    source, target = run_dir(opts.checkpoints, sid, parent), run_dir(opts.checkpoints, sid, child)
    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        ignore = shutil.ignore_patterns(launch.PARAMS_NAME + "*")
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=ignore, copy_function=_copy_present)
    return ""


def _copy_present(src: str, dst: str) -> None:
    """A file the parent removed while it was copied (a partial checkpoint it renamed) is skipped."""
    with contextlib.suppress(FileNotFoundError):
        shutil.copy2(src, dst)


class Member:
    def __init__(self, store: Store, config: SweepConfig, claim: Claim, opts: Options) -> None:
        self.store, self.config, self.claim, self.opts = store, config, claim, opts
        self.root = str(opts.checkpoints)
        self.on = config.method == "pbt" and config.pbt is not None and config.metric is not None
        self.info: dict[str, Any] | None = None
        self.decided: int | None = None  # the highest step decided for this member
        self.seed = 0

    def reached(self) -> Pause | None:
        """How the held run ends now (None: it goes on)."""
        pbt_cfg, metric = self.config.pbt, self.config.metric
        if not self.on or pbt_cfg is None or metric is None:
            return None
        store, claim = self.store, self.claim
        step, value = store.last_step_and_value(claim.run_id, metric.name)
        if step is None:
            return None
        if self.info is None:
            self.info = store.pbt_of(claim.sweep_id, claim.run_id)
            self.decided = store.last_decided(claim.sweep_id, self.info["member"])
            self.seed = store.sweep(claim.sweep_id).seed
        member = int(self.info["member"])
        if not _number(value) and self.info.get("parent"):  # nothing logged yet: its checkpoint is
            _, value = store.last_step_and_value(str(self.info["parent"]), metric.name)  # its parent's
        interval = pbt_cfg.interval
        for boundary in range(((self.decided or 0) // interval + 1) * interval, step + 1, interval):
            if boundary >= pbt_cfg.steps or not _number(value):
                break  # past the budget, or no value to rank it by yet
            at = store.value_at(claim.run_id, metric.name, boundary, step)
            ended = self._decide(member, boundary, at if _number(at) else value)
            self.decided = boundary
            if ended is not None:
                return ended
        if step + 1 >= pbt_cfg.steps:
            return Pause(None, "pbt-budget")
        return None

    def _decide(self, member: int, step: int, value: Any) -> Pause | None:
        store, claim, config = self.store, self.claim, self.config
        population = config.pbt.population if config.pbt is not None else 0
        standings = store.standing(claim, member, step, float(value), population)
        if standings is None:
            return None  # no longer ours: the hold stops it
        runs = {m: rid for m, (_, rid) in standings.items()}
        choice = pbt.decide(
            config,
            self.seed,
            member,
            step,
            {m: v for m, (v, _) in standings.items()},
            lambda m: store.run(runs[m]).params,
        )
        if choice is None:
            store.decide(claim, member, step, {"exploit": False}, None)
            return None
        parent = runs[choice.parent]
        if not has_checkpoint(self.opts, store, claim.sweep_id, parent):
            store.decide(claim, member, step, {"exploit": False, "no_checkpoint": True}, None)
            return None
        child = new_id()
        first_step, _ = store.last_step_and_value(parent, "_step")  # read before the copy: never past it
        try:
            reference = copy_checkpoint(self.opts, claim.sweep_id, parent, child)
        except OSError as exc:  # no copy, no exploit: the member goes on as it is
            log.warning("could not copy the top member's checkpoint: the member goes on", error=str(exc))
            shutil.rmtree(run_dir(self.root, claim.sweep_id, child), ignore_errors=True)
            store.decide(claim, member, step, {"exploit": False, "copy_failed": True}, None)
            return None
        info = self.info or {}
        nxt = NextRun(
            child,
            choice.params,
            {"member": member, "generation": int(info.get("generation", 0)) + 1, "parent": parent},
            first_step,
            reference,
        )
        decision = {"exploit": True, "parent": parent, "parent_member": choice.parent, "run": child}
        result = store.decide(claim, member, step, decision, nxt)
        if result != "ok":
            shutil.rmtree(run_dir(self.root, claim.sweep_id, child), ignore_errors=True)
        if result == "ok" or (result.startswith("decided:") and '"exploit": true' in result):
            return Pause(None, "pbt-exploited", "stop")
        return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
