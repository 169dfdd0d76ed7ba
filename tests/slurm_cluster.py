"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd on loopback.

Everything lives in a private temporary directory: the munge key and socket, ``slurm.conf``, the
controller's state, the node's spool and every log. The daemons run in the foreground under
``subprocess.Popen`` and are stopped by their pids; every slurm command is pointed at the cluster
with ``SLURM_CONF``. Two partitions share the one node: ``low`` (PriorityTier=1, preempted by
requeue after ``GraceTime``) and ``high`` (PriorityTier=10, never preempted).

``ensure_slurm()`` installs Debian's packages when they are missing (root and apt-get only): a
machine that cannot have them skips, one where apt-get is there but fails is a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psutil
import pytest

from support import apt_install, free_port

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
MIN_CPUS = 2  # the node's CPUs: at least a two-task step's


def _missing() -> list[str]:
    return [name for name in (*DAEMONS, *COMMANDS) if _which(name) is None]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def ensure_slurm() -> None:
    """Make munged, slurmctld, slurmd and the client commands available, or skip/fail the test.

    The daemons run as root (SlurmUser=root): elsewhere the test skips. It also skips where SLURM is
    missing and cannot be installed (no apt-get); with apt-get at hand an install that fails is a
    failure, with apt's output, so CI cannot hide it behind a skip.
    """
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("a private SLURM cluster needs root (slurmd runs its jobs as SlurmUser=root)")
    if not _missing():
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"SLURM is not installed ({', '.join(_missing())} missing) and there is no apt-get")
    code, output = apt_install(list(PACKAGES))
    if code != 0 or _missing():
        pytest.fail(
            f"installing {' '.join(PACKAGES)} with apt-get failed (exit {code}; still missing: "
            f"{', '.join(_missing()) or 'nothing'}):\n" + output[-6000:],
            pytrace=False,
        )


class ClusterError(AssertionError):
    """A failure whose message already holds the cluster's diagnostics."""


