"""``sweepd agent SWEEP_ID``: work a sweep until it is complete (the daemon is ``sweepd.agent.daemon``).

Every option's default is ``Options``'s: the command line keeps none of its own.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click
from click.core import ParameterSource

from sweepd.queue.connections import connect, holder_timeout, resolve_url
from sweepd.queue.errors import UserError
from sweepd.queue.pools import check_pool
from sweepd.queue.store import Store

from ..checkpoints import travel
from ..daemon import gpus, logs
from ..daemon.loop import Agent
from ..daemon.options import Options, check_writable
from ..daemon.secrets import hide_and_reexec, take_inherited_url
from ..daemon.signals import parse_signal
from .kit import redis_option


def _signal(ctx: click.Context, param: click.Parameter, value: str) -> signal.Signals:
    try:
        return parse_signal(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _signals(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[signal.Signals, ...]:
    return tuple(_signal(ctx, param, v) for v in value)


def agent_options(f: Any) -> Any:
    options = [
        click.option("--count", type=click.IntRange(min=1), default=None, help="Exit after N runs."),
        click.option(
            "--heartbeat",
            type=click.FloatRange(min=0.05),
            default=Options.heartbeat,
            show_default=True,
            help="Seconds between heartbeats; a run's lease lasts 3 heartbeats.",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=Options.grace,
            show_default=True,
            help="Seconds a preempted run gets to checkpoint before it is killed.",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(min=0),
            default=Options.max_retries,
            show_default=True,
            help="Requeue a failed or crashed run up to N times.",
        ),
        click.option(
            "--max-failures",
            type=click.IntRange(min=1),
            default=Options.max_failures,
            show_default=True,
            help="Stop the agent after N failed runs in a row.",
        ),
        click.option(
            "--fast-failures",
            type=click.IntRange(min=1),
            default=Options.fast_failures,
            show_default=True,
            help="Stop the agent after N failed runs within --fast-failure-window of its start.",
        ),
        click.option(
            "--fast-failure-window",
            type=click.FloatRange(min=0),
            default=Options.fast_failure_window,
            show_default=True,
            help="Seconds after start in which failures count as fast.",
        ),
        click.option(
            "--notices",
            type=click.Choice(["auto", "aws", "gcp", "azure", "none"]),
            default=Options.notices,
            show_default=True,
            help="Which cloud's preemption notices to poll (auto detects the cloud, quietly off-cloud).",
        ),
        click.option(
            "--notice-interval",
            type=click.FloatRange(min=0.05),
            default=Options.notice_interval,
            show_default=True,
            help="Seconds between polls of the cloud's metadata service.",
        ),
        click.option(
            "--notice-signal",
            "notice_signals",
            multiple=True,
            callback=_signals,
            help="Another signal that means preemption is coming (e.g. USR2 for SLURM's --signal); repeatable.",
        ),
        click.option(
            "--child-signal",
            default=Options.child_signal.name.removeprefix("SIG"),
            show_default=True,
            callback=_signal,
            help="The signal the training process gets when its run is preempted "
            "(TERM; a script with a W&B run gets INT, on which wandb saves its rows, unless this is given).",
        ),
        click.option(
            "--checkpoint-root",
            envvar="SWEEPD_CHECKPOINT_ROOT",
            default=None,
            help="Where runs' checkpoint directories live (SWEEPD_CHECKPOINT_DIR = ROOT/SWEEP/RUN); "
            "shared storage lets any machine resume any run. An object store (s3://BUCKET/PREFIX, gs://, "
            "az://, file:///PATH) makes checkpoints travel: snapshots uploaded, the latest restored on any machine.",
        ),
        click.option(
            "--checkpoint-cache",
            envvar="SWEEPD_CHECKPOINT_CACHE",
            default=None,
            metavar="DIR",
            help="With an object-store root: where runs' local working copies live "
            "(default: checkpoint-cache under SWEEPD_HOME).",
        ),
        click.option(
            "--checkpoint-sync",
            envvar="SWEEPD_CHECKPOINT_SYNC",
            type=click.FloatRange(min=0),
            default=Options.checkpoint_sync,
            show_default=True,
            metavar="SECONDS",
            help="With an object-store root: snapshot a run's checkpoints this often in the background "
            "(0: only when an attempt ends).",
        ),
        click.option(
            "--keep-checkpoints",
            envvar="SWEEPD_KEEP_CHECKPOINTS",
            type=click.IntRange(min=1),
            default=Options.keep_checkpoints,
            show_default=True,
            metavar="K",
            help="With an object-store root: committed snapshots kept per run (a finished run keeps its last).",
        ),
        click.option(
            "--metrics-port",
            envvar="SWEEPD_METRICS_PORT",
            type=click.IntRange(min=0, max=65535),
            default=None,
            help="Serve Prometheus metrics on this port at /metrics (0: any free port; default: off).",
        ),
        click.option(
            "--metrics-addr",
            envvar="SWEEPD_METRICS_ADDR",
            default=Options.metrics_addr,
            show_default=True,
            help="The address the metrics server listens on.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def gpu_options(f: Any) -> Any:
    """``--gpus`` and ``--gpus-per-run`` (``sweepd agent`` and ``sweepd run``): read as text, so a bad
    value is gpus.py's one-line error rather than click's usage text."""
    f = click.option(
        "--gpus-per-run",
        envvar="SWEEPD_GPUS_PER_RUN",
        default=None,
        metavar="K",
        help="Devices each run gets (default 1; it must divide --gpus).",
    )(f)
    return click.option(
        "--gpus",
        envvar="SWEEPD_GPUS",
        default=None,
        metavar="LIST|all",
        help="Hold a run per slot of these devices at once (0,1,2 or UUIDs; all: the inherited "
        "CUDA_VISIBLE_DEVICES, else nvidia-smi -L); each run's CUDA_VISIBLE_DEVICES is its slot's.",
    )(f)


def gpu_slots(given: str | None, per_run: str | None) -> tuple[tuple[str, ...], ...]:
    """The slots ``--gpus``/``--gpus-per-run`` ask for (GpuError: one line, exit 2)."""
    return gpus.slots(given, gpus.parse_per_run(per_run), os.environ)


@click.command("agent")
@click.argument("sweep_id", required=False)
@click.option(
    "--pool",
    envvar="SWEEPD_POOL",
    default=None,
    metavar="NAME",
    help="Work every sweep of pool NAME instead of one SWEEP_ID, in the pool's order; wait for work when it has none.",
)
@agent_options
@gpu_options
@redis_option
def command(
    sweep_id: str | None,
    pool: str | None,
    redis_url: str | None,
    gpus: str | None,
    gpus_per_run: str | None,
    **kw: Any,
) -> None:
    """Work SWEEP_ID: claim, launch and record runs until the sweep is complete; or, with --pool
    NAME, every sweep of the pool until the machine goes away.

    \b
    Examples:
      sweepd agent abc123de --count 10
      sweepd agent abc123de --metrics-port 9464   # Prometheus scrapes :9464/metrics
      sweepd agent abc123de --gpus all --gpus-per-run 2   # 8 GPUs: 4 runs at once, 2 GPUs each
      sweepd agent --pool lab --gpus all   # every sweep of pool `lab`, a run per GPU
    """
    if sweep_id is not None and click.get_current_context().get_parameter_source("pool") is ParameterSource.ENVIRONMENT:
        pool = None  # a SWEEP_ID given beats an inherited SWEEPD_POOL
    if (sweep_id is None) == (pool is None):
        raise UserError("give a SWEEP_ID or --pool NAME, not both" if sweep_id else "missing SWEEP_ID (or --pool NAME)")
    if pool is not None:
        check_pool(pool)
    slots = gpu_slots(gpus, gpus_per_run)  # before anything else: a bad list stores nothing
    logs.configure()
    url = take_inherited_url() or resolve_url(redis_url)
    hide_and_reexec(url)  # the URL out of this process's environment, before anything reads it
    if click.get_current_context().get_parameter_source("child_signal") is not ParameterSource.DEFAULT:
        kw["wandb_signal"] = None  # the signal asked for goes to every script, W&B's too
    options = Options(sweep_id=sweep_id or "", slots=slots, pool=pool or "", **kw)
    # Before any run is claimed: the checkpoint root (with an object store: the local cache).
    check_writable(options.checkpoints, "--checkpoint-cache" if options.checkpoint_url else "--checkpoint-root")
    travel.check_root(options)  # the store's backend is installed and the store takes a write
    # A Redis call may take at most a heartbeat (1 s at least): a hung call never delays fencing
    # much, and the idle wait (a blocking BLPOP) stays shorter than it.
    store = Store(connect(url, timeout=holder_timeout(options.heartbeat)))
    if sweep_id is not None:
        store.sweep(sweep_id)
    sys.exit(Agent(store, options).run(restore_signals=False))
