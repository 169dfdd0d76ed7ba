"""``sweepd``: the command line's root. Each command's code is in the module named after it
(``sweepd sweep ...`` in sweep.py, ``sweepd agent`` in agent.py, ``sweepd status`` in status.py, ...);
they are thin wrappers over ``sweepd.queue`` and the daemon.

A user's mistake is one line on stderr and exit code 2, with no traceback and nothing stored (kit.py).
"""

from __future__ import annotations

import click

from . import (
    agent,
    agents,
    check,
    checkpoints,
    enqueue,
    logs,
    plot,
    pool,
    reap,
    requeue,
    run,
    runs,
    status,
    stop,
    suggest,
    sweep,
    ui,
)
from .kit import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweepd")
def main() -> None:
    """sweepd: W&B-style sweeps on Redis, for machines that can be taken away at any moment.

    \b
    Example (a quick start: an embedded Redis, two local agents):
      sweepd run examples/sweep.yaml --agents 2
    """


main.add_command(sweep.group)
main.add_command(pool.group)
_COMMANDS = (
    run,
    agent,
    status,
    runs,
    logs,
    suggest,
    plot,
    enqueue,
    requeue,
    stop,
    reap,
    agents,
    check,
    checkpoints,
    ui,
)
for _module in _COMMANDS:
    main.add_command(_module.command)