class SlurmCluster:
    """One node, two partitions; ``start()`` returns once the node is idle, ``stop()`` ends it all."""

    def __init__(self, *, grace_time: int, send_user_signal: bool = False, kill_wait: int = 5) -> None:
        # A short path of its own: unix sockets (munge's, slurmstepd's in the spool) allow 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="sweepd-slurm-"))
        self.grace_time = grace_time
        self.send_user_signal = send_user_signal
        self.kill_wait = kill_wait
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge" / "munge.socket"
        cpus, self.memory = _hardware()
        # A run's step of two tasks (one CPU each) must fit in the agent's job, which takes the node: a
        # one-CPU machine claims two, which slurmd accepts with config_overrides (for testing only).
        self.cpus = max(cpus, MIN_CPUS)
        self.overrides = cpus < MIN_CPUS
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []  # more files for diagnostics(): a job's output, say (globs allowed)
        self.env = {**clean_env(os.environ), "SLURM_CONF": str(self.conf)}

    # --- the cluster -----------------------------------------------------------------------------

    def write_config(self) -> None:
        self.dir.chmod(0o711)  # munged wants every directory above its socket searchable by all
        for sub in ("munge", "state", "spool", "log"):
            (self.dir / sub).mkdir()
        (self.dir / "munge").chmod(0o711)
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        preempt = ""
        if self.send_user_signal:  # SlurmctldParameters before 23.02, PreemptParameters since
            if version() >= (23, 2):
                preempt = "PreemptParameters=send_user_signal\n"
            else:
                preempt = "SlurmctldParameters=preempt_send_user_signal\n"
        overrides = "SlurmdParameters=config_overrides\n" if self.overrides else ""
        self.conf.write_text(
            f"""\
ClusterName=sweepdtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.dir / "state"}
SlurmdSpoolDir={self.dir / "spool"}
SlurmctldPidFile={self.dir / "slurmctld.pid"}
SlurmdPidFile={self.dir / "slurmd.pid"}
SlurmctldLogFile={self.dir / "log" / "slurmctld.log"}
SlurmdLogFile={self.dir / "log" / "slurmd.log"}
SlurmctldDebug=debug
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
{preempt}{overrides}ReturnToService=2
KillWait={self.kill_wait}
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=300
SlurmctldTimeout=300
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory} State=UNKNOWN
PartitionName=low Nodes={self.node} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE \
GraceTime={self.grace_time}
PartitionName=high Nodes={self.node} MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
"""
        )

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        munge = self.dir / "munge"
        self._spawn(
            "munged",
            [
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={munge / 'munge.key'}",
                f"--log-file={self.dir / 'log' / 'munged.log'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        self.wait_for(self.munge_socket.exists, timeout, "munged never made its socket")
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.conf)])
        self.wait_for(lambda: self.ok("scontrol", "ping"), timeout, "slurmctld never answered `scontrol ping`")
        self._spawn("slurmd", ["-D", "-f", str(self.conf), "-N", self.node])
        self.wait_for(lambda: self.node_state() == "idle", timeout, "the node never became idle")

    def _spawn(self, name: str, args: list[str]) -> None:
        binary = _which(name)
        assert binary, f"{name} is not installed"
        out = (self.dir / "log" / f"{name}.out").open("wb")
        with out:
            proc = subprocess.Popen([binary, *args], stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.procs[name] = proc

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged by pid; remove the directory."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user", str(os.getuid()))
            with contextlib.suppress(AssertionError):
                self.wait_for(lambda: not self.jobs_alive(), timeout, "jobs still alive after scancel")
        for pid in self._leftovers():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _leftovers(self) -> list[int]:
        """Processes of this cluster's jobs that outlived them: slurmstepd (it outlives slurmd), found
        by its socket in our spool, and job processes that escaped proctrack/linuxproc (whose tree
        ends when a parent exits), found by our SLURM_CONF and a SLURM_JOB_ID in their environment."""
        spool, conf = str(self.dir / "spool"), str(self.conf)
        pids = []
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid():
                continue
            try:
                if (proc.info["cmdline"] or [""])[0].startswith("slurmstepd"):
                    if any(str(c.laddr).startswith(spool) for c in proc.net_connections(kind="unix")):
                        pids.append(proc.pid)
                    continue
                environ = proc.environ()
                if environ.get("SLURM_CONF") == conf and "SLURM_JOB_ID" in environ:
                    pids.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return pids

    def jobs_alive(self) -> bool:
        return bool(self.run("squeue", "-h", "-o", "%i").stdout.strip())

    # --- commands --------------------------------------------------------------------------------

    def run(
        self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        binary = _which(argv[0]) or argv[0]
        return subprocess.run(
            [binary, *argv[1:]],
            env={**self.env, **(env or {})},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *argv: str) -> bool:
        return self.run(*argv).returncode == 0

    def check(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        done = self.run(*argv, env=env, cwd=cwd)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}\n{self.diagnostics()}")
        return done.stdout

    def sbatch(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Submit; the job id (``123``; an array task is ``123_1``)."""
        return self.check("sbatch", "--parsable", *args, env=env, cwd=cwd).strip().split(";")[0]

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-p", "low", "-o", "%T").stdout.strip()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o`` as a dict (empty once the job is forgotten)."""
        done = self.run("scontrol", "show", "job", "-o", job_id)
        if done.returncode != 0 or not done.stdout.strip():
            return {}
        line = done.stdout.strip().splitlines()[0]
        return dict(re.findall(r"(\w[\w:/]*)=(\S*)", line))

    def wait_for(self, cond: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
        """Poll ``cond`` until it is truthy; at the deadline, or if a daemon died, fail with diagnostics."""
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:
                raise ClusterError(f"{what}: {', '.join(dead)} exited\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} (within {timeout:.0f} s)\n{self.diagnostics()}")
            time.sleep(interval)

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Add the cluster's diagnostics to any assertion that fails inside."""
        try:
            yield
        except ClusterError:
            raise
        except AssertionError as exc:
            raise ClusterError(f"{exc}\n{self.diagnostics()}") from None

    def diagnostics(self) -> str:
        parts = []
        if "slurmctld" in self.procs:
            for argv in (
                ("sinfo", "-N", "-l"),
                ("squeue", "-a", "-l"),
                ("scontrol", "show", "job"),
            ):
                done = self.run(*argv)
                parts.append(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
        for name, proc in self.procs.items():
            parts.append(f"{name}: pid {proc.pid}, exit {proc.poll()}")
        logs = sorted((self.dir / "log").glob("*"))
        for pattern in self.logs:
            logs += sorted(pattern.parent.glob(pattern.name))
        for log in logs:
            parts.append(f"--- {log.name} (last lines)\n" + "\n".join(_tail(log, 100)))
        return "\n".join(parts)


def clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without SLURM's variables: a test run inside a SLURM job must not pass on that job's
    (its partition, its job ID) to this cluster's commands and jobs."""
    prefixes = ("SLURM_", "SLURMD_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SINFO_")
    return {k: v for k, v in environ.items() if not k.startswith(prefixes)}


def _hardware() -> tuple[int, int]:
    """CPUs and MB of memory as slurmd sees them (``slurmd -C``): a node may claim no more."""
    done = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=30)
    found = dict(re.findall(r"(\w+)=(\S+)", done.stdout))
    cpus = int(found.get("CPUs", os.cpu_count() or 1))
    memory = int(found.get("RealMemory", psutil.virtual_memory().total // 2**20))
    return cpus, max(1, memory)


def version() -> tuple[int, int]:
    """SLURM's (major, minor) release, e.g. (22, 5) for 22.05.8."""
    done = subprocess.run([_which("slurmctld") or "slurmctld", "-V"], capture_output=True, text=True, timeout=30)
    match = re.search(r"(\d+)\.(\d+)", done.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# Lines the controller logs every second at SlurmctldDebug=debug, which would hide the rest.
NOISE = re.compile(r"sched: Running job scheduler|_attempt_backfill|debug[2-5]:")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return [str(exc)]
    return [line for line in text.splitlines() if not NOISE.search(line)][-lines:]


@contextlib.contextmanager
def slurm_cluster(*, grace_time: int, send_user_signal: bool = False) -> Iterator[SlurmCluster]:
    """SLURM installed (or the test skipped or failed), a cluster up; torn down on the way out."""
    ensure_slurm()
    with SlurmCluster(grace_time=grace_time, send_user_signal=send_user_signal) as cluster:
        yield cluster
