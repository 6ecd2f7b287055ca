"""Workspace manifests against the real Kubernetes schemas (kubernetes-validate, strict:
unknown fields are errors), offline. A real API server and Pod Security Admission come
later (see docs/workspaces-kubernetes.md)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from packaging.version import Version

from sde.domain.workspaces import (
    RESTRICTED_RULES,
    SETTING_KEYS,
    PodSettings,
    build_network_policy,
    build_pod,
    build_service_account,
    check_pod_restricted,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "workspaces-kubernetes.md"

# The newest Kubernetes version whose schemas kubernetes-validate ships.
NEWEST = kubernetes_validate.latest_version()

FULL_SETTINGS: dict[str, Any] = {
    "namespace": "research",
    "image": "registry.example.org:5000/sde/workspace:2026.11@sha256:" + "c" * 64,
    "cpu_request": "250m",
    "cpu_limit": 4,
    "memory_request": "1Gi",
    "memory_limit": "8Gi",
    "scratch_limit": "20Gi",
    "tmp_limit": "512Mi",
    "node_selector": {"sde.example.org/pool": "workspaces"},
    "tolerations": [
        {"key": "sde.example.org/workspaces", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
    ],
    "extract": {"csi_driver": "blob.csi.azure.com", "csi_attributes": {"container": "{project}"}},
    "uid": 1001,
    "gid": 100,
    "services_namespace": "sde",
    "hub_selector": {"app.kubernetes.io/name": "jupyterhub", "component": "hub"},
    "proxy_selector": {"app.kubernetes.io/name": "jupyterhub", "component": "proxy"},
    "sde_service_selector": {"app.kubernetes.io/name": "sde"},
    "dns_namespace": "kube-system",
    "dns_selector": {"k8s-app": "coredns"},
    "notebook_port": 8890,
    "hub_port": 8081,
    "sde_service_port": 8000,
    "object_store_egress": [
        {"cidr": "10.20.0.0/16", "ports": [443, 9000]},
        {"cidr": "2001:db8:20::/48"},
    ],
    "allow_wide_object_store_egress": False,
    "service_account_annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/sde-extract-{project}"
    },
}
SETTINGS = [PodSettings(), PodSettings.from_mapping(FULL_SETTINGS)]


def make_pod(settings: PodSettings) -> dict[str, Any]:
    return build_pod(
        settings,
        project_id="diabetes-2026",
        person_id="alice.smith",
        session_name="default",
        env={"LANG": "en_GB.UTF-8"},
    )


def test_the_newest_schemas_are_used() -> None:
    # A guard that the version picked is really the newest shipped (1.37 with 1.37.0).
    assert Version(NEWEST) >= Version("1.37.0")


def test_full_settings_use_every_key() -> None:
    assert set(FULL_SETTINGS) == set(SETTING_KEYS)


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_pod_is_a_valid_pod(settings: PodSettings) -> None:
    pod = make_pod(settings)
    assert kubernetes_validate.validate(pod, NEWEST, strict=True) == NEWEST.rsplit(".", 1)[0]


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_network_policy_is_a_valid_network_policy(settings: PodSettings) -> None:
    policy = build_network_policy(settings, project_id="diabetes-2026")
    assert kubernetes_validate.validate(policy, NEWEST, strict=True)


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_service_account_is_a_valid_service_account(settings: PodSettings) -> None:
    account = build_service_account(settings, project_id="diabetes-2026")
    assert kubernetes_validate.validate(account, NEWEST, strict=True)


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_pod_is_restricted(settings: PodSettings) -> None:
    assert check_pod_restricted(make_pod(settings)) == []


def test_an_unknown_field_fails_strict_validation() -> None:
    pod = make_pod(PodSettings())
    pod["spec"]["containers"][0]["securityContext"]["runAsRoot"] = False
    # Without strict the misspelt field is silently accepted ...
    kubernetes_validate.validate(pod, NEWEST, strict=False)
    # ... with strict it is an error, so the tests above really check field names.
    with pytest.raises(kubernetes_validate.ValidationError, match="runAsRoot"):
        kubernetes_validate.validate(pod, NEWEST, strict=True)


def test_an_unknown_field_in_the_network_policy_fails() -> None:
    policy = build_network_policy(PodSettings(), project_id="diabetes-2026")
    policy["spec"]["egress"][0]["destinations"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="destinations"):
        kubernetes_validate.validate(policy, NEWEST, strict=True)


def test_a_wrongly_typed_value_fails_validation() -> None:
    pod = make_pod(PodSettings())
    broken = copy.deepcopy(pod)
    broken["spec"]["securityContext"]["runAsUser"] = "1000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, NEWEST, strict=True)
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, NEWEST, strict=True)


def test_the_docs_list_every_setting_and_rule() -> None:
    page = DOCS.read_text()
    missing = [key for key in SETTING_KEYS if f"`{key}`" not in page]
    missing += [rule for rule in RESTRICTED_RULES if f"`{rule}`" not in page]
    assert not missing, f"docs/workspaces-kubernetes.md does not mention: {missing}"


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_default_deny_selects_every_pod_and_allows_nothing(settings: PodSettings) -> None:
    from sde.domain.workspaces import build_default_deny

    policy = build_default_deny(settings)
    kubernetes_validate.validate(policy, NEWEST, strict=True)
    spec = policy["spec"]
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec
    assert "egress" not in spec
    assert policy["metadata"]["namespace"] == settings.namespace


def _store_pod(settings: PodSettings) -> dict[str, Any]:
    from sde.domain.workspaces import StoreExtract

    extract = StoreExtract(
        url="s3://sde-lake/prod/projects/diabetes-2026/extract",
        options=(("AWS_ENDPOINT_URL", "https://objects.example.org"),),
        secret_name="sde-lake-diabetes-2026",
        secret_keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        optional_secret_keys=("AWS_SESSION_TOKEN",),
    )
    return build_pod(
        settings,
        project_id="diabetes-2026",
        person_id="alice.smith",
        session_name="default",
        env={"LANG": "en_GB.UTF-8"},
        extract=extract,
    )


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "every-setting"])
def test_a_pod_reading_the_store_is_a_valid_restricted_pod(settings: PodSettings) -> None:
    pod = _store_pod(settings)
    assert kubernetes_validate.validate(pod, NEWEST, strict=True)
    assert check_pod_restricted(pod) == []
    refs = [e for e in pod["spec"]["containers"][0]["env"] if "valueFrom" in e]
    assert [r["name"] for r in refs] == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    # The schema checks the reference's shape: a misspelt field is an error.
    refs[0]["valueFrom"]["secretKeyRef"]["secret"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="secret"):
        kubernetes_validate.validate(pod, NEWEST, strict=True)


def test_the_policy_with_store_egress_is_valid_and_an_ip_block_typo_fails() -> None:
    settings = SETTINGS[1]
    assert settings.object_store_egress
    policy = build_network_policy(settings, project_id="diabetes-2026")
    blocks = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert [b["to"][0]["ipBlock"]["cidr"] for b in blocks] == ["10.20.0.0/16", "2001:db8:20::/48"]
    assert kubernetes_validate.validate(policy, NEWEST, strict=True)
    blocks[0]["to"][0]["ipBlock"]["cidrs"] = ["10.0.0.0/8"]
    with pytest.raises(kubernetes_validate.ValidationError, match="cidrs"):
        kubernetes_validate.validate(policy, NEWEST, strict=True)
