"""Helpers the tests share (importable: pytest puts tests/ on sys.path, see pyproject)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from sweepd.queue.connections import server_binary

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], object], timeout: float = 30.0, interval: float = 0.02) -> object:
    """Poll ``cond`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {cond}")
        time.sleep(interval)


def start_redis(directory: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _ping(client), timeout=15)
    return proc


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def sweepd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweepd.agent", *args]


def run_sweepd(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sweepd_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class RedisServer:
    """A redis-server a test can stop and start again on the same port, with append-only persistence
    (what production needs): a restart loses nothing."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.dir, self.port, self.password = directory, free_port(), password
        self.proc: subprocess.Popen[bytes] | None = None
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password)
        wait_until(lambda: _ping(client), timeout=15)
        return self

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: the append-only file is flushed), as systemd would do."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None
