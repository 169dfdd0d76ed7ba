"""The deploy files (systemd, SLURM, Kubernetes, the bootstrap script) say what the agent needs.

They are checked as data (YAML, unit files, #SBATCH lines), their agent command lines are parsed by the
real CLI, and the shell in them is run with stand-ins for sweepd, systemctl and Python.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from support import ROOT, beside_python
from sweepd.agent.cli.agent import command as agent_cmd

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
UNITS = [DEPLOY / "systemd" / "sweepd-agent.service", DEPLOY / "systemd" / "sweepd-agent@.service"]
SBATCH = DEPLOY / "slurm" / "sweepd-agent.sbatch"
BOOTSTRAP = DEPLOY / "bootstrap.sh"
AGENT_MANIFESTS = ["agents-deployment.yaml", "agents-job.yaml"]


def cli_default(name: str) -> Any:
    return next(p.default for p in agent_cmd.params if p.name == name)


GRACE = float(cli_default("grace"))  # 110 s, the agent's default --grace


def parse_agent_argv(argv: list[str]) -> dict[str, Any]:
    """What `sweepd agent ...` would run with: parsed (and refused if wrong) by the real CLI."""
    assert argv[:2] == ["sweepd", "agent"], argv
    return dict(agent_cmd.make_context("agent", argv[2:]).params)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


# --- Kubernetes ---------------------------------------------------------------------------------------


def load_yaml(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def one(name: str, kind: str) -> dict[str, Any]:
    docs = [d for d in load_yaml(name) if d["kind"] == kind]
    assert len(docs) == 1, f"{name}: one {kind} expected"
    return docs[0]


def agent_container(name: str) -> dict[str, Any]:
    kind = "Deployment" if "deployment" in name else "Job"
    containers = one(name, kind)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "agent")


def secret_values() -> dict[str, str]:
    return dict(one("secret.yaml", "Secret")["stringData"])


def test_every_manifest_parses_and_kustomization_names_them() -> None:
    manifests = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert manifests == [
        "agents-deployment.yaml",
        "agents-job.yaml",
        "keda-scaledobject.yaml",
        "redis.yaml",
        "secret.yaml",
        "ui.yaml",
    ]
    for name in manifests:
        for doc in load_yaml(name):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], name
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    assert {"secret.yaml", "redis.yaml"} <= set(resources)
    assert len(set(resources) & set(AGENT_MANIFESTS)) == 1, "exactly one way of running agents at a time"
    text = (K8S / "kustomization.yaml").read_text()
    assert all(name in text for name in manifests), "the other agents' manifest is named as the alternative"


@pytest.mark.parametrize("name", AGENT_MANIFESTS)
def test_agents_get_more_time_to_stop_than_their_grace(name: str) -> None:
    kind = "Deployment" if "deployment" in name else "Job"
    pod = one(name, kind)["spec"]["template"]["spec"]
    argv = agent_argv(name)
    grace = float(argv[argv.index("--grace") + 1]) if "--grace" in argv else GRACE
    assert pod["terminationGracePeriodSeconds"] > grace


def agent_argv(name: str) -> list[str]:
    """The agent's argv in a manifest: the container's command, or the `sweepd agent` line of its shell."""
    container = agent_container(name)
    command = container["command"] + container.get("args", [])
    if command[:2] == ["/bin/sh", "-c"]:
        line = next(ln for ln in command[2].splitlines() if ln.startswith("sweepd agent "))
        return shlex.split(line.rstrip("&").replace('"$SWEEPD_SWEEP_ID"', "$(SWEEPD_SWEEP_ID)"))
    return list(command)


@pytest.mark.parametrize("name", AGENT_MANIFESTS)
def test_agents_run_sweepd_agent_on_the_sweep_with_options_the_cli_takes(name: str) -> None:
    argv = agent_argv(name)
    assert argv[:3] == ["sweepd", "agent", "$(SWEEPD_SWEEP_ID)"]
    params = parse_agent_argv(argv)
    assert params["sweep_id"] == "$(SWEEPD_SWEEP_ID)"
    env = {e["name"]: e for e in agent_container(name)["env"]}
    assert "value" in env["SWEEPD_SWEEP_ID"]


@pytest.mark.parametrize("name", AGENT_MANIFESTS)
def test_agents_read_the_redis_url_from_the_secret_and_no_password_is_in_their_manifest(name: str) -> None:
    env = {e["name"]: e for e in agent_container(name)["env"]}
    ref = env["SWEEPD_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    secret = one("secret.yaml", "Secret")
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert "value" not in env["SWEEPD_REDIS_URL"]
    password = urlsplit(secret_values()["SWEEPD_REDIS_URL"]).password
    assert password
    text = (K8S / name).read_text()
    assert password not in text
    assert "redis://" not in text and "rediss://" not in text
    assert not any(re.search("PASSWORD|URL", n) and "value" in e for n, e in env.items())


@pytest.mark.parametrize("name", AGENT_MANIFESTS)
def test_agents_have_resource_requests_and_limits(name: str) -> None:
    resources = agent_container(name)["resources"]
    for key in ("cpu", "memory"):
        assert resources["requests"][key] and resources["limits"][key]


def test_the_job_is_a_work_queue_that_preemptions_do_not_use_up() -> None:
    job = one("agents-job.yaml", "Job")
    spec = job["spec"]
    assert spec["parallelism"] >= 1
    assert "completions" not in spec
    assert spec["backoffLimit"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert any(
        r["action"] == "Ignore" and any(c["type"] == "DisruptionTarget" for c in r.get("onPodConditions", []))
        for r in rules
    )
    replaced = [r for r in rules if r["action"] == "Ignore" and "onExitCodes" in r]
    assert replaced and replaced[0]["onExitCodes"]["values"] == [75]


def job_script() -> str:
    command = agent_container("agents-job.yaml")["command"] + agent_container("agents-job.yaml")["args"]
    assert command[:2] == ["/bin/sh", "-c"] and len(command) == 3
    return str(command[2])


def test_the_job_s_shell_has_nothing_kubernetes_would_expand() -> None:
    assert "$(" not in job_script()


@pytest.fixture
def fake_sweepd(tmp_path: Path) -> dict[str, str]:
    """A `sweepd` stand-in: `agent` logs its argv and exits $FAKE_EXIT (or waits for SIGTERM with
    $FAKE_WAIT); `status --json` says the sweep is complete or not ($FAKE_COMPLETE)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(
        bin_dir / "sweepd",
        """\
        log=$FAKE_LOG
        if [[ $1 == agent ]]; then
            echo "argv: $*" >>"$log"
            echo "url: ${SWEEPD_REDIS_URL:-}" >>"$log"
            if [[ -n ${FAKE_WAIT:-} ]]; then
                trap 'echo "got TERM" >>"$log"; exit 0' TERM
                touch "$FAKE_WAIT"
                while :; do sleep 0.05; done
            fi
            exit "${FAKE_EXIT:-0}"
        fi
        if [[ $1 == status ]]; then
            echo "status: $*" >>"$log"
            printf '{"id": "s", "complete": %s}\\n' "${FAKE_COMPLETE:-true}"
        fi
        """,
    )
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
        "SWEEPD_SWEEP_ID": "sw1",
    }


