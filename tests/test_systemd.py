"""The agent under systemd, as far as it can be without systemd as PID 1.

- The notify protocol end to end: a real agent (``sweepd agent``, a real Redis, ``tests/trainer.py``)
  talks to an AF_UNIX datagram socket the test binds, as systemd binds one for a ``Type=notify`` unit:
  READY=1 once it works the sweep, WATCHDOG=1 at half of ``WATCHDOG_USEC``, STOPPING=1 and
  EXTEND_TIMEOUT_USEC= when it is stopped while its run checkpoints.
- The shipped units' ``ExecStart=`` run as written: the environment file and ``Environment=`` lines
  read and substituted into the line the way systemd does, only the binary's path swapped for the
  installed console script.
- ``systemd-analyze verify`` on the shipped units (Debian's ``systemd`` package is installed when
  missing, where the test runs as root with apt-get).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from support import ROOT, TRAINER, SweepBench, apt_install, run_sweepd
from sweepd.queue import keys

SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = [SYSTEMD / "sweepd-agent.service", SYSTEMD / "sweepd-agent@.service"]
ENV_EXAMPLE = SYSTEMD / "agent.env.example"

WATCHDOG_USEC = 1_000_000  # a 1 s watchdog: pings are due every 0.5 s
# What systemd gives a service (no shell, no login): its default PATH, after the agent's own bin
# directory (bootstrap.sh puts the virtualenv first the same way).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- the service manager's end of the notify socket ------------------------------------------------------


class NotifySocket:
    """A bound AF_UNIX datagram socket, as systemd's, that keeps every message with its arrival time."""

    def __init__(self) -> None:
        # A short directory of its own: a socket path may have at most 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="sweepd-notify-"))
        self.path = self.dir / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.received: list[tuple[float, str]] = []

    def env(self, watchdog_usec: int | None = WATCHDOG_USEC) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def messages(self) -> list[str]:
        return [m for _, m in self.received]

    def times(self, message: str) -> list[float]:
        return [t for t, m in self.received if m == message]

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 60, what: str = "") -> list[str]:
        """Receive until ``done(messages)`` holds; fail the test at the deadline, showing what came."""
        deadline = time.monotonic() + timeout
        while not done(self.messages()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what or 'expected messages'} within {timeout}s; got {self.messages()}")
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))
        return self.messages()

    def drain(self) -> list[str]:
        """Whatever is still queued, without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
        except BlockingIOError:
            pass
        return self.messages()

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()


def count(message: str, at_least: int) -> Callable[[list[str]], bool]:
    return lambda messages: messages.count(message) >= at_least


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# --- a sweep of tests/trainer.py and agents on it ----------------------------------------------------------


@pytest.fixture
def bench_factory(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[Callable[[str], SweepBench]]:
    made: list[SweepBench] = []

    def make(params: str) -> SweepBench:
        made.append(SweepBench(tmp_path, cli_env, params))
        return made[-1]

    yield make
    for bench in made:
        bench.close()


def stopped(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return proc.returncode


# --- (a) the notify protocol, from a real agent -------------------------------------------------------------


def test_ready_comes_once_the_agent_works_the_sweep_then_the_watchdog_at_half_its_timeout(
    bench_factory: Callable[[str], SweepBench], notify: NotifySocket, r: redis.Redis
) -> None:
    bench = bench_factory("  steps: {value: 2000}\n")
    agent = bench.agent(env=notify.env())
    notify.wait_for(lambda m: bool(m), what="first message")
    first = notify.messages()[0]
    assert first == f"READY=1\nSTATUS=working sweep {bench.id}", notify.messages()
    # READY only once connected: by then the agent is registered with the sweep in Redis.
    assert r.zcard(keys.sweep_agents(bench.id)) == 1

    bench.ready()
    notify.wait_for(count("WATCHDOG=1", 12), timeout=60, what="12 watchdog pings")
    pings = notify.times("WATCHDOG=1")
    # Pacing, loosely (the median ignores a stall of this machine): about every half of the
    # watchdog's interval, never slower than that, and not a flood either.
    interval = WATCHDOG_USEC / 1e6 / 2
    median = statistics.median(gaps(pings))
    assert interval / 5 <= median <= interval, f"median gap {median:.3f}s; pings at {pings}"
    assert notify.messages().count("READY=1\nSTATUS=working sweep " + bench.id) == 1

    agent.send_signal(signal.SIGTERM)
    assert stopped(agent) == 0


def test_an_idle_agent_keeps_the_watchdog_at_half_its_timeout_too(
    bench_factory: Callable[[str], SweepBench], notify: NotifySocket
) -> None:
    bench = bench_factory("  steps: {value: 2000}\n")
    bench.agent()  # holds the only run: the sweep is not complete, and the next agent waits
    bench.ready()
    idle = bench.agent(env=notify.env())
    notify.wait_for(count("WATCHDOG=1", 6), timeout=60, what="6 watchdog pings")
    pings = notify.times("WATCHDOG=1")
    interval = WATCHDOG_USEC / 1e6 / 2
    median = statistics.median(gaps(pings))
    idle.send_signal(signal.SIGTERM)
    assert stopped(idle) == 0
    assert median <= interval, f"median gap {median:.3f}s while idle; pings at {pings}"


def test_sigterm_while_the_run_checkpoints_slowly_says_stopping_and_extends_the_timeout(
    bench_factory: Callable[[str], SweepBench], notify: NotifySocket, r: redis.Redis
) -> None:
    grace, checkpoint = 30.0, 4.0
    bench = bench_factory(f"  steps: {{value: 2000}}\n  slow_checkpoint: {{value: {checkpoint}}}\n")
    agent = bench.agent("--grace", str(grace), env=notify.env())
    rid, _ = bench.ready()[0]
    notify.wait_for(count("WATCHDOG=1", 2), what="watchdog pings while the run trains")
    agent.send_signal(signal.SIGTERM)  # what `systemctl stop` (KillSignal=SIGTERM) sends
    messages = notify.wait_for(
        lambda m: any(x.startswith("STOPPING=1") for x in m) and any(x.startswith("EXTEND_TIMEOUT_USEC=") for x in m),
        what="STOPPING=1 and EXTEND_TIMEOUT_USEC=",
    )
    stopping = next(i for i, m in enumerate(messages) if m.startswith("STOPPING=1"))
    extend = next(i for i, m in enumerate(messages) if m.startswith("EXTEND_TIMEOUT_USEC="))
    assert messages[0].startswith("READY=1") and stopping < extend, messages
    assert messages[stopping] == f"STOPPING=1\nSTATUS=preempted (signal): run {rid} checkpointing"
    usec = int(messages[extend].split("=", 1)[1])
    # Enough for what is left of the grace (less the moment since the signal), with room to requeue.
    assert (grace - 1) * 1e6 <= usec <= (grace + 60) * 1e6, usec
    # The checkpoint takes a while, and the watchdog goes on meanwhile: a cloud notice (not a
    # `systemctl stop`) leaves the unit active, with its watchdog armed, for all of the grace.
    notify.wait_for(count("WATCHDOG=1", messages.count("WATCHDOG=1") + 3), what="watchdog pings while checkpointing")
    assert agent.poll() is None, "the agent waits for the checkpoint"
    assert stopped(agent) == 0
    notify.drain()
    assert not any(m.startswith("READY=1") for m in notify.messages()[1:]), notify.messages()
    assert bench.events(rid)[-1]["event"] == "preempted"  # the checkpoint completed
    assert r.hget(keys.run(rid), "state") == b"queued"
    assert r.lindex(keys.rq_queue(bench.id), 0) == rid.encode()


@pytest.mark.parametrize("case", ["unknown sweep", "no Redis"])
def test_an_agent_that_cannot_work_the_sweep_never_says_ready(
    bench_factory: Callable[[str], SweepBench], notify: NotifySocket, case: str
) -> None:
    bench = bench_factory("  steps: {value: 5}\n")
    if case == "unknown sweep":
        agent = bench.agent(env=notify.env(), sweep_id="nosuchsweep")
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
        agent = bench.agent(env={**notify.env(), "SWEEPD_REDIS_URL": url})
    _, err = agent.communicate(timeout=60)
    assert agent.returncode not in (0, None), err
    assert not any(m.startswith("READY=1") for m in notify.drain()), notify.messages()


# --- (b) the units' ExecStart=, as systemd runs it --------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """The [Service] section: key -> values in order (systemd lets some keys repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def read_environment_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= as systemd reads it: KEY=VALUE lines; lines that start with # or ; and
    lines without = are skipped; whitespace around the value goes; a value wholly in '...' is taken as
    it is, one in "..." with backslash escapes undone; inner spaces stay (no word splitting here)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        env[key.strip()] = value
    return env


def expand_command_line(line: str, env: dict[str, str]) -> list[str]:
    """ExecStart= as systemd turns it into argv (systemd.service(5), "Command lines"): words split at
    whitespace with shell-like quoting; a word that is exactly ``$NAME`` becomes the variable's value
    split at whitespace (no word at all when unset or empty); ``${NAME}`` becomes its exact value,
    inside one word. Prefixes (``-@:+!``) and specifiers (``%i``) are not used by these units."""
    words = shlex.split(line)
    assert words and words[0].startswith("/"), f"ExecStart= should name an absolute path, no prefix: {line}"
    assert "%" not in line, f"a specifier in ExecStart= needs handling here: {line}"
    argv: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv += env.get(whole.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def test_expanding_a_command_line_follows_systemd_s_rules() -> None:
    env = {"ID": "a b", "ARGS": "--x 1  --y\t2", "EMPTY": ""}
    line = '/bin/tool run ${ID} $ARGS $EMPTY $UNSET "${UNSET}" pre-${ID}'
    assert expand_command_line(line, env) == ["/bin/tool", "run", "a b", "--x", "1", "--y", "2", "", "pre-a b"]


def test_reading_an_environment_file_follows_systemd_s_rules(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text('# c\n; c\n\nA=1\n  B = two words  \nC=\'x # y\'\nD="q\\"z"\nno equals sign\n')
    assert read_environment_file(path) == {"A": "1", "B": "two words", "C": "x # y", "D": 'q"z'}


def installed_sweepd() -> str:
    """The console script `pip install` made, which stands in for the unit's /usr/local/bin/sweepd."""
    found = Path(sys.executable).parent / "sweepd"
    path = str(found) if found.is_file() else shutil.which("sweepd")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("no installed `sweepd` console script next to this Python or on PATH: pip install -e .")
    return path


def environment_file_from_the_example(path: Path, values: dict[str, str]) -> None:
    """agent.env.example with its placeholders filled in (and the optional line turned on), as an
    operator does: the test fails if the example stops having one line for each of these."""
    text = ENV_EXAMPLE.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"^#?{key}=.*$", lambda _m, k=key, v=value: f"{k}={v}", text, flags=re.M)
        assert n == 1, f"agent.env.example should have one {key}= line"
    path.write_text(text)
    path.chmod(0o600)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_the_unit_s_exec_start_as_written_works_the_sweep_to_its_end(
    unit: Path, tmp_path: Path, redis_url: str, r: redis.Redis, notify: NotifySocket
) -> None:
    out, ckpt, home = tmp_path / "out", tmp_path / "ckpt", tmp_path / "home"
    for d in (out, home):
        d.mkdir()
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"method: grid\nprogram: {TRAINER}\nparameters:\n  steps: {{value: 5}}\n  k: {{values: [1, 2]}}\n"
    )
    made = run_sweepd("sweep", "create", str(config), "--quiet", env={**os.environ, "SWEEPD_REDIS_URL": redis_url})
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()

    settings = unit_settings(unit)
    env_file = tmp_path / "agent.env"
    agent_args = f"--notices none --heartbeat 2 --checkpoint-root {ckpt}"
    environment_file_from_the_example(
        env_file, {"SWEEPD_REDIS_URL": redis_url, "SWEEPD_SWEEP_ID": sid, "SWEEPD_AGENT_ARGS": agent_args}
    )
    # What systemd gives the service: its own small environment (nothing of this shell's), then
    # Environment=, then each EnvironmentFile= in order (a leading - : optional), which override it.
    env = {
        "PATH": f"{Path(sys.executable).parent}:{SYSTEMD_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "OUT_DIR": str(out),  # for tests/trainer.py only
    }
    for assignments in settings.get("Environment", []):
        for word in shlex.split(assignments):
            key, _, value = word.partition("=")
            env[key] = value
    files = {"/etc/sweepd/agent.env": env_file}
    for name in settings["EnvironmentFile"]:
        optional, name = name.startswith("-"), name.lstrip("-")
        if name in files:
            env.update(read_environment_file(files[name]))
        else:
            assert optional, f"{unit.name}: EnvironmentFile={name} is not optional and not known to this test"
    assert "SWEEPD_REDIS_URL" in env and "SWEEPD_SWEEP_ID" in env
    # systemd's notify socket and watchdog, from Type=notify and WatchdogSec=.
    (watchdog,) = settings["WatchdogSec"]
    env.update(notify.env(watchdog_usec=int(float(watchdog.rstrip("s")) * 1_000_000)))

    (exec_start,) = settings["ExecStart"]
    argv = expand_command_line(exec_start, env)
    assert argv[0] == "/usr/local/bin/sweepd", argv
    argv[0] = installed_sweepd()
    assert argv[1:] == ["agent", sid, *agent_args.split()]
    assert redis_url not in " ".join(argv), "the Redis URL never goes on a command line"

    # WorkingDirectory=~ : the service user's home.
    done = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert notify.drain()[0] == f"READY=1\nSTATUS=working sweep {sid}"
    states = [r.hget(keys.run(rid.decode()), "state") for rid in r.zrange(keys.sweep_runs(sid), 0, -1)]
    assert states == [b"finished", b"finished"]
    # The extra flags arrived, split into words: checkpoints went under --checkpoint-root.
    assert len(list((ckpt / sid).iterdir())) == 2


# --- (c) systemd-analyze verify ----------------------------------------------------------------------------


def systemd_analyze() -> str:
    """systemd-analyze, installed from Debian's `systemd` package when missing (root with apt-get only):
    a machine that cannot have it skips; one where apt-get is there but fails is a failure."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("systemd-analyze is not installed, and it cannot be installed here (needs root and apt-get)")
    code, output = apt_install(["systemd"])
    found = shutil.which("systemd-analyze")
    if code != 0 or not found:
        pytest.fail(f"installing systemd with apt-get failed (exit {code}):\n" + output[-6000:])
    return found


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_units(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    sweepd = installed_sweepd()
    copies = []
    for unit in UNITS:  # verify wants ExecStart='s binary to exist: point it at the installed one
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/usr/local/bin/sweepd", sweepd))
        copies.append(copy)
    done = subprocess.run([analyze, "verify", *map(str, copies)], capture_output=True, text=True, timeout=120)
    report = done.stdout + done.stderr
    # verify exits 0 even for an unknown key or a bad value: anything it says about our files counts.
    ours = [ln for ln in report.splitlines() if any(c.name in ln for c in copies)]
    assert done.returncode == 0 and not ours, report

    # And it does look: a misspelt key in a copy is reported.
    bad = tmp_path / "bad" / UNITS[0].name
    bad.parent.mkdir()
    bad.write_text(copies[0].read_text().replace("KillMode=mixed", "KillMode=mixed\nKilMode=mixed"))
    done = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True, timeout=120)
    assert "Unknown key" in done.stdout + done.stderr and "KilMode" in done.stdout + done.stderr
