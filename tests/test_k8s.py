"""The Kubernetes manifests against the Kubernetes API's own schemas, offline, and the image's Dockerfile
against the README and the package it installs.

The schemas come with the ``kubernetes-validate`` package (JSON schemas generated from each release's
OpenAPI document, for every minor version it knows): nothing is fetched. Validation is strict, so a
misspelt or misplaced field fails as it would under ``kubectl apply --validate=strict``. Every
manifest is checked against each release from ``OLDEST`` (``podFailurePolicy`` is GA there) to the
newest the package has.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import ROOT

K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = K8S / "Dockerfile"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
OLDEST = (1, 31)


def validator() -> Any:
    """kubernetes-validate, or a skip where it is not installed (it is in the test and dev extras)."""
    return pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the test extra)")


def versions() -> list[str]:
    """The Kubernetes releases to validate against: OLDEST up to the newest the package knows."""
    known = {tuple(int(x) for x in v.split(".")[:2]) for v in validator().utils.all_versions()}
    chosen = sorted(v for v in known if v >= OLDEST)
    assert chosen, f"kubernetes-validate knows no release from {OLDEST} on: {sorted(known)}"
    return [f"{major}.{minor}.0" for major, minor in chosen]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def errors(doc: dict[str, Any]) -> list[str]:
    """What the API schemas of each release say against ``doc`` (empty: valid everywhere)."""
    kv = validator()
    found = []
    for version in versions():
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
            found.append(f"Kubernetes {version}: {where}: {exc.message}")
        except kv.SchemaNotFoundError:
            found.append(f"Kubernetes {version}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
    return found


#: KEDA's kinds are validated against KEDA's own CRDs (test_keda.py), not the Kubernetes API's.
CASES = [
    (path, i)
    for path in MANIFESTS
    for i, doc in enumerate(documents(path))
    if not str(doc["apiVersion"]).startswith("keda.sh/")
]


@pytest.mark.parametrize(("path", "index"), CASES, ids=[f"{p.name}-{i}" for p, i in CASES])
def test_every_manifest_is_valid_for_every_supported_kubernetes_release(path: Path, index: int) -> None:
    doc = documents(path)[index]
    found = errors(doc)
    assert not found, f"{path.name}: {doc['kind']} {doc['metadata']['name']}:\n" + "\n".join(found)


def test_every_manifest_is_checked() -> None:
    kinds = {(p.name, d["kind"]) for p in MANIFESTS for d in documents(p)}
    assert kinds == {
        ("agents-deployment.yaml", "Deployment"),
        ("agents-job.yaml", "Job"),
        ("redis.yaml", "Service"),
        ("redis.yaml", "StatefulSet"),
        ("secret.yaml", "Secret"),
        ("ui.yaml", "Secret"),
        ("ui.yaml", "Deployment"),
        ("ui.yaml", "Service"),
        ("keda-scaledobject.yaml", "TriggerAuthentication"),
        ("keda-scaledobject.yaml", "ScaledObject"),
    }


def test_the_validation_catches_what_the_api_server_would_refuse() -> None:
    """Not vacuous: a misspelt field, a wrong type, a missing required field, a bad enum all fail."""
    (job,) = documents(K8S / "agents-job.yaml")
    pod = ["spec", "template", "spec"]

    def broken(change: Any) -> dict[str, Any]:
        doc = copy.deepcopy(job)
        change(doc)
        return doc

    def at(doc: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        for key in keys:
            doc = doc[key]
        return doc

    cases = {
        "misspelt": broken(lambda d: at(d, pod).update(terminationGracePeriodSecond=150)),
        "wrong type": broken(lambda d: at(d, pod).update(terminationGracePeriodSeconds="150s")),
        "no container name": broken(lambda d: at(d, pod)["containers"][0].pop("name")),
        "a rule with no action": broken(lambda d: d["spec"]["podFailurePolicy"]["rules"][0].pop("action")),
    }
    for what, doc in cases.items():
        assert errors(doc), f"{what}: the schemas accepted it"


def test_the_job_ignores_disruptions_in_a_form_every_release_accepts() -> None:
    """``onPodConditions[].status`` may be left out only from Kubernetes 1.36 on (before, the schema
    requires it): the rule spells out ``status: "True"``, which is what it defaults to."""
    (job,) = documents(K8S / "agents-job.yaml")
    rules = job["spec"]["podFailurePolicy"]["rules"]
    ignored = [c for r in rules if r["action"] == "Ignore" for c in r.get("onPodConditions", [])]
    assert {"type": "DisruptionTarget", "status": "True"} in ignored


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
@pytest.mark.parametrize("agents", ["agents-deployment.yaml", "agents-job.yaml"])
def test_the_kustomization_builds_and_what_it_builds_is_valid(agents: str, tmp_path: Path) -> None:
    """`kubectl apply -k deploy/k8s` renders the kustomization first: it must build, with either way of
    running agents listed (kubectl's built-in kustomize, offline)."""
    for path in K8S.iterdir():
        shutil.copy(path, tmp_path / path.name)
    text = (K8S / "kustomization.yaml").read_text()
    other = "agents-job.yaml" if agents == "agents-deployment.yaml" else "agents-deployment.yaml"
    text = re.sub(rf"^(\s*)(# )?- {re.escape(agents)}$", rf"\1- {agents}", text, flags=re.M)
    text = re.sub(rf"^(\s*)- {re.escape(other)}$", rf"\1# - {other}", text, flags=re.M)
    (tmp_path / "kustomization.yaml").write_text(text)
    done = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(
        ["Secret", "Service", "StatefulSet", "Deployment" if agents == "agents-deployment.yaml" else "Job"]
    )
    for doc in built:
        assert not errors(doc), errors(doc)


# --- the image ------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in DOCKERFILE.read_text().splitlines() if not ln.startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text()))


def pip_installs(commands: str) -> list[list[str]]:
    """Every `pip install ...` (or `python -m pip install ...`) in a shell line, as words."""
    found = []
    for part in re.split(r"&&|;|\|\|", commands):
        words = shlex.split(part, comments=True)
        if words[:2] == ["pip", "install"]:
            found.append(words[2:])
        elif len(words) > 4 and words[1:4] == ["-m", "pip", "install"]:
            found.append(words[4:])
    return found


def target(args: list[str]) -> tuple[str, set[str], bool]:
    """What one `pip install` installs: (the project's path, its extras, editable or not)."""
    editable = "-e" in args or "--editable" in args
    paths = [a for a in args if not a.startswith("-")]
    assert len(paths) == 1, f"one project expected: pip install {' '.join(args)}"
    path, _, extras = paths[0].partition("[")
    return path, {e.strip() for e in extras.rstrip("]").split(",") if e.strip()}, editable


def readme_install() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|console|bash)\n(.*?)```", readme, flags=re.S)
    lines = [ln for block in blocks for ln in block.splitlines() if re.match(r"\s*(\$ )?pip install ", ln)]
    assert lines, "the README shows no `pip install` command"
    (first,) = pip_installs(lines[0].lstrip("$ "))
    return first


def test_the_image_installs_what_the_readme_installs_and_runs_the_console_script() -> None:
    steps = dockerfile()
    project = pyproject()
    defined_extras = set(project["project"].get("optional-dependencies", {}))

    # The install: the README's command is `pip install -e ".[dev]"` from the repository's root; the
    # image runs `pip install .` from the directory the project was copied to. Same project, same
    # place; the image leaves out the editable mode (its source is removed) and the development tools.
    readme_path, readme_extras, _ = target(readme_install())
    installs = [args for instruction, rest in steps if instruction == "RUN" for args in pip_installs(rest)]
    assert installs, "the Dockerfile installs nothing with pip"
    image_path, image_extras, image_editable = target(installs[0])
    install_at = next(i for i, (instruction, rest) in enumerate(steps) if instruction == "RUN" and pip_installs(rest))
    assert readme_path == image_path == ".", (
        f"the README installs {readme_path!r} and the image {image_path!r}: both should install the "
        f"project from its root ('.')"
    )
    assert not image_editable, "the image removes its source after the install: an editable install would break"
    unknown = (readme_extras | image_extras) - defined_extras
    assert not unknown, f"extras not in pyproject.toml (pip would ignore them with a warning): {sorted(unknown)}"
    assert "dev" not in image_extras, "the development tools do not belong in the image"

    # Everything `pip install .` reads is copied in before it runs.
    copied: set[str] = set()
    for instruction, rest in steps[:install_at]:
        if instruction == "COPY":
            copied |= {p.rstrip("/").removeprefix("./") for p in shlex.split(rest)[:-1] if not p.startswith("--")}
    package_dirs = {d.split("/")[0] for d in project["tool"]["setuptools"]["package-dir"].values()}
    needed = {"pyproject.toml", project["project"]["readme"], *package_dirs}
    assert needed <= copied, f"`pip install .` needs {sorted(needed - copied)} copied into the image first"

    # The entrypoint is the console script the README's commands use, in exec form (PID 1 is the
    # agent itself, and gets the kubelet's SIGTERM).
    scripts = project["project"]["scripts"]
    (entrypoint,) = [rest for instruction, rest in steps if instruction == "ENTRYPOINT"]
    try:
        argv = json.loads(entrypoint)
    except json.JSONDecodeError:
        pytest.fail(f"ENTRYPOINT {entrypoint} is in shell form: a shell would be PID 1 and keep SIGTERM")
    assert argv[0] in scripts, f"ENTRYPOINT runs {argv[0]!r}; pyproject.toml's console scripts are {sorted(scripts)}"
    readme = (ROOT / "README.md").read_text()
    assert f"{argv[0]} agent " in readme and f"{argv[0]} status " in readme, (
        f"the README's commands do not use the image's entrypoint {argv[0]!r}"
    )
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert installed.get(argv[0]) == scripts[argv[0]], "the installed console script is not pyproject.toml's"
    for name in ("agents-deployment.yaml", "agents-job.yaml"):
        (doc,) = documents(K8S / name)
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        command = " ".join(container["command"] + container.get("args", []))
        assert re.search(rf"(^|\s){argv[0]} agent ", command), f"{name} does not run `{argv[0]} agent`"

    # The Python: the README's minimum (3.10+, 3.11+ for the embedded Redis), pyproject.toml's too.
    base = steps[0]
    assert base[0] == "FROM", base
    match = re.fullmatch(r"python:(\d+)\.(\d+)(-slim)?(-\w+)?", base[1])
    assert match, f"the image should start from an official python image, not {base[1]}"
    minimum = re.search(r">=\s*(\d+)\.(\d+)", project["project"]["requires-python"])
    assert minimum and (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))
    assert f"Python {minimum[1]}.{minimum[2]}+" in readme

    # A non-root user whose UID the manifests' runAsUser names.
    users = [rest for instruction, rest in steps if instruction == "USER"]
    assert users and users[-1] not in ("0", "root"), "the image should not run as root"
    for name in ("agents-deployment.yaml", "agents-job.yaml"):
        (doc,) = documents(K8S / name)
        assert str(doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"]) == users[-1], name


# --- the guide's commands ---------------------------------------------------------------------------------


def guide_edits() -> list[str]:
    """The `sed -i` lines of docs/deploy-kubernetes.md's set-up block (marked there as run here)."""
    doc = (ROOT / "docs" / "deploy-kubernetes.md").read_text()
    match = re.search(
        r"<!-- tests/test_k8s.py runs the sed lines of the block below[^\n]*-->\n```sh\n(.*?)```", doc, re.S
    )
    assert match, "docs/deploy-kubernetes.md: the set-up block is gone (or its marker)"
    edits = [ln for ln in match.group(1).splitlines() if ln.startswith("sed -i ")]
    assert len(edits) == 3, edits
    return edits


def test_the_guide_s_edits_leave_no_placeholder_and_valid_manifests(tmp_path: Path) -> None:
    copy_dir = tmp_path / "my-sweep"
    shutil.copytree(K8S, copy_dir)
    env = {
        "PATH": "/usr/bin:/bin",
        "PASSWORD": "0123abcd" * 6,
        "REGISTRY": "registry.example/team",
        "SWEEP": "8cq2x0rd",
    }
    for line in guide_edits():
        done = subprocess.run(["bash", "-c", line], cwd=copy_dir, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}: {done.stderr}"
    for path in [
        copy_dir / "secret.yaml",
        *(copy_dir / name for name in ("agents-deployment.yaml", "agents-job.yaml")),
    ]:
        assert "CHANGE-ME" not in path.read_text(), f"{path.name} still has a placeholder after the guide's edits"
    (secret,) = documents(copy_dir / "secret.yaml")
    assert secret["stringData"]["SWEEPD_REDIS_URL"] == f"redis://:{env['PASSWORD']}@sweepd-redis:6379/0"
    assert secret["stringData"]["redis.conf"].split() == ["requirepass", env["PASSWORD"]]
    for name in ("agents-deployment.yaml", "agents-job.yaml"):
        (doc,) = documents(copy_dir / name)
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/team/my-sweep:1"
        assert {"name": "SWEEPD_SWEEP_ID", "value": "8cq2x0rd"} in container["env"]
        assert not errors(doc), errors(doc)
