"""The ``sweepd`` command line: thin wrappers over ``sweepd.queue`` and the agent loop.

A user's mistake is one line on stderr and exit code 2, with no traceback and nothing stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import click

from sweepd.queue.config import load_config
from sweepd.queue.connections import ENV_URL, connect, resolve_url
from sweepd.queue.store import Store

from . import cli_health, cli_ops, cli_plot, cli_runs, cli_views, logs
from .clikit import Group, redis_option, store_for
from .loop import Agent, Options
from .signals import SignalFlags, Waker, parse_signal


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweepd")
def main() -> None:
    """sweepd: W&B-style sweeps on Redis, for machines that can be taken away at any moment.

    \b
    Example (a quick start: an embedded Redis, two local agents):
      sweepd run examples/sweep.yaml --agents 2
    """


@main.group()
def sweep() -> None:
    """Create and manage sweeps.

    \b
    Example:
      sweepd sweep create sweep.yaml
      sweepd sweep pause abc123de
    """


@sweep.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
@click.option("--seed", type=int, default=None, help="Seed of the random search (default: random).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the sweep ID.")
@redis_option
def sweep_create(file: str, name: str | None, seed: int | None, quiet: bool, redis_url: str | None) -> None:
    """Validate FILE (W&B sweep YAML or JSON) and create a sweep from it.

    \b
    Example:
      SWEEP=$(sweepd sweep create sweep.yaml --quiet)
      sweepd agent $SWEEP
    """
    config = load_config(file)  # before touching Redis: a bad config stores nothing
    store = store_for(redis_url)
    sid = store.create_sweep(config, name=name, seed=seed)
    if quiet:
        click.echo(sid)
        return
    for note in config.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"created sweep {sid} ({config.method}, {len(config.params)} parameters)")
    click.echo(f"start an agent with: sweepd agent {sid}")


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
            default=10.0,
            show_default=True,
            help="Seconds between heartbeats; a run's lease lasts 3 heartbeats.",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=110.0,
            show_default=True,
            help="Seconds a preempted run gets to checkpoint before it is killed.",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Requeue a failed or crashed run up to N times.",
        ),
        click.option(
            "--max-failures",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="Stop the agent after N failed runs in a row.",
        ),
        click.option(
            "--fast-failures",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Stop the agent after N failed runs within --fast-failure-window of its start.",
        ),
        click.option(
            "--fast-failure-window",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            help="Seconds after start in which failures count as fast.",
        ),
        click.option(
            "--notices",
            type=click.Choice(["auto", "aws", "gcp", "azure", "none"]),
            default="auto",
            show_default=True,
            help="Which cloud's preemption notices to poll (auto detects the cloud, quietly off-cloud).",
        ),
        click.option(
            "--notice-interval",
            type=click.FloatRange(min=0.05),
            default=5.0,
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
            default="TERM",
            show_default=True,
            callback=_signal,
            help="The signal the training process gets when its run is preempted.",
        ),
        click.option(
            "--checkpoint-root",
            envvar="SWEEPD_CHECKPOINT_ROOT",
            default=None,
            help="Where runs' checkpoint directories live (SWEEPD_CHECKPOINT_DIR = ROOT/SWEEP/RUN); "
            "shared storage lets any machine resume any run.",
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
            default="0.0.0.0",
            show_default=True,
            help="The address the metrics server listens on.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command("agent")
@click.argument("sweep_id")
@agent_options
@redis_option
def agent_cmd(sweep_id: str, redis_url: str | None, **kw: Any) -> None:
    """Work SWEEP_ID: claim, launch and record runs until the sweep is complete.

    \b
    Examples:
      sweepd agent abc123de --count 10
      sweepd agent abc123de --metrics-port 9464   # Prometheus scrapes :9464/metrics
    """
    logs.configure()
    # A Redis call may take at most a heartbeat (1 s at least): a hung call never delays fencing
    # much, and the idle wait (a blocking BLPOP) stays shorter than it.
    store = Store(connect(redis_url, timeout=min(10.0, max(1.0, kw["heartbeat"]))))
    store.sweep(sweep_id)
    if kw["checkpoint_root"] is None:
        del kw["checkpoint_root"]
    sys.exit(Agent(store, Options(sweep_id=sweep_id, **kw)).run())


@main.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--agents", type=click.IntRange(min=1), default=1, show_default=True, help="Local agents.")
@click.option("--name", default=None, help="A name for the sweep.")
@click.option("--seed", type=int, default=None, help="Seed of the random search.")
@redis_option
def run_cmd(file: str, agents: int, name: str | None, seed: int | None, redis_url: str | None) -> None:
    """Create a sweep from FILE and run it to the end with N local agents; print the best run.

    \b
    Example:
      sweepd run examples/sweep.yaml --agents 2
    """
    config = load_config(file)
    url = resolve_url(redis_url)
    store = store_for(url)
    sid = store.create_sweep(config, name=name, seed=seed)
    click.echo(f"sweep {sid}: {agents} agent(s)", err=True)
    env = {**os.environ, ENV_URL: url}  # in the environment, not argv: no password in `ps`
    procs = [subprocess.Popen([sys.executable, "-m", "sweepd.agent", "agent", sid], env=env) for _ in range(agents)]
    codes = _wait_forwarding_signals(procs)
    cli_views.print_status(store, sid)
    sys.exit(max(codes))


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
        flags.uninstall()
        waker.close()
    return [p.returncode for p in procs]


for _command in (*cli_views.COMMANDS, *cli_runs.COMMANDS, *cli_ops.COMMANDS, *cli_health.COMMANDS, *cli_plot.COMMANDS):
    main.add_command(_command)
for _name, _command in cli_ops.SWEEP_COMMANDS.items():
    sweep.add_command(_command, _name)


if __name__ == "__main__":
    main()