@pytest.mark.parametrize(
    ("agent_exit", "complete", "expected"),
    [(0, "true", 0), (0, "false", 75), (1, "false", 1), (2, "false", 2)],
)
def test_the_job_s_shell_turns_an_early_exit_0_into_75(
    fake_sweepd: dict[str, str], agent_exit: int, complete: str, expected: int
) -> None:
    env = {**fake_sweepd, "FAKE_EXIT": str(agent_exit), "FAKE_COMPLETE": complete}
    done = subprocess.run(["sh", "-c", job_script()], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == expected, done.stderr
    log = Path(env["FAKE_LOG"]).read_text()
    assert "argv: agent sw1 --grace 110" in log
    assert ("status: status sw1 --json" in log) == (agent_exit == 0)


def test_the_job_s_shell_passes_sigterm_to_the_agent(fake_sweepd: dict[str, str], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    env = {**fake_sweepd, "FAKE_WAIT": str(ready), "FAKE_COMPLETE": "false"}
    proc = subprocess.Popen(["sh", "-c", job_script()], env=env)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 75  # preempted: the agent requeued its run; the Job starts another pod
    assert "got TERM" in Path(env["FAKE_LOG"]).read_text()


def test_redis_keeps_an_append_only_file_on_a_volume_and_reads_its_password_from_the_secret() -> None:
    sts = one("redis.yaml", "StatefulSet")
    service = one("redis.yaml", "Service")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container.get("command", []) + container.get("args", [])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert service["metadata"]["name"] == sts["spec"]["serviceName"]
    url = urlsplit(secret_values()["SWEEPD_REDIS_URL"])
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    conf = secret_values()["redis.conf"]
    assert f"requirepass {url.password}" in conf.splitlines()
    assert url.password and url.password not in (K8S / "redis.yaml").read_text()
    (config_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert config_volume["secret"]["secretName"] == one("secret.yaml", "Secret")["metadata"]["name"]


def pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text()))


def test_a_non_editable_install_gets_every_package() -> None:
    """The image and bootstrap.sh install with `pip install` (not -e): a package left out of
    pyproject.toml's list would be missing there, and only there."""
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("agent", "queue"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                rel = init.parent.relative_to(ROOT / top)
                found.add(".".join(["sweepd", top, *rel.parts]))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


# --- systemd --------------------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd reads it: sections of (key, value), repeated keys kept in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}: keep every setting on one line: {line}"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}: not key=value: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def service(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in parse_unit(path)["Service"]:
        out.setdefault(key, []).append(value)
    return out


def seconds(value: str) -> float:
    """systemd time spans as these units write them: 150, 150s, 2min 30s."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|s|m|h)?", value):
        total += float(number) * {"": 1, "s": 1, "min": 60, "m": 60, "h": 3600}[unit]
    return total


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_are_notify_services_that_stop_after_the_agent_s_grace(unit: Path) -> None:
    s = service(unit)
    single = {k: v[-1] for k, v in s.items()}
    assert single["Type"] == "notify"
    assert single["NotifyAccess"] == "main"
    assert single["KillMode"] == "mixed"
    assert single["KillSignal"] == "SIGTERM"
    assert seconds(single["TimeoutStopSec"]) > GRACE
    assert single["Restart"] == "on-failure"
    assert seconds(single["RestartSec"]) == 5
    assert seconds(single["WatchdogSec"]) == 60
    assert single["User"] == "sweepd"
    assert s["EnvironmentFile"][0] == "/etc/sweepd/agent.env"
    assert single.get("ProtectHome", "no") in ("no", "false"), "checkpoints often live in a home directory"
    assert "PrivateDevices" not in s and "DeviceAllow" not in s and "ProtectClock" not in s, "hides the GPUs"
    assert parse_unit(unit)["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_run_sweepd_agent_with_the_sweep_from_the_environment_file(unit: Path) -> None:
    (exec_start,) = service(unit)["ExecStart"]
    assert "redis" not in exec_start.lower(), "the Redis URL never goes on a command line"
    words = shlex.split(exec_start)
    assert words[:3] == ["/usr/local/bin/sweepd", "agent", "${SWEEPD_SWEEP_ID}"]
    # systemd puts the value of ${VAR} in one argument and splits $VAR at spaces (none when unset).
    argv = ["sweepd"] + [w.replace("${SWEEPD_SWEEP_ID}", "abc123") for w in words[1:] if w != "$SWEEPD_AGENT_ARGS"]
    params = parse_agent_argv(argv)
    assert params["sweep_id"] == "abc123"
    assert seconds(service(unit)["TimeoutStopSec"][-1]) > params["grace"]
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "agent.env.example").read_text().splitlines()
        if line[:1].isalpha()
    )
    assert {"SWEEPD_REDIS_URL", "SWEEPD_SWEEP_ID"} <= set(example)


def test_the_template_is_the_single_unit_plus_a_file_per_instance() -> None:
    single, template = (service(u) for u in UNITS)
    extra = template["EnvironmentFile"].pop()
    assert extra == "-/etc/sweepd/agent-%i.env"
    assert single == template


# --- shell: bash -n, shellcheck ------------------------------------------------------------------------


@pytest.mark.parametrize("script", [BOOTSTRAP, SBATCH], ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert script.read_text().splitlines()[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in script.read_text()


@pytest.mark.skipif(
    beside_python("shellcheck") is None, reason="shellcheck is in the dev extra: pip install -e '.[dev]'"
)
@pytest.mark.parametrize("script", [BOOTSTRAP, SBATCH], ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script: Path) -> None:
    command = [str(beside_python("shellcheck")), "--shell=bash", str(script)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


# --- SLURM ----------------------------------------------------------------------------------------------


def sbatch_options() -> list[str]:
    return [ln.split(None, 1)[1].strip() for ln in SBATCH.read_text().splitlines() if ln.startswith("#SBATCH ")]


def test_the_batch_script_is_requeued_and_warned_before_its_grace_runs_out() -> None:
    options = sbatch_options()
    assert "--requeue" in options
    assert "--open-mode=append" in options
    assert any(re.fullmatch(r"--array=1-\d+", o) for o in options)
    assert any(o.startswith("--partition=") for o in options) and any(o.startswith("--time=") for o in options)
    (notice,) = [o for o in options if o.startswith("--signal=")]
    match = re.fullmatch(r"--signal=B:USR2@(\d+)", notice)
    assert match, notice
    argv = sbatch_agent_argv()
    params = parse_agent_argv(argv)
    assert [s.name for s in params["notice_signals"]] == ["SIGUSR2"]
    assert params["grace"] < int(match.group(1)), "the agent must be done before the time limit"
    header = SBATCH.read_text()
    for setting in ("PreemptType=preempt/partition_prio", "PreemptMode=REQUEUE", "GraceTime", "send_user_signal"):
        assert setting in header
    assert "SLURM_RESTART_COUNT" in header


def sbatch_agent_argv() -> list[str]:
    (line,) = [ln for ln in SBATCH.read_text().splitlines() if ln.startswith("sweepd agent ")]
    words = shlex.split(line.rstrip(" &"))  # the sweep ID and the optional extra flags filled in
    return ["abc123" if w == "$sweep_id" else w for w in words if w != "${extra_args[@]}"]


def run_sbatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SBATCH), *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_batch_script_reads_the_url_from_a_private_file_and_execs_the_agent(
    fake_sweepd: dict[str, str], tmp_path: Path
) -> None:
    env_file = tmp_path / "agent.env"
    url = "rediss://:p&ss$word@redis.example:6380/0?ssl_cert_reqs=required&x=1"
    env_file.write_text(f"# a comment\nSWEEPD_REDIS_URL='{url}'\n\nSWEEPD_AGENT_ARGS=--max-retries 2\n")
    env_file.chmod(0o600)
    env = {**fake_sweepd, "SWEEPD_ENV_FILE": str(env_file), "SLURM_RESTART_COUNT": "2"}
    env.pop("SWEEPD_SWEEP_ID")
    done = run_sbatch(env, "sw9")
    assert done.returncode == 0, done.stderr
    log = Path(env["FAKE_LOG"]).read_text().splitlines()
    assert log == ["argv: agent sw9 --notice-signal USR2 --grace 100 --max-retries 2", f"url: {url}"]
    assert "requeued 2 times" in done.stderr

    env_file.chmod(0o644)
    done = run_sbatch(env, "sw9")
    assert done.returncode == 2 and "chmod 600" in done.stderr

    env_file.chmod(0o600)
    done = run_sbatch(env)
    assert done.returncode == 2 and "no sweep" in done.stderr


# --- bootstrap.sh ---------------------------------------------------------------------------------------


@pytest.fixture
def bootstrap_env(tmp_path: Path) -> dict[str, str]:
    """bootstrap.sh with its root in tmp_path and stand-ins for systemctl, useradd and Python."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "calls"
    write_script(
        stubs / "systemctl",
        """\
        echo "systemctl $*" >>"$STUB_LOG"
        if [[ $1 == list-units && -f $STUB_UNITS ]]; then cat "$STUB_UNITS"; fi
        """,
    )
    write_script(stubs / "id", "[[ -f $STUB_DIR/user ]]\n")
    write_script(stubs / "useradd", 'echo "useradd $*" >>"$STUB_LOG"; touch "$STUB_DIR/user"\n')
    write_script(stubs / "usermod", 'echo "usermod $*" >>"$STUB_LOG"\n')
    write_script(stubs / "getent", "exit 2\n")
    write_script(
        stubs / "python3",
        """\
        if [[ $1 == -m && $2 == venv ]]; then
            mkdir -p "$3/bin"
            printf '#!/usr/bin/env bash\\necho "venv-python $*" >>"$STUB_LOG"\\n' >"$3/bin/python"
            printf '#!/bin/sh\\nexit 0\\n' >"$3/bin/sweepd"
            chmod +x "$3/bin/python" "$3/bin/sweepd"
        fi
        """,
    )
    return {
        **os.environ,
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "SWEEPD_BOOTSTRAP_ROOT": str(tmp_path / "root"),
        "STUB_LOG": str(log),
        "STUB_DIR": str(stubs),
        "STUB_UNITS": str(tmp_path / "units"),
        "SWEEPD_REDIS_URL": "redis://:s3cret@redis.example:6379/0",
    }


def run_bootstrap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BOOTSTRAP), "--python", "python3", *args], env=env, capture_output=True, text=True, timeout=60
    )


