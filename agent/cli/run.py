"""``sweepd run FILE``: the main job: create a sweep and run it to the end with local agents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from sweepd.queue.config import load_config
from sweepd.queue.connections import ENV_URL, resolve_url

from ..daemon.secrets import hide_and_reexec, take_inherited_url
from ..daemon.signals import SignalFlags, Waker
from .agent import gpu_options, gpu_slots
from .kit import redis_option, store_for
from .status import print_status


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--agents", type=click.IntRange(min=1), default=1, show_default=True, help="Local agents.")
@click.option("--name", default=None, help="A name for the sweep.")
@click.option("--seed", type=int, default=None, help="Seed of the random search.")
@gpu_options
@redis_option
def command(
    file: str,
    agents: int,
    name: str | None,
    seed: int | None,
    redis_url: str | None,
    gpus: str | None,
    gpus_per_run: str | None,
) -> None:
    """Create a sweep from FILE and run it to the end with N local agents; print the best run.

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
    click.echo(f"sweep {sid}: {agents} agent(s)", err=True)
    env = {**os.environ, ENV_URL: url}  # in the environment, not argv: no password in `ps`
    argv = [sys.executable, "-m", "sweepd.agent", "agent", sid, *gpu_args]
    procs = [subprocess.Popen(argv, env=env) for _ in range(1 if gpu_args else agents)]
    codes = _wait_forwarding_signals(procs)
    print_status(store, sid)
    sys.exit(max(128 - code if code < 0 else code for code in codes))  # killed by N: 128 + N, as a shell says


def _gpu_args(gpus: str | None, per_run: str | None) -> list[str]:
    """With ``--gpus``: one agent holding a run per slot (in place of ``--agents``), given the
    devices resolved here (``all`` read once, by this process)."""
    slots = gpu_slots(gpus, per_run)
    if not slots:
        return []
    return ["--gpus", ",".join(d for slot in slots for d in slot), "--gpus-per-run", str(len(slots[0]))]


def _wait_forwarding_signals(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """Wait for the local agents, passing SIGTERM/SIGINT on: each agent then requeues its run."""
    waker, flags = Waker(), SignalFlags()
    flags.install({signal.SIGTERM, signal.SIGINT}, waker)
    forwarded = 0
    try:
        while any(p.poll() is None for p in procs):
            for signum in flags.received[forwarded:]:
                forwarded += 1
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signum)
            waker.wait(0.2)
    finally:
        flags.detach()  # the handlers stay until the process ends: a late signal only gets recorded
        waker.close()
    return [p.returncode for p in procs]
