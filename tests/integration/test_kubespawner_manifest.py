"""KubeSpawner's own pod manifest, configured by sde, built offline and checked against the
Kubernetes schemas (kubernetes-validate, strict) and the restricted profile.

KubeSpawner needs a kubeconfig to construct (it builds an API client it never calls
here: the file points at an address nothing listens on). ``_mock=True`` is KubeSpawner's
own test mode: it supplies stand-ins for JupyterHub's User and Hub objects, which only
exist inside a running hub.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from traitlets.config import Config

from sde.adapters.kubespawner import kubespawner_settings
from sde.domain.workspaces import PodSettings, check_pod_restricted

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://127.0.0.1:9"}
  name: offline
contexts:
- context: {cluster: offline, user: offline}
  name: offline
current-context: offline
users:
- name: offline
  user: {token: "not-a-real-token"}
"""


def kubespawner_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: PodSettings
) -> dict[str, Any]:
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.config import kube_config
    from kubespawner import KubeSpawner

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    # Read when kubernetes_asyncio is imported, so set the module's copy too.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    config = Config()
    for name, value in kubespawner_settings(
        settings, project_id="diabetes", person_id="alice"
    ).items():
        setattr(config.KubeSpawner, name, value)

    async def build() -> dict[str, Any]:
        spawner = KubeSpawner(_mock=True, config=config)
        pod = await spawner.get_pod_manifest()
        async with ApiClient() as client:
            manifest: dict[str, Any] = client.sanitize_for_serialization(pod)
        return manifest

    return asyncio.run(build())


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    settings = PodSettings.from_mapping(
        {
            "image": "registry.example/sde/workspace:1.0",
            "node_selector": {"pool": "workspaces"},
            "tolerations": [
                {"key": "workspaces", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
            ],
        }
    )
    return kubespawner_pod(tmp_path, monkeypatch, settings)


def test_kubespawner_manifest_validates_strictly(manifest: dict[str, Any]) -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(manifest, version, strict=True)
    broken = {**manifest, "spec": {**manifest["spec"], "hostNetwork_": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kubespawner_manifest_meets_the_restricted_profile(manifest: dict[str, Any]) -> None:
    assert check_pod_restricted(manifest) == []
    spec = manifest["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    [container] = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["extract"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["extract"]["persistentVolumeClaim"]["readOnly"] is True
    assert not any("hostPath" in v for v in spec["volumes"])
    assert spec["nodeSelector"] == {"pool": "workspaces"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SDE_PROJECT"] == "diabetes"
    assert env["SDE_USER"] == "alice"
    assert container["resources"]["limits"]["ephemeral-storage"]


def test_a_privileged_setting_would_be_caught(manifest: dict[str, Any]) -> None:
    container = manifest["spec"]["containers"][0]
    container["securityContext"] = {**container["securityContext"], "privileged": True}
    assert check_pod_restricted(manifest) != []
