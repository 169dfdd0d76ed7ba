"""``sweepd run FILE``: the main job: create a sweep and run it to the end with local agents.

At a terminal it shows the live view (run_view.py) and the agents' output goes to files; with
``--verbose``, or when stdout is not a terminal, the agents' lines and their runs' output stream
through as they come. Signals are run_agents.py's; why runs failed, explain.py's.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from sweepd.queue.config import load_config
from sweepd.queue.connections import data_dir, resolve_url
from sweepd.queue.store import Store

from ..daemon.secrets import hide_and_reexec, take_inherited_url
from ..hold.backoff import REDIS_DOWN
from . import ui
from .agent import gpu_options, gpu_slots
from .kit import redis_option, store_for
from .parts import explain, held
from .parts.run_agents import LocalAgents, Supervisor
from .parts.run_view import RunView
from .status import print_status

WAIT = 0.2  # seconds between looks at the agents when nothing wakes this process
NOTHING_FINISHED = 1  # the exit code of a sweep that ended, not interrupted, with no run finished


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--agents", type=click.IntRange(min=1), default=1, show_default=True, help="Local agents.")
@click.option("--name", default=None, help="A name for the sweep.")
@click.option("--seed", type=int, default=None, help="Seed of the random search.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Stream the agents' log lines and the runs' output instead of the live view."
)
@click.option(
    "--ui", "with_ui", is_flag=True, help="Serve the web dashboard (sweepd ui) beside the sweep; print its URL."
)
@gpu_options
@redis_option
def command(
    file: str,
    agents: int,
    name: str | None,
    seed: int | None,
    verbose: bool,
    redis_url: str | None,
    gpus: str | None,
    gpus_per_run: str | None,
    with_ui: bool = False,
) -> None:
    """Create a sweep from FILE and run it to the end with N local agents; print the best run.

    At a terminal: a live view (progress, counts, agents, preemptions, best runs); the agents' logs
    go to files and a run's output to `sweepd logs RUN_ID`. Ctrl-C preempts the held runs (requeued
    at the front); a second Ctrl-C kills them now (requeued too).

    \b
    Example:
      sweepd run examples/sweep.yaml --agents 2
    """
    config = load_config(file)
    gpu_args = _gpu_args(gpus, gpus_per_run)  # a bad list is refused before the sweep is made
    url = take_inherited_url() or resolve_url(redis_url)
    hide_and_reexec(url)  # the URL out of this process's environment: its runs are its grandchildren
    store = store_for(url)
    sid = store.create_sweep(config, name=name, seed=seed)
    click.echo(f"sweep {sid}: {_agents_line(agents, gpu_args)}", err=True)
    live = sys.stdout.isatty() and not verbose
    log_dir = data_dir() / "logs" / sid if live else None
    sup = Supervisor()  # before the agents start: no signal finds this process without its handlers
    dashboard = ui.beside(sid, os.environ, url) if with_ui else None
    if dashboard is not None:
        click.echo(f"dashboard: {dashboard[1]}", err=True)
    try:
        local = LocalAgents(1 if gpu_args else agents, sid, os.environ, url, log_dir, gpu_args)  # URL: by a pipe
        try:
            was_held = _supervise(store, sid, sup, local, log_dir)
            codes = local.codes()
        finally:
            local.close()
    finally:
        sup.close()
        if dashboard is not None:
            ui.end(dashboard[0])
    exit_code = max(128 - code if code < 0 else code for code in codes)  # killed by N: 128 + N, as a shell says
    if sup.hung_up:
        sys.exit(exit_code)  # the terminal is gone: nothing can read a summary there
    print_status(store.reads, sid)
    if was_held is not None:
        for line in held.fates([store.run(rid) for rid in was_held], sid, killed=sup.killing):
            click.echo(line, err=True)
    runs = store.runs(sid)
    failures = explain.gather(store.reads, sid, codes, runs)
    if failures is not None:
        for line in explain.explain(failures):
            click.echo(line, err=True)
    if exit_code == 0 and not sup.preempting and not any(run.state == "finished" for run in runs):
        exit_code = NOTHING_FINISHED  # not interrupted, and nothing to show for it: a script sees it
    sys.exit(exit_code)


def _supervise(store: Store, sid: str, sup: Supervisor, local: LocalAgents, log_dir: Path | None) -> list[str] | None:
    """Wait for the agents, passing the user's signals on, drawing the view if there is one. The
    runs the agents held when they were told to preempt (None: they never were)."""
    view = RunView(store, sid, log_dir) if log_dir is not None else None
    was_held: list[str] | None = None
    with view or contextlib.nullcontext():
        while local.alive():
            moves = sup.wait(local, WAIT)
            if "preempt" in moves:
                was_held = _held(store, sid, local)
                if view is not None:
                    view.held(len(was_held))
            if view is not None:
                view.tick(sup, bool(moves))
    return was_held


def _held(store: Store, sid: str, local: LocalAgents) -> list[str]:
    with contextlib.suppress(*REDIS_DOWN):
        return held.held_by(store.reads, sid, local.pids)
    return []


def _gpu_args(gpus: str | None, per_run: str | None) -> list[str]:
    """With ``--gpus``: one agent holding a run per slot (in place of ``--agents``), given the
    devices resolved here (``all`` read once, by this process)."""
    slots = gpu_slots(gpus, per_run)
    if not slots:
        return []
    return ["--gpus", ",".join(d for slot in slots for d in slot), "--gpus-per-run", str(len(slots[0]))]


def _agents_line(agents: int, gpu_args: list[str]) -> str:
    if not gpu_args:
        return f"{agents} agent(s)"
    devices = gpu_args[1].split(",")
    return f"1 agent, {len(devices) // int(gpu_args[3])} GPU slot(s) ({gpu_args[1]})"