def calls(env: dict[str, str]) -> list[str]:
    path = Path(env["STUB_LOG"])
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


def test_bootstrap_installs_n_agents_and_a_private_env_file(bootstrap_env: dict[str, str]) -> None:
    env = bootstrap_env
    root = Path(env["SWEEPD_BOOTSTRAP_ROOT"])
    done = run_bootstrap(env, "--sweep", "sw1", "--agents", "3", "--pin-gpus", "--workdir", "/srv/train")
    assert done.returncode == 0, done.stderr
    agent_env = root / "etc/sweepd/agent.env"
    assert stat.S_IMODE(agent_env.stat().st_mode) == 0o600
    assert "SWEEPD_REDIS_URL='redis://:s3cret@redis.example:6379/0'" in agent_env.read_text().splitlines()
    assert "SWEEPD_SWEEP_ID='sw1'" in agent_env.read_text().splitlines()
    assert (root / "etc/sweepd/agent-3.env").read_text().splitlines()[-1] == "CUDA_VISIBLE_DEVICES=2"
    installed = root / "etc/systemd/system/sweepd-agent@.service"
    assert installed.read_text() == UNITS[1].read_text()
    dropins = root / "etc/systemd/system/sweepd-agent@.service.d"
    assert "WorkingDirectory=/srv/train" in (dropins / "workdir.conf").read_text()
    # The virtualenv first on systemd's PATH: a sweep's ${interpreter} is the Python sweepd is in.
    (path,) = [ln for ln in (dropins / "venv.conf").read_text().splitlines() if ln.startswith("Environment=PATH=")]
    assert path.split("=", 2)[2].split(":")[:2] == ["/opt/sweepd/venv/bin", "/usr/local/sbin"]
    assert os.readlink(root / "usr/local/bin/sweepd") == str(root / "opt/sweepd/venv/bin/sweepd")
    made = calls(env)
    assert any(c.startswith("useradd --system") and c.endswith(" sweepd") for c in made)
    assert any(c.startswith("venv-python -m pip install") and " sweepd" in c for c in made)
    units = "sweepd-agent@1.service sweepd-agent@2.service sweepd-agent@3.service"
    assert [c for c in made if c.startswith("systemctl")] == [
        "systemctl daemon-reload",
        "systemctl list-units --all --plain --no-legend sweepd-agent@*.service",
        f"systemctl enable {units}",
        f"systemctl restart {units}",
    ]
    assert "s3cret" not in done.stderr + done.stdout

    # Again with nothing changed: the agents are started if need be, not restarted.
    done = run_bootstrap(env, "--sweep", "sw1", "--agents", "3", "--pin-gpus", "--workdir", "/srv/train")
    assert done.returncode == 0, done.stderr
    made = calls(env)
    assert f"systemctl start {units}" in made and not any(c.startswith("useradd") for c in made)

    # Fewer agents: the extra one is stopped and disabled.
    Path(env["STUB_UNITS"]).write_text(
        "".join(f"sweepd-agent@{i}.service loaded active running sweepd agent {i}\n" for i in (1, 2, 3))
    )
    done = run_bootstrap(env, "--sweep", "sw1", "--agents", "2", "--pin-gpus", "--workdir", "/srv/train")
    assert done.returncode == 0, done.stderr
    made = calls(env)
    assert "systemctl disable --now sweepd-agent@3.service" in made
    assert "systemctl start sweepd-agent@1.service sweepd-agent@2.service" in made


