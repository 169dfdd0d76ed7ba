"""``sweepd ui``: serve the read-only web dashboard of every sweep in the Redis (agent/ui/).

It binds 127.0.0.1 unless told otherwise, and any other address needs a token (``--token`` or
``$SWEEPD_UI_TOKEN``): a dashboard shows commands, parameters and host names, which a network
should not read unasked. The server is uvicorn, imported only here: the core install has none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import click

from sweepd.queue.errors import UserError

from ..daemon import secrets
from ..ui.hosts import is_loopback, weak_token
from .kit import redis_option, store_for

ENV_TOKEN = "SWEEPD_UI_TOKEN"
DEFAULT_PORT = 8765
INSTALL = 'the dashboard needs its extra: pip install "sweepd[ui]"'


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token, or with one a guess could find."""
    if is_loopback(host):
        return
    if not token:
        raise UserError(f"--host {host} is reachable from other machines: give --token or ${ENV_TOKEN}")
    weak = weak_token(token)
    if weak:
        raise UserError(
            f"--token {weak}: --host {host} is reachable from other machines "
            "(`python -c 'import secrets; print(secrets.token_urlsafe(24))'` makes one)"
        )


def url(host: str, port: int, path: str = "/") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="Port.")
@click.option(
    "--token",
    envvar=ENV_TOKEN,
    default=None,
    help=f"Required on every request (Authorization: Bearer, or ?token= once); needed off loopback. ${ENV_TOKEN}.",
)
@redis_option
def command(host: str, port: int, token: str | None, redis_url: str | None) -> None:
    """Serve a read-only web dashboard of every sweep: runs table, parallel coordinates, curves,
    parameter importance, queue, agents and preemptions, updated live.

    \b
    Example:
      sweepd ui                      # then open http://127.0.0.1:8765/
      SWEEPD_UI_TOKEN=s3cret sweepd ui --host 0.0.0.0
    """
    check_exposure(host, token or None)
    try:
        import uvicorn

        from ..ui.app import build
    except ImportError:
        raise UserError(INSTALL) from None
    store = store_for(secrets.take_inherited_url() or redis_url)
    app = build(store.reads, token or None)
    click.echo(f"sweepd ui: {url(host, port)}" + (" (token required)" if token else ""), err=True)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on", access_log=False
    )
    uvicorn.Server(config).run()


def _free(port: int) -> int:
    """``port`` if nothing listens on it here, else one the system picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def beside(sid: str, env: Mapping[str, str], redis_url: str) -> tuple[subprocess.Popen[Any], str]:
    """``sweepd run --ui``: the dashboard in a child process on 127.0.0.1 (port 8765 when free), and
    the URL of the sweep's page. The Redis URL reaches it through a pipe, never its environment
    (secrets.py). The caller ends it when the sweep is over."""
    port = _free(DEFAULT_PORT)
    child_env, fd = secrets.hand_over(redis_url, {k: v for k, v in env.items() if k != ENV_TOKEN})
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweepd.agent", "ui", "--host", "127.0.0.1", "--port", str(port)],
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    return proc, url("127.0.0.1", port, f"/sweeps/{sid}")


def end(proc: subprocess.Popen[Any]) -> None:
    """Stop the dashboard ``beside`` started (SIGTERM: uvicorn's clean shutdown)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
