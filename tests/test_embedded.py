"""With no URL, sweepd starts a real Redis under the user's data directory once, and reuses it; the
server stops once unused, and one from another install (or one whose install was deleted) is not
taken for this install's."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from support import alive, run_sweepd, wait_until
from sweepd.queue.connections import ENV_SERVER, ENV_URL, server_binary


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "h"  # short: the unix socket path must stay under ~100 bytes
    yield home
    pid_file = home / "redis.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
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


def _env(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, ENV_SERVER)}
    return {**env, "SWEEPD_HOME": str(home), **more}


def _create(tmp_path: Path, env: dict[str, str]) -> str:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1, 2]}\n")
    done = run_sweepd("sweep", "create", str(sweep), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _server(home: Path) -> tuple[int, redis.Redis]:
    return int((home / "redis.pid").read_text()), redis.Redis(unix_socket_path=str(home / "redis.sock"))


def test_an_unused_embedded_server_stops_and_the_next_sweepd_starts_it_again(tmp_path: Path, home: Path) -> None:
    env = _env(home, SWEEPD_EMBEDDED_IDLE="1")
    sid = _create(tmp_path, env)
    pid, client = _server(home)
    client.ping()  # a client connected: the server stays
    deadline = time.monotonic() + 3  # a dozen of the keeper's looks (every 0.25 s at this period)
    while time.monotonic() < deadline:
        assert alive(pid)
        time.sleep(0.1)
    client.close()
    wait_until(lambda: not alive(pid), timeout=30)  # unused for a second: stopped
    status = run_sweepd("status", sid, "--json", env=env)
    assert status.returncode == 0 and '"runs": 0' in status.stdout, status.stderr  # its data kept
    assert _server(home)[0] != pid

    def mine() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if str(home) in " ".join(p.info["cmdline"] or [])]

    wait_until(lambda: len(mine()) == 2, timeout=15)  # the new server and its keeper: the first keeper went


def test_a_server_whose_install_was_deleted_is_replaced_by_this_install_s(tmp_path: Path, home: Path) -> None:
    old = tmp_path / "old-venv" / "valkey-server"
    old.parent.mkdir()
    shutil.copy2(server_binary(), old)
    _create(tmp_path, _env(home, SWEEPD_REDIS_SERVER=str(old)))
    pid, _ = _server(home)
    shutil.rmtree(old.parent)  # the clone and its .venv deleted; its server still holds the socket
    env = _env(home)
    done = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"sweepd: the embedded Redis at unix://{home / 'redis.sock'} was another install's (")
    assert "since deleted): stopped it; this install's starts on the same data" in done.stderr
    wait_until(lambda: not alive(pid), timeout=15)
    new_pid, client = _server(home)
    assert new_pid != pid and client.info("server")["executable"] == server_binary()
    assert client.zcard("sweepd:sweeps") == 2  # nothing lost in the swap
    again = run_sweepd("check", env=env)
    assert again.returncode == 0 and again.stderr == ""  # this install's own now: nothing to say


def test_another_install_s_server_in_use_is_used_and_said(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other-venv" / "valkey-server"
    other.parent.mkdir()
    shutil.copy2(server_binary(), other)
    _create(tmp_path, _env(home, SWEEPD_REDIS_SERVER=str(other)))
    pid, client = _server(home)
    client.ping()  # someone of the other install is using it
    done = run_sweepd("check", env=_env(home))
    assert done.returncode == 0, done.stderr
    assert f"is another install's ({other}, version " in done.stderr
    assert done.stderr.rstrip().endswith("1 client(s) use it, so this sweepd does too")
    assert _server(home)[0] == pid and alive(pid)
