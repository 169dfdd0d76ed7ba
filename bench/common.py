"""What the benchmarks share: private Redis servers, sweeps of tiny programs, agents, percentiles,
and the one table every script adds its rows to (figure, sweepd, baseline, ratio, target).

Every figure is shown next to a baseline measured in the same run, as a ratio: absolute times on a
shared machine drift from one run to the next, ratios much less.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from sweepd.queue.config import validate
from sweepd.queue.connections import server_binary
from sweepd.queue.store import Store

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


# the table --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: what is measured, sweepd's figure, the baseline's, and their ratio."""

    figure: str
    sweepd: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"


@dataclass
class Section:
    """What one benchmark script reports: rows for the main table, and its own detailed tables."""

    name: str
    rows: list[Row] = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0
    #: Figures another script may reuse (run.py hands dispatch's to the baselines).
    values: dict[str, float] = field(default_factory=dict)


HEADER = "| figure | sweepd | baseline | ratio | target |\n|---|---|---|---|---|"


def table(rows: Sequence[Row]) -> str:
    lines = [HEADER]
    lines += [f"| {r.figure} | {r.sweepd} | {r.baseline} | {r.ratio} | {r.target} |" for r in rows]
    return "\n".join(lines)


def show(section: Section) -> None:
    """Print what a script measured, as it does when run on its own: its rows of the table, then its
    detailed tables."""
    print(table(section.rows))
    print()
    print(section.detail)


def sized_main(doc: str, measure: Callable[[bool, int | None], Section], size: str, default: int) -> None:
    """The command line of a script whose one setting is how much it measures (``size``, such as
    ``--trials``, a whole number): ``--quick`` leaves that to ``measure``'s quick default."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(size, type=int, default=default, dest="size", metavar=size.removeprefix("--").upper())
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, None if args.quick else args.size))


def markdown(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain markdown table (a script's detailed figures)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def num(x: float, digits: int = 1) -> str:
    """A figure for the table: thousands separated, ``digits`` after the point (fewer when large)."""
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    """``a / b`` as the table shows it (with an ``x`` so that it reads as a factor)."""
    if b == 0 or a != a or b != b:
        return "n/a"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:,.0f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): the smallest value with p% of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# Redis ------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    work: Path
    proc: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis(
    *, cpus: set[int] | None = None, maxclients: int = 10000, in_memory: bool = False
) -> Iterator[Server]:
    """A Redis on a free loopback port in a temp dir, configured as production should be
    (append-only, fsync every second), stopped afterwards. ``cpus`` pins it to those cores;
    ``in_memory`` puts its directory (the append-only file) on a tmpfs where there is one, so that
    another program's disk traffic on a shared machine does not stall it."""
    shm = Path("/dev/shm")
    where = str(shm) if in_memory and shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="sweepd-bench-", dir=where) as tmp:
        work = Path(tmp)
        port = free_port()
        args = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        args += ["--maxclients", str(maxclients), "--loglevel", "warning"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            if cpus:
                os.sched_setaffinity(proc.pid, cpus)
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark's redis-server did not start")
                time.sleep(0.02)
            client.close()
            yield Server(f"redis://127.0.0.1:{port}/0", work, proc)
        finally:
            proc.terminate()
            proc.wait(15)


def redis_version(url: str) -> str:
    info: dict[str, Any] = redis.Redis.from_url(url).info("server")
    name = "valkey" if "valkey_version" in info else "redis"
    version = str(info.get("valkey_version") or info["redis_version"])
    return f"{name}-server {version}"


# sweeps and agents ------------------------------------------------------------------------------


def new_sweep(url: str, config: dict[str, Any], seed: int = 1) -> str:
    """Validate and store a sweep (what ``sweepd sweep create`` does, without a process start)."""
    r = redis.Redis.from_url(url)
    try:
        return str(Store(r).create_sweep(validate(config, source="bench"), seed=seed))
    finally:
        r.close()


def one_point(program: str) -> dict[str, Any]:
    """A grid of one point that runs ``program`` with this Python."""
    return {
        "method": "grid",
        "program": program,
        "command": [sys.executable, "${program}", "${args}"],
        "parameters": {"x": {"value": 1}},
    }


def bench_env(url: str, work: Path, **extra: str) -> dict[str, str]:
    """The environment of an agent under benchmark: its Redis, and its data under ``work``."""
    return {**os.environ, "SWEEPD_REDIS_URL": url, "SWEEPD_HOME": str(work), **extra}


def agent(env: dict[str, str], sid: str, *extra: str) -> subprocess.Popen[bytes]:
    """Start ``sweepd agent`` (cloud notices off: this machine is no cloud VM)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweepd.agent", "agent", sid, "--notices", "none", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (a machine that vanished)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)


def stop(procs: Sequence[subprocess.Popen[Any]]) -> None:
    """End what a benchmark started (its own processes only) and reap them."""
    for p in procs:
        if p.poll() is None:
            kill_tree(p.pid)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(10)


def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


# the machine ------------------------------------------------------------------------------------


def machine(redis_server: str) -> str:
    """One line on what the figures were measured on (no host name, no paths)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release().split('-')[0]}, "
        f"Python {platform.python_version()}, {redis_server}; load average at start {load}"
    )


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return rev + ("+" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
