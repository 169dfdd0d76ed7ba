"""Where a run's time goes: the agent's own loop, run in this process over N runs of ``true``, with
each round trip, write and step timed on its own (exclusive of the steps inside it), beside the bare
loop's time per run (sweepd's ``Child``: spawn, wait, end) measured in the same run.

The steps the bare loop also takes (the spawn, the wait for the exit, the end: leftovers killed,
pumps stopped) are marked as such; the rest is what the agent adds to each run. Timing a call costs
a few microseconds, so the total here is a little above an untimed agent's.

    python bench/gap.py [--runs 400]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from bare import ARGS, bare
from common import markdown, new_sweep, private_redis

from sweepd.agent.daemon import attempt, channel, launch, loop, options, process, wandb_env, wandb_follow
from sweepd.agent.hold import hold
from sweepd.queue import next_run, operations, store

#: (object, attribute, what the line says, whether the bare loop takes the step too)
STEPS: list[tuple[Any, str, str, bool]] = [
    (next_run.NextRuns, "create_next", "create.lua: the run made from the search, held (round trip)", False),
    (operations.Operations, "claim", "claim.lua: the queue's head (round trip; skipped while the search leads)", False),
    (operations.Operations, "complete", "complete.lua: the exit recorded (round trip)", False),
    (launch, "write_params", "the params file written (mkdir, write, rename)", False),
    (wandb_env, "environment", "the W&B config file written", False),
    (launch, "environment", "the run's environment (a copy of the agent's, less its secrets)", False),
    (launch.Scratch, "take", "the attempt's directory taken", False),
    (launch.Scratch, "give", "the attempt's directory emptied", False),
    (channel.Channel, "__init__", "the script's socket opened", False),
    (channel.Channel, "close", "the script's socket closed", False),
    (hold.Hold, "guard", "lease guard and watchdog told of the run", False),
    (hold.Hold, "release", "lease guard and watchdog told it ended", False),
    (wandb_follow.Follower, "__init__", "W&B follower made", False),
    (wandb_follow.Follower, "finish", "W&B follower's final look", False),
    (attempt.Attempt, "_record", "the end recorded: exit-status table, log line, metrics", False),
    (process.Child, "__init__", "spawn (fork, exec, output pumps)", True),
    (attempt.Attempt, "_supervise", "wait for the exit (pidfd)", True),
    (process.Child, "end", "end: leftovers killed and reaped, pumps stopped", True),
]


UNIFORM = {"min": 0.0, "max": 1.0}  # as dispatch.py's sweep: one random float in ${args}


class Timer:
    """Exclusive time per step: a step's own time, less the timed steps it called."""

    def __init__(self) -> None:
        self.own: collections.Counter[str] = collections.Counter()
        self._stack: list[float] = []  # time spent in nested timed steps, per open step

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = self._stack.pop()
                self.own[label] += elapsed - nested
                if self._stack:
                    self._stack[-1] += elapsed

        return timed


@contextmanager
def timed_steps(timer: Timer) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _, _ in STEPS]
    for obj, name, label, _ in STEPS:
        setattr(obj, name, timer.wrap(getattr(obj, name), label))
    try:
        yield
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)


def through_agent(url: str, n: int, timer: Timer) -> float:
    """N runs of ``true`` through an agent in this process: seconds per run (its whole loop)."""
    sid = new_sweep(
        url,
        {
            "method": "random",
            "command": ["true", "${args}"],
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "run_cap": n,
        },
    )
    agent = loop.Agent(store.Store(redis.Redis.from_url(url)), options.Options(sweep_id=sid, notices="none"))
    with timed_steps(timer):
        start = time.perf_counter()
        code = agent.run()
        elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"gap: the agent exited {code}")
    return elapsed / n


def measure(runs: int = 400) -> str:
    """The accounting table (markdown): ms per run for each step, the agent's total, the bare loop's."""
    timer = Timer()
    with private_redis() as server, tempfile.TemporaryDirectory() as home:
        os.environ["SWEEPD_HOME"] = home
        per_run = through_agent(server.url, runs, timer)
        bare_rate, _ = bare(runs, 1, ["true", *ARGS])
    ms = {label: seconds / runs * 1000 for label, seconds in timer.own.items()}
    rows = [[label, f"{ms.get(label, 0.0):.3f}", "yes" if shared else ""] for _, _, label, shared in STEPS]
    timed = sum(ms.values())
    rows.append(["the rest: the loop's own Python, log lines, metrics", f"{per_run * 1000 - timed:.3f}", ""])
    added = sum(ms.get(label, 0.0) for _, _, label, shared in STEPS if not shared) + per_run * 1000 - timed
    rows.append([f"**the agent, per run** ({runs} runs, timed)", f"**{per_run * 1000:.3f}**", ""])
    rows.append(["of which the agent adds (not in the bare loop)", f"{added:.3f}", ""])
    rows.append(["the bare loop, per run (Child: spawn, wait, end), untimed", f"{1000 / bare_rate:.3f}", "yes"])
    return markdown(rows, ["step of each run", "ms per run", "bare loop too"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    print(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
