"""The ``sweepd`` command line: thin wrappers over ``sweepd.queue`` and the agent loop.

A user's mistake is one line on stderr and exit code 2, with no traceback and nothing stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import click

from sweepd.queue import summary
from sweepd.queue.config import load_config
from sweepd.queue.connections import ENV_URL, connect, resolve_url
from sweepd.queue.errors import RedisUnavailable, SweepdError, UserError
from sweepd.queue.records import iso
from sweepd.queue.states import STATES
from sweepd.queue.store import Store

from . import logs
from .loop import Agent, Options
from .signals import SignalFlags, Waker, parse_signal

REDIS_HELP = f"Redis URL (redis://, rediss://, unix://); default ${ENV_URL}, else an embedded server."


class _Group(click.Group):
    """Turn sweepd's own errors into one clean line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"sweepd: error: {line}", err=True)
            sys.exit(exc.exit_code)
        except RedisUnavailable as exc:
            click.echo(f"sweepd: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except SweepdError as exc:
            click.echo(f"sweepd: error: {exc}", err=True)
            sys.exit(1)


def redis_option(f: Any) -> Any:
    return click.option("--redis-url", envvar=ENV_URL, default=None, help=REDIS_HELP)(f)


def _store(redis_url: str | None) -> Store:
    return Store(connect(redis_url))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweepd")
def main() -> None:
    """sweepd: W&B-style sweeps on Redis, for machines that can be taken away at any moment.

    \b
    Quick start (embedded Redis, one local agent):
      sweepd run examples/sweep.yaml --agents 2
    """


@main.group()
def sweep() -> None:
    """Create and manage sweeps."""


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
    store = _store(redis_url)
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
    Example:
      sweepd agent abc123de --count 10
    """
    logs.configure()
    store = _store(redis_url)
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
    store = _store(url)
    sid = store.create_sweep(config, name=name, seed=seed)
    click.echo(f"sweep {sid}: {agents} agent(s)", err=True)
    env = {**os.environ, ENV_URL: url}  # in the environment, not argv: no password in `ps`
    procs = [subprocess.Popen([sys.executable, "-m", "sweepd.agent", "agent", sid], env=env) for _ in range(agents)]
    codes = [p.wait() for p in procs]
    _print_status(store, sid)
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


def _status(store: Store, sid: str) -> dict[str, Any]:
    record, config = store.sweep(sid), store.config(sid)
    runs = store.runs(sid)
    queued = store.queued_ids(sid)
    agents = store.agents(sid)
    complete = store.is_complete(sid)
    return {
        "id": sid,
        "name": record.name,
        "method": config.method,
        "state": "finished" if complete and record.state == "running" else record.state,
        "complete": complete,
        "runs": len(runs),
        "run_cap": config.run_cap,
        "counts": summary.counts(runs),
        "queue_depth": len(queued),
        "queue_head": queued[0] if queued else None,
        "agents_alive": len(agents),
        "agents": agents,
        "metric": {"name": config.metric.name, "goal": config.metric.goal} if config.metric else None,
        "best_run": summary.best_json(config, runs),
        "recent_events": store.events(sid),
        "created_at": iso(record.created_at),
    }


def _print_status(store: Store, sid: str) -> None:
    s = _status(store, sid)
    click.echo(f"sweep {s['id']} ({s['name']}): {s['method']}, {s['state']}, {s['runs']} runs")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in s["counts"].items() if v))
    click.echo(f"  queue: {s['queue_depth']} (head: {s['queue_head'] or '-'}); agents alive: {s['agents_alive']}")
    for event in s["recent_events"][:5]:
        click.echo(f"  {iso(event['at'])}: run {event['run_id']} {event['event']} ({event['reason']})")
    best = s["best_run"]
    if best:
        click.echo(f"  best run: {best['id']} {best['metric']}={best['value']} {json.dumps(best['params'])}")


@main.command("status")
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
def status_cmd(sweep_id: str, as_json: bool, redis_url: str | None) -> None:
    """Counts by state, queue depth, agents alive and the best run of SWEEP_ID.

    \b
    Example:
      sweepd status abc123de --json
    """
    store = _store(redis_url)
    if as_json:
        click.echo(json.dumps(_status(store, sweep_id), indent=2))
    else:
        _print_status(store, sweep_id)


@main.command("runs")
@click.argument("sweep_id")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only runs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@redis_option
def runs_cmd(sweep_id: str, state: str | None, as_json: bool, redis_url: str | None) -> None:
    """The runs of SWEEP_ID with their state, attempt, params and metric summary.

    \b
    Example:
      sweepd runs abc123de --state failed --json
    """
    store = _store(redis_url)
    runs = [r for r in store.runs(sweep_id) if state is None or r.state == state]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in runs], indent=2))
        return
    for r in runs:
        code = "" if r.exit_code is None else f" exit={r.exit_code}"
        click.echo(f"{r.id}  {r.state:<10} attempt={r.attempt}{code}  {json.dumps(r.params)}  {json.dumps(r.summary)}")


@main.command("logs")
@click.argument("run_id")
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt.")
@redis_option
def logs_cmd(run_id: str, attempt: int | None, redis_url: str | None) -> None:
    """The kept output (stdout and stderr) of RUN_ID, every attempt in order.

    \b
    Example:
      sweepd logs k3j9x0qa --attempt 2
    """
    for line in _store(redis_url).logs(run_id, attempt):
        click.echo(line)


if __name__ == "__main__":
    main()
