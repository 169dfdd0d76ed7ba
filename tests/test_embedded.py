"""With no URL, sweepd starts a real Redis under the user's data directory once, and reuses it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support import run_sweepd, wait_until
from sweepd.queue.connections import ENV_URL


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "h"  # short: the unix socket path must stay under ~100 bytes
    yield home
    pid_file = home / "redis.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        wait_until(lambda: not (home / "redis.sock").exists(), timeout=15)


def test_embedded_redis_is_started_once_and_reused(tmp_path: Path, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_URL}
    env["SWEEPD_HOME"] = str(home)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1, 2]}\n")
    first = run_sweepd("sweep", "create", str(sweep), "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    pid = (home / "redis.pid").read_text()
    second = run_sweepd("sweep", "create", str(sweep), "--quiet", env=env)
    assert second.returncode == 0, second.stderr
    assert (home / "redis.pid").read_text() == pid  # the same server answered both
    client = redis.Redis(unix_socket_path=str(home / "redis.sock"))
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.zcard("sweepd:sweeps") == 2
    status = run_sweepd("status", first.stdout.strip(), "--json", env=env)
    assert status.returncode == 0 and '"runs": 0' in status.stdout
