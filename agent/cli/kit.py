"""What every ``sweepd`` command shares: one-line errors with exit codes, and reaching Redis."""

from __future__ import annotations

import sys
from typing import Any

import click

from sweepd.queue.connections import ENV_URL, connect
from sweepd.queue.errors import RedisUnavailable, SweepdError, UserError
from sweepd.queue.store import Store

REDIS_HELP = (
    "Redis URL (redis://, rediss://, unix://, redis+sentinel://HOST:PORT,.../MASTER); "
    f"default ${ENV_URL}, else the file named by $SWEEPD_REDIS_URL_FILE, else an embedded server."
)


class Group(click.Group):
    """Turn sweepd's own errors into one clean line and an exit code: 2 for a user's mistake,
    3 when Redis cannot be reached, 1 otherwise. Never a traceback for those."""

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


def store_for(redis_url: str | None) -> Store:
    return Store(connect(redis_url))
