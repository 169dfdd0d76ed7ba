"""What the benchmarks share: a private redis-server, sweeps of a tiny program, agents, and tables."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import free_port, start_redis  # noqa: E402


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, Path]]:
    """A redis-server on a free loopback port in a temp dir, stopped afterwards: (url, dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        server = start_redis(work, port)
        try:
            yield f"redis://127.0.0.1:{port}/0", work
        finally:
            server.terminate()
            server.wait(10)


def create_sweep(env: dict[str, str], work: Path, program: str, params: str = "  x: {value: 1}\n") -> str:
    config = work / f"sweep-{os.urandom(3).hex()}.yaml"
    config.write_text(f"method: grid\nprogram: {program}\nparameters:\n{params}")
    return subprocess.run(
        [sys.executable, "-m", "sweepd.agent", "sweep", "create", str(config), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def agent(env: dict[str, str], sid: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sweepd.agent", "agent", sid, "--notices", "none", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
