"""Keeping the Redis URL, and the password in it, out of everything a training process can read.

A training process runs as the agent's user, so it can read the agent's ``/proc/<pid>/environ``:
the environment the agent was *started* with, which no later ``unsetenv`` erases. So an agent
given its URL in the environment (``SWEEPD_REDIS_URL``, or the path of a file holding it in
``SWEEPD_REDIS_URL_FILE``) replaces itself, before it connects, with the same command and an
environment without either: the URL reaches the new image through a pipe inherited as
``SWEEPD_REDIS_URL_FD``, read once and closed. The process keeps its pid (systemd, SLURM and
Kubernetes see nothing), and the child's environment never holds the names at all (launch.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from sweepd.queue import sentinel
from sweepd.queue.command import AGENT_ONLY_ENV
from sweepd.queue.connections import ENV_URL, ENV_URL_FILE, has_password
from sweepd.queue.sentinel import ENV_SENTINEL_PASSWORD

ENV_URL_FD = "SWEEPD_REDIS_URL_FD"


def take_inherited_url() -> str | None:
    """The URL handed over by ``hide_and_reexec``, once; None when there is none."""
    text = os.environ.pop(ENV_URL_FD, None)
    if text is None or not text.isdigit():
        return None
    fd = int(text)
    try:
        with os.fdopen(fd, "rb") as pipe:
            return pipe.read().decode().strip() or None
    except OSError:
        return None


def hand_over(url: str, environ: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """An environment for a child: ``environ`` without the URL's variables, and ``SWEEPD_REDIS_URL_FD``
    naming an inheritable pipe that holds the URL (returned too, to pass on and then close)."""
    read, write = os.pipe()
    os.write(write, url.encode())  # far below a pipe's buffer: never blocks
    os.close(write)
    os.set_inheritable(read, True)
    env = {k: v for k, v in environ.items() if k not in AGENT_ONLY_ENV}
    env[ENV_URL_FD] = str(read)
    return env, read


def hide_and_reexec(url: str) -> None:
    """Replace this process with the same command, the URL in a pipe instead of the environment.
    Returns only when there is nothing to hide (no password, or the URL is not in the environment,
    and no ``SWEEPD_SENTINEL_PASSWORD``, which then travels in the URL as ``sentinel_password``)."""
    sentinel_password = os.environ.get(ENV_SENTINEL_PASSWORD)
    if sentinel_password and sentinel.is_sentinel(url):  # one string carries both passwords
        url = sentinel.with_sentinel_password(url, sentinel_password)
    in_env = has_password(url) and any(os.environ.get(name) for name in (ENV_URL, ENV_URL_FILE))
    if not in_env and not sentinel_password:
        return
    env, _ = hand_over(url, os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "sweepd.agent", *sys.argv[1:]], env)
