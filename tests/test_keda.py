"""deploy/k8s/keda-scaledobject.yaml against KEDA's own published CRDs (tests/data/keda, with KEDA's
Apache-2.0 licence), offline: each document's kind must be one of them and validate, strictly (an
unknown field fails, as ``kubectl apply --validate=strict`` would refuse it), against the CRD's
``openAPIV3Schema``; and what it scales and reads must be what the other manifests and ``sweepd ui``
provide."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support import ROOT

K8S = ROOT / "deploy" / "k8s"
CRDS = ROOT / "tests" / "data" / "keda"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's structural schema as JSON Schema, closed: an object's unknown fields are errors
    (unless it preserves them), int-or-string is either."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        out["items"] = strict(schema["items"])
    return out


def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> its schema, for every version each shipped CRD serves."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        (crd,) = documents(path)
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                found[key] = strict(version["schema"]["openAPIV3Schema"])
    return found


def errors(doc: dict[str, Any]) -> list[str]:
    schema = schemas().get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if schema is None:
        return [f"no KEDA CRD for {doc.get('apiVersion')} {doc.get('kind')}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


SCALED = documents(K8S / "keda-scaledobject.yaml")


def one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in SCALED if d["kind"] == kind]
    return doc


def test_the_crds_and_their_licence_are_shipped() -> None:
    assert {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")} <= set(schemas())
    assert "Apache License" in (CRDS / "LICENSE").read_text() and "Version 2.0" in (CRDS / "LICENSE").read_text()


@pytest.mark.parametrize("index", range(len(SCALED)), ids=[d["kind"] for d in SCALED])
def test_every_keda_document_validates_against_its_crd(index: int) -> None:
    doc = SCALED[index]
    assert not errors(doc), f"{doc['kind']} {doc['metadata']['name']}:\n" + "\n".join(errors(doc))


def test_the_validation_catches_what_the_api_server_would_refuse() -> None:
    scaled = one("ScaledObject")

    def broken(change: Any) -> dict[str, Any]:
        doc = copy.deepcopy(scaled)
        change(doc)
        return doc

    cases = {
        "misspelt": broken(lambda d: d["spec"].update(minReplicas=0)),
        "wrong type": broken(lambda d: d["spec"].update(maxReplicaCount="twenty")),
        "no target": broken(lambda d: d["spec"].pop("scaleTargetRef")),
        "a trigger with no type": broken(lambda d: d["spec"]["triggers"][0].pop("type")),
        "metadata values are strings": broken(lambda d: d["spec"]["triggers"][0]["metadata"].update(targetValue=1)),
    }
    for what, doc in cases.items():
        assert errors(doc), f"{what}: the schema accepted it"


def test_it_scales_the_agents_on_the_pools_demand_with_the_uis_token() -> None:
    scaled, auth = one("ScaledObject"), one("TriggerAuthentication")
    (agents,) = [d for d in documents(K8S / "agents-deployment.yaml") if d["kind"] == "Deployment"]
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", agents["metadata"]["name"])
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["maxReplicaCount"] > 0
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "metrics-api" and meta["valueLocation"] == "demand" and meta["authMode"] == "bearer"
    ui = {d["kind"]: d for d in documents(K8S / "ui.yaml")}
    port = ui["Service"]["spec"]["ports"][0]["port"]
    assert meta["url"].startswith(f"http://{ui['Service']['metadata']['name']}:{port}/api/pools/")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "token" and ref["name"] == ui["Secret"]["metadata"]["name"]
    assert ui["Secret"]["stringData"] == {ref["key"]: "CHANGE-ME-ui-token"}  # the ui's own token
