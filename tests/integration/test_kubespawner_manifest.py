"""KubeSpawner's own pod manifest, configured by sde, built offline and checked against the
Kubernetes schemas (kubernetes-validate, strict) and the restricted profile.

KubeSpawner needs a kubeconfig to construct (it builds an API client it never calls
here: the file points at an address nothing listens on). ``_mock=True`` is KubeSpawner's
own test mode: it supplies stand-ins for JupyterHub's User and Hub objects, which only
exist inside a running hub.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from traitlets.config import Config

from sde.adapters.kubespawner import kubespawner_settings
from sde.domain.workspaces import PodSettings, StoreExtract, check_pod_restricted

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


@pytest.fixture(autouse=True)
def _fresh_kube_config() -> Iterator[None]:
    """KubeSpawner loads its kubeconfig once per process (``load_config`` is an
    lru_cache) into the Kubernetes client's global default. Each test here loads the
    offline one and leaves no trace: a later test (``test_kube_workspaces.py``) talks to
    a real API server through a kubeconfig of its own."""
    from kubernetes_asyncio.client import Configuration
    from kubespawner.clients import load_config

    saved = Configuration._default  # the client's global, restored below
    load_config.cache_clear()
    yield
    load_config.cache_clear()
    Configuration._default = saved


def offline_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes_asyncio.config import kube_config

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    # Read when kubernetes_asyncio is imported, so set the module's copy too.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))


def kubespawner_pod(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: PodSettings,
    extract: StoreExtract | None = None,
) -> dict[str, Any]:
    from kubernetes_asyncio.client import ApiClient
    from kubespawner import KubeSpawner

    offline_kubeconfig(tmp_path, monkeypatch)
    config = Config()
    for name, value in kubespawner_settings(
        settings, project_id="diabetes", person_id="alice", extract=extract
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


# --- the lake on object storage ------------------------------------------------------

# Canary credentials in the hub's environment: none may ever reach a pod spec.
CANARIES = {
    "SDE_LAKE_AWS_ACCESS_KEY_ID": "AKIACANARY7Q2W3E4R5T",
    "SDE_LAKE_AWS_SECRET_ACCESS_KEY": "canary-secret-9f8e7d6c5b4a3928",
    "SDE_LAKE_AWS_SESSION_TOKEN": "canary-session-token-1a2b3c4d",
}
STORE = "https://objects.example.org"
EGRESS = [{"cidr": "10.20.0.0/16", "ports": [443]}]


def store_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    workspaces: dict[str, Any] | None = None,
) -> Path:
    """A home whose lake is on (an unreachable) S3, with canary credentials in the
    environment the hub opens it with."""
    import yaml

    from sde.services.home import init_home

    root = tmp_path / "h"
    if not root.exists():
        init_home(root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["lake"] = {
        "url": "s3://sde-lake/prod",
        "options": {"AWS_ENDPOINT_URL": STORE, "AWS_REGION": "eu-west-2"},
        "workspace_credentials": mode,
    }
    if mode == "per_project_secret":
        config["lake"]["project_credentials"] = "sde-lake-{project}"
    config["workspaces"] = {
        "image": "registry.example/sde/workspace:1.0",
        "object_store_egress": EGRESS,
        **(workspaces or {}),
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    return root


def sde_kubespawner_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path, project: str = "diabetes"
) -> dict[str, Any]:
    """The manifest SdeKubeSpawner's KubeSpawner builds for alice on ``project``, offline:
    the traits set as at start (``sde_configure``), the environment from its own
    ``get_env`` (the session's token, the lake's variables)."""
    from kubernetes_asyncio.client import ApiClient

    from sde.hub.kube import SdeKubeSpawner

    offline_kubeconfig(tmp_path, monkeypatch)

    async def build() -> dict[str, Any]:
        spawner = SdeKubeSpawner(
            _mock=True,
            sde_home=str(root),
            sde_api_url="http://sde.sde-services:8800/services/airlock",
        )
        spawner.user.name = "alice"  # the mock user's own name is not a person id
        spawner.user_options = {"project": project}
        spawner.sde_configure()
        pod = await spawner.get_pod_manifest()
        async with ApiClient() as client:
            manifest: dict[str, Any] = client.sanitize_for_serialization(pod)
        return manifest

    return asyncio.run(build())


def _env(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [container] = manifest["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def _assert_no_canary(manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest)
    leaked = [name for name, value in CANARIES.items() if value in text]
    assert leaked == [], "a lake credential is in the pod manifest"


def test_kubespawner_takes_the_credentials_by_secret_key_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract = StoreExtract(
        url="s3://sde-lake/prod/projects/diabetes/extract",
        options=(("AWS_ENDPOINT_URL", STORE),),
        secret_name="sde-lake-diabetes",
        secret_keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        optional_secret_keys=("AWS_SESSION_TOKEN",),
    )
    settings = PodSettings.from_mapping({"image": "registry.example/sde/workspace:1.0"})
    manifest = kubespawner_pod(tmp_path, monkeypatch, settings, extract)
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    assert check_pod_restricted(manifest) == []
    env = _env(manifest)
    assert env["SDE_EXTRACT"] == {"name": "SDE_EXTRACT", "value": extract.url}
    assert env["AWS_ENDPOINT_URL"]["value"] == STORE
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "sde-lake-diabetes", "key": "AWS_SECRET_ACCESS_KEY"}
        },
    }
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert [v["name"] for v in manifest["spec"]["volumes"]] == ["scratch", "tmp"]
    [container] = manifest["spec"]["containers"]
    assert [m["name"] for m in container["volumeMounts"]] == ["scratch", "tmp"]


@pytest.mark.sql
def test_the_sde_kubespawner_pod_takes_the_projects_secret_and_no_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = store_home(tmp_path, monkeypatch, "per_project_secret")
    manifest = sde_kubespawner_pod(tmp_path, monkeypatch, root)
    _assert_no_canary(manifest)
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    assert check_pod_restricted(manifest) == []
    env = _env(manifest)
    assert env["SDE_EXTRACT"]["value"] == "s3://sde-lake/prod/projects/diabetes/extract"
    assert env["AWS_ENDPOINT_URL"]["value"] == STORE
    assert env["AWS_REGION"]["value"] == "eu-west-2"
    assert env["SDE_PROJECT"]["value"] == "diabetes"
    assert env["SDE_TOKEN"]["value"]  # the session's sde token, as ever
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    assert refs == {
        "AWS_ACCESS_KEY_ID": {"name": "sde-lake-diabetes", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "sde-lake-diabetes", "key": "AWS_SECRET_ACCESS_KEY"},
        "AWS_SESSION_TOKEN": {
            "name": "sde-lake-diabetes",
            "key": "AWS_SESSION_TOKEN",
            "optional": True,
        },
    }
    assert not any("persistentVolumeClaim" in v for v in manifest["spec"]["volumes"])
    # Another project's pod names its own Secret.
    other = _env(sde_kubespawner_pod(tmp_path, monkeypatch, root, project="asthma"))
    assert other["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "sde-lake-asthma"
    )
    assert other["SDE_EXTRACT"]["value"] == "s3://sde-lake/prod/projects/asthma/extract"


@pytest.mark.sql
def test_with_workload_identity_the_pod_has_no_credential_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = store_home(tmp_path, monkeypatch, "none")
    manifest = sde_kubespawner_pod(tmp_path, monkeypatch, root)
    _assert_no_canary(manifest)
    env = _env(manifest)
    assert not [name for name, e in env.items() if "valueFrom" in e]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & env.keys()
    assert env["SDE_EXTRACT"]["value"] == "s3://sde-lake/prod/projects/diabetes/extract"
    assert env["AWS_REGION"]["value"] == "eu-west-2"


@pytest.mark.sql
def test_inherit_is_refused_on_kubernetes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tornado.web import HTTPError

    from sde.errors import ConfigError
    from sde.hub.kube import workspace_extract
    from sde.services.home import lake_environment, open_home

    root = store_home(tmp_path, monkeypatch, "inherit")
    home = open_home(root, lake_environment=lake_environment(dict(CANARIES)))
    with pytest.raises(ConfigError, match="never copied into a pod spec") as caught:
        workspace_extract(home, "diabetes")
    assert not any(value in str(caught.value) for value in CANARIES.values())
    with pytest.raises(HTTPError, match="inherit") as spawn:
        sde_kubespawner_pod(tmp_path, monkeypatch, root)
    assert spawn.value.status_code == 500


@pytest.mark.sql
def test_the_store_needs_egress_and_a_local_lake_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from sde.errors import ConfigError
    from sde.hub.kube import workspace_extract, workspace_pod_settings
    from sde.services.home import open_home

    root = store_home(tmp_path, monkeypatch, "none", {"object_store_egress": []})
    with pytest.raises(ConfigError, match="'object_store_egress' is empty"):
        workspace_pod_settings(open_home(root))
    root = store_home(tmp_path, monkeypatch, "none")
    assert workspace_pod_settings(open_home(root)).object_store_egress[0].cidr == "10.20.0.0/16"
    # A local lake: no egress block allowed, and no StoreExtract (the volume, as before).
    config = yaml.safe_load((root / "config.yaml").read_text())
    del config["lake"]
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    local = open_home(root)
    with pytest.raises(ConfigError, match="the lake is on local disk"):
        workspace_pod_settings(local)
    assert workspace_extract(local, "diabetes") is None


@pytest.mark.sql
def test_a_credential_that_reached_the_env_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sde.errors import ConfigError
    from sde.hub.kube import check_no_lake_credentials
    from sde.services.home import lake_environment, open_home

    root = store_home(tmp_path, monkeypatch, "per_project_secret")
    home = open_home(root, lake_environment=lake_environment(dict(CANARIES)))
    secret = CANARIES["SDE_LAKE_AWS_SECRET_ACCESS_KEY"]
    check_no_lake_credentials(home, {"AWS_REGION": "eu-west-2", "SDE_EXTRACT": "s3://x/y"})
    for env in (
        {"AWS_SECRET_ACCESS_KEY": secret},
        {"X": f"s3://k:{secret}@b/p"},
        {"Y": {"valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}},
    ):
        with pytest.raises(ConfigError, match="SDE_LAKE_AWS_SECRET_ACCESS_KEY") as caught:
            check_no_lake_credentials(home, env)
        assert secret not in str(caught.value)