@pytest.mark.parametrize(
    ("args", "env_change", "message"),
    [
        (["--sweep", "sw1", "--redis-url", "redis://:x@h/0"], {}, "no --redis-url"),
        (["--sweep", "sw1"], {"SWEEPD_REDIS_URL": ""}, "no Redis URL"),
        (["--sweep", "sw1"], {"SWEEPD_REDIS_URL": "redis://:it's@h/0"}, "must not contain"),
        (["--sweep", "sw1"], {"SWEEPD_REDIS_URL": "http://h/"}, "must start with"),
        ([], {}, "no sweep"),
        (["--sweep", "a b"], {}, "not a sweep ID"),
        (["--sweep", "sw1", "--agents", "0"], {}, "positive integer"),
        (["--sweep", "sw1", "--bogus"], {}, "unknown argument"),
    ],
)
def test_bootstrap_refuses_bad_input_before_changing_anything(
    bootstrap_env: dict[str, str], args: list[str], env_change: dict[str, str], message: str
) -> None:
    env = {**bootstrap_env, **env_change}
    done = run_bootstrap(env, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not Path(env["SWEEPD_BOOTSTRAP_ROOT"]).exists()
    assert calls(env) == []


def test_bootstrap_reads_the_url_from_a_file(bootstrap_env: dict[str, str], tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("redis://:from-file@redis.example:6379/0\n")
    env = {**bootstrap_env, "SWEEPD_REDIS_URL": ""}
    done = run_bootstrap(env, "--sweep", "sw1", "--redis-url-file", str(url_file))
    assert done.returncode == 0, done.stderr
    text = (Path(env["SWEEPD_BOOTSTRAP_ROOT"]) / "etc/sweepd/agent.env").read_text()
    assert "SWEEPD_REDIS_URL='redis://:from-file@redis.example:6379/0'" in text.splitlines()


def user_data_recipe() -> str:
    """The shell block of docs/deploy-systemd.md that makes the user data (marked there as tested here)."""
    doc = (ROOT / "docs" / "deploy-systemd.md").read_text()
    match = re.search(r"<!-- tests/test_deploy.py runs the block below as it is -->\n```sh\n(.*?)```", doc, re.S)
    assert match, "docs/deploy-systemd.md: the user-data block is gone (or its marker)"
    return match.group(1)


def test_bootstrap_alone_as_user_data_installs_its_own_copy_of_the_template(
    bootstrap_env: dict[str, str], tmp_path: Path
) -> None:
    """The user-data recipe of docs/deploy-systemd.md, run as it is: bootstrap.sh with its options and
    the Redis URL set at its top, run where no other file of the repository is (as cloud-init does)."""
    url = "redis://:pa$$w0rd&x@redis.example:6379/0"  # quoted into the script with printf %q
    package = "https://files.example/sweepd-0.1.0-py3-none-any.whl"
    checkout = tmp_path / "checkout"
    (checkout / "deploy").mkdir(parents=True)
    shutil.copy(BOOTSTRAP, checkout / "deploy" / "bootstrap.sh")
    env = {**bootstrap_env, "SWEEPD_REDIS_URL": url, "SWEEP": "sw7", "PACKAGE": package}
    made = subprocess.run(["bash", "-c", user_data_recipe()], cwd=checkout, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    script = tmp_path / "cloud" / "part-001"  # alone in its directory, as cloud-init keeps it
    script.parent.mkdir()
    shutil.move(checkout / "user-data.sh", script)
    env.pop("SWEEPD_REDIS_URL")  # it comes from the script: cloud-init gives a script no environment
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    root = Path(env["SWEEPD_BOOTSTRAP_ROOT"])
    installed = root / "etc/systemd/system/sweepd-agent@.service"
    assert parse_unit(installed) == parse_unit(UNITS[1]), "bootstrap.sh's copy of the template has drifted"
    agent_env = (root / "etc/sweepd/agent.env").read_text().splitlines()
    assert f"SWEEPD_REDIS_URL='{url}'" in agent_env and "SWEEPD_SWEEP_ID='sw7'" in agent_env
    made_calls = calls(env)
    assert any(c.startswith("venv-python -m pip install") and c.endswith(package) for c in made_calls)
    units = " ".join(f"sweepd-agent@{i}.service" for i in range(1, 5))
    assert f"systemctl enable {units}" in made_calls


def test_bootstrap_usage_is_its_header() -> None:
    done = subprocess.run(["bash", str(BOOTSTRAP), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "Usage:" in done.stderr and "--agents N" in done.stderr
