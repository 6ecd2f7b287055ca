"""Workspace pods and NetworkPolicies on Kubernetes: settings, builders and the Pod
Security Standards "restricted" rules (pure)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from sde.domain.workspaces import (
    RESTRICTED_RULES,
    SETTING_KEYS,
    ExtractVolume,
    ObjectStoreEgress,
    PodSettings,
    StoreExtract,
    Toleration,
    build_network_policy,
    build_pod,
    build_service_account,
    check_env,
    check_pod_restricted,
    format_bytes,
    label_safe,
    parse_quantity,
    service_account_name,
    workspace_labels,
    workspace_pod_name,
)
from sde.errors import ConfigError, InputError

# Independent of the module's own regexes, from the Kubernetes documentation.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pod(**settings: Any) -> dict[str, Any]:
    return build_pod(
        PodSettings.from_mapping(settings),
        project_id="diabetes-2026",
        person_id="alice",
        session_name="default",
        env={},
    )


def walk_keys(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *walk_keys(v)]]
    if isinstance(value, list):
        return [k for item in value for k in walk_keys(item)]
    return []


# --- settings ------------------------------------------------------------------------


def test_defaults_are_the_settings_without_a_section() -> None:
    assert PodSettings.from_mapping(None) == PodSettings()
    assert PodSettings.from_mapping({}) == PodSettings()
    assert PodSettings().namespace == "sde-workspaces"
    assert PodSettings().extract.claim == "sde-extract-{project}"
    assert PodSettings.from_mapping({"extract": {}}) == PodSettings()


def test_unknown_keys_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="unknown workspaces settings: cpus, hostNetwork"):
        PodSettings.from_mapping({"cpus": 2, "hostNetwork": True, "cpu_limit": "2"})


def test_every_setting_key_is_accepted() -> None:
    # SETTING_KEYS is what the docs list; each must be a real field.
    fields = set(PodSettings.__dataclass_fields__)
    assert set(SETTING_KEYS) == fields


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/sde/workspace:1.4.2",
        "localhost:5000/workspace:2026-01",
        "workspace:latest",
        "ghcr.io/sde/workspace@sha256:" + "a" * 64,
        "ghcr.io/sde/workspace:1.4.2@sha256:" + "b" * 64,
    ],
)
def test_images_with_a_tag_or_digest_are_accepted(image: str) -> None:
    assert PodSettings.from_mapping({"image": image}).image == image


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/sde/workspace", "localhost:5000/workspace", "workspace", "registry.example/ws/"],
)
def test_images_without_a_tag_or_digest_are_refused(image: str) -> None:
    with pytest.raises(ConfigError, match="image"):
        PodSettings.from_mapping({"image": image})


def test_an_image_without_a_tag_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="must carry a tag or a digest"):
        PodSettings.from_mapping({"image": "localhost:5000/workspace"})


@pytest.mark.parametrize("image", ["Ghcr.io/SDE/Workspace:1", "ws:1 ; rm", "ws:", "ws@sha256:xyz"])
def test_malformed_images_are_refused(image: str) -> None:
    with pytest.raises(ConfigError, match="image"):
        PodSettings.from_mapping({"image": image})


def test_quantities_from_yaml_numbers_are_accepted() -> None:
    settings = PodSettings.from_mapping({"cpu_request": 0.5, "cpu_limit": 2})
    assert (settings.cpu_request, settings.cpu_limit) == ("0.5", "2")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cpu_request": "3", "cpu_limit": "2"}, "'cpu_request' must not exceed 'cpu_limit'"),
        ({"memory_request": "5Gi"}, "'memory_request' must not exceed 'memory_limit'"),
        ({"memory_limit": "4 GB"}, "'memory_limit' must be a Kubernetes quantity"),
        ({"cpu_limit": "0"}, "'cpu_limit' must be above 0"),
        ({"cpu_limit": True}, "'cpu_limit' must be a Kubernetes quantity"),
        ({"scratch_limit": "-1Gi"}, "'scratch_limit' must be above 0"),
        ({"tmp_limit": "1500m"}, "'tmp_limit' must be a whole number of bytes"),
        ({"uid": 0}, "'uid' must be a whole number above 0"),
        ({"gid": -5}, "'gid' must be a whole number above 0"),
        ({"uid": True}, "'uid' must be a whole number above 0"),
        ({"uid": "1000"}, "'uid' must be a whole number above 0"),
        ({"namespace": "SDE_Workspaces"}, "'namespace' must be a Kubernetes namespace"),
        ({"services_namespace": "-sde"}, "'services_namespace' must be a Kubernetes namespace"),
        ({"hub_port": 70000}, "'hub_port' must be a port number"),
        ({"node_selector": {"bad key!": "x"}}, "'node_selector': 'bad key!' is not a valid"),
        ({"node_selector": {"role": "has space"}}, "the value of 'role' is not a valid label"),
        ({"node_selector": {"role": 3}}, "must be a mapping of names to text"),
        ({"node_selector": ["role"]}, "must be a mapping of names to text"),
        ({"hub_selector": {}}, "'hub_selector' must name at least one label"),
        ({"proxy_selector": {}}, "'proxy_selector' must name at least one label"),
        ({"sde_service_selector": {}}, "'sde_service_selector' must name at least one label"),
        ({"tolerations": {"key": "x"}}, "'tolerations' must be a list of mappings"),
        ({"image": 3}, "'image' must be text"),
    ],
)
def test_bad_settings_are_refused_by_name(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PodSettings.from_mapping(data)


def test_settings_made_directly_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="'uid'"):
        PodSettings(uid=0)
    with pytest.raises(ConfigError, match="'proxy_selector'"):
        PodSettings(proxy_selector=())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"operator": "Exists"}, "needs a 'key'"),
        ({"key": "gpu", "operator": "Exists", "value": "x"}, "'value' must be empty"),
        ({"key": "gpu", "operator": "Maybe"}, "'operator' must be one of Equal, Exists"),
        ({"key": "gpu", "effect": "Sometimes"}, "'effect' must be one of"),
        ({"key": "gpu", "tolerationSeconds": 30}, "'tolerationSeconds' needs 'effect: NoExecute'"),
        (
            {"key": "gpu", "effect": "NoExecute", "tolerationSeconds": -1},
            "'tolerationSeconds' must be a whole number >= 0",
        ),
        ({"key": "gpu", "value": "a b"}, "'value' is not a valid Kubernetes label value"),
        ({"key": "not a key"}, "'key' is not a valid Kubernetes label key"),
        ({"key": "gpu", "colour": "red"}, "unknown workspaces toleration settings: colour"),
        ({"key": 1}, "'key' must be text"),
    ],
)
def test_bad_tolerations_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PodSettings.from_mapping({"tolerations": [data]})


def test_good_tolerations_are_kept() -> None:
    settings = PodSettings.from_mapping(
        {
            "tolerations": [
                {
                    "key": "sde/workspaces",
                    "operator": "Equal",
                    "value": "yes",
                    "effect": "NoSchedule",
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 60,
                },
            ]
        }
    )
    assert settings.tolerations == (
        Toleration("sde/workspaces", "Equal", "yes", "NoSchedule"),
        Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute", 60),
    )


@pytest.mark.parametrize(
    ("extract", "message"),
    [
        ({"hostPath": "/data/extracts"}, "hostPath volumes are never used"),
        ({"host_path": "/data"}, "hostPath volumes are never used"),
        ({"claim": "sde-extract"}, "'claim' must contain {project}"),
        ({"claim": "Extract-{project}"}, "must give a valid PersistentVolumeClaim name"),
        ({"claim": "x-{project}-{person}"}, "may use only the placeholder {project}"),
        ({"claim": "x-{project}", "csi_driver": "csi.example.org"}, "exactly one of"),
        (
            {"csi_driver": "csi.example.org", "csi_attributes": {"share": "all"}},
            "'csi_attributes' must contain {project}",
        ),
        ({"csi_driver": "Bad Driver", "csi_attributes": {"p": "{project}"}}, "'csi_driver'"),
        ({"nfs": {"server": "x"}}, "unknown workspaces extract settings: nfs"),
        ({"csi_attributes": {"p": "{project}"}}, "'csi_attributes' needs 'csi_driver'"),
        ("sde-extract-{project}", "'extract' setting must be a mapping"),
    ],
)
def test_bad_extract_volumes_are_refused(extract: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PodSettings.from_mapping({"extract": extract})


def test_quantities_parse_exactly() -> None:
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("2Gi") == 2 * 1024**3
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("1k") == 1000
    assert parse_quantity("100n") * 10**7 == 1
    with pytest.raises(ValueError):
        parse_quantity("2 Gi")
    assert format_bytes(parse_quantity("10Gi") + parse_quantity("1Gi")) == "11Gi"
    assert format_bytes(parse_quantity("1Gi") + parse_quantity("512Mi")) == "1536Mi"
    assert format_bytes(parse_quantity("1000")) == "1000"


# --- labels, names, env --------------------------------------------------------------


def test_workspace_labels() -> None:
    assert workspace_labels("diabetes-2026", "alice.smith") == {
        "app.kubernetes.io/name": "sde-workspace",
        "app.kubernetes.io/component": "workspace",
        "app.kubernetes.io/managed-by": "sde",
        "sde/project": "diabetes-2026",
        "sde/person": "alice.smith",
    }


def test_ids_are_checked() -> None:
    with pytest.raises(InputError, match="project id"):
        workspace_labels("Diabetes 2026", "alice")
    with pytest.raises(InputError, match="person id"):
        workspace_labels("diabetes-2026", "Alice Smith")


@pytest.mark.parametrize(
    ("project", "person"),
    [("ab-", "alice"), ("ab", "alice."), ("ab", "a" * 64), ("ab", "bob_"), ("ab-", "x-")],
)
def test_ids_that_are_not_label_values_are_made_valid(project: str, person: str) -> None:
    labels = workspace_labels(project, person)
    assert all(LABEL_VALUE.match(value) and len(value) <= 63 for value in labels.values())
    assert labels["sde/project"] != project or labels["sde/person"] != person


def test_sanitised_labels_stay_distinct() -> None:
    assert label_safe("alice.") != label_safe("alice_")
    assert label_safe("alice.") != label_safe("alice")
    assert label_safe("a" * 64) != label_safe("a" * 63 + "b")
    assert label_safe("alice") == "alice"


def test_pod_names_are_dns_labels_and_unique() -> None:
    first = workspace_pod_name("ab-c", "d", "default")
    second = workspace_pod_name("ab", "c-d", "default")
    assert first != second
    long = workspace_pod_name("p" * 63, "q" * 64, "s" * 32)
    for name in (first, second, long):
        assert DNS_LABEL.match(name), name
        assert len(name) <= 63, name
    assert workspace_pod_name("ab-c", "d", "other") != first
    with pytest.raises(InputError, match="session name"):
        workspace_pod_name("ab", "alice", "My Session")


@pytest.mark.parametrize(
    "name",
    ["API_KEY", "key", "DB_PASSWORD", "GITHUB_TOKEN", "MY_SECRET_X", "AWS_CREDENTIALS", "PRIVATE"],
)
def test_env_names_that_look_like_secrets_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="looks like a secret") as caught:
        check_env({name: "hunter2-value"})
    assert "hunter2-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"1ABC": "x"}, "is not a valid variable name"),
        ({"A-B": "x"}, "is not a valid variable name"),
        ({"SDE_PROJECT": "other"}, "is set by sde"),
        ({"HOME": "/root"}, "is set by sde"),
        ({"LEVEL": 3}, "must have a text value"),
    ],
)
def test_bad_env_is_refused(env: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_env(env)


def test_ordinary_env_is_kept() -> None:
    assert check_env({"KEYBOARD": "uk", "LANG": "en_GB.UTF-8"}) == {
        "KEYBOARD": "uk",
        "LANG": "en_GB.UTF-8",
    }


# --- the pod -------------------------------------------------------------------------

EXPECTED_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": workspace_pod_name("diabetes-2026", "alice", "default"),
        "namespace": "sde-workspaces",
        "labels": {
            "app.kubernetes.io/name": "sde-workspace",
            "app.kubernetes.io/component": "workspace",
            "app.kubernetes.io/managed-by": "sde",
            "sde/project": "diabetes-2026",
            "sde/person": "alice",
            "sde/session": "default",
        },
        "annotations": {
            "sde/project": "diabetes-2026",
            "sde/person": "alice",
            "sde/session": "default",
        },
    },
    "spec": {
        "restartPolicy": "Never",
        "serviceAccountName": "sde-ws-diabetes-2026",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "notebook",
                "image": "ghcr.io/sde/workspace:latest",
                "workingDir": "/home/jovyan",
                "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
                "env": [
                    {"name": "SDE_PROJECT", "value": "diabetes-2026"},
                    {"name": "SDE_USER", "value": "alice"},
                    {"name": "SDE_SCRATCH", "value": "/home/jovyan/scratch"},
                    {"name": "SDE_EXTRACT", "value": "/home/jovyan/extract"},
                    {"name": "SDE_OUTPUTS", "value": "/home/jovyan/scratch/outputs"},
                    {"name": "HOME", "value": "/home/jovyan"},
                    {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter/runtime"},
                    {"name": "IPYTHONDIR", "value": "/tmp/ipython"},
                    {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
                    {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
                    {"name": "XDG_CONFIG_HOME", "value": "/tmp/config"},
                    {"name": "XDG_DATA_HOME", "value": "/tmp/data"},
                    {"name": "LANG", "value": "en_GB.UTF-8"},
                    {"name": "TZ", "value": "Europe/London"},
                ],
                "resources": {
                    "requests": {"cpu": "500m", "memory": "2Gi", "ephemeral-storage": "11Gi"},
                    "limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "11Gi"},
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [
                    {"name": "extract", "mountPath": "/home/jovyan/extract", "readOnly": True},
                    {"name": "scratch", "mountPath": "/home/jovyan/scratch"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "extract",
                "persistentVolumeClaim": {
                    "claimName": "sde-extract-diabetes-2026",
                    "readOnly": True,
                },
            },
            {"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    },
}


def test_pod_with_default_settings_is_exactly_this() -> None:
    built = build_pod(
        PodSettings(),
        project_id="diabetes-2026",
        person_id="alice",
        session_name="default",
        env={"TZ": "Europe/London", "LANG": "en_GB.UTF-8"},
    )
    assert built == EXPECTED_POD


def test_pod_carries_settings() -> None:
    built = pod(
        image="ghcr.io/sde/workspace:1.4.2",
        uid=2000,
        gid=3000,
        cpu_limit="4",
        node_selector={"sde/role": "workspaces"},
        tolerations=[{"key": "sde/workspaces", "operator": "Exists", "effect": "NoSchedule"}],
        extract={"csi_driver": "blob.csi.azure.com", "csi_attributes": {"container": "{project}"}},
    )
    spec = built["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/sde/workspace:1.4.2"
    assert spec["securityContext"]["runAsUser"] == container["securityContext"]["runAsUser"] == 2000
    assert spec["securityContext"]["fsGroup"] == 3000
    assert container["resources"]["limits"]["cpu"] == "4"
    assert spec["nodeSelector"] == {"sde/role": "workspaces"}
    assert spec["tolerations"] == [
        {"key": "sde/workspaces", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["volumes"][0] == {
        "name": "extract",
        "csi": {
            "driver": "blob.csi.azure.com",
            "readOnly": True,
            "volumeAttributes": {"container": "diabetes-2026"},
        },
    }


def test_each_project_gets_its_own_extract() -> None:
    volumes = [
        build_pod(PodSettings(), project_id=p, person_id="alice", session_name="s", env={})["spec"][
            "volumes"
        ][0]
        for p in ("diabetes-2026", "asthma-2026")
    ]
    assert volumes[0] != volumes[1]
    assert volumes[1]["persistentVolumeClaim"]["claimName"] == "sde-extract-asthma-2026"


def test_a_project_id_that_gives_no_valid_claim_name_is_refused() -> None:
    with pytest.raises(InputError, match="extract claim name"):
        build_pod(PodSettings(), project_id="ab-", person_id="alice", session_name="s", env={})


def test_no_host_path_and_no_host_namespaces_anywhere() -> None:
    keys = walk_keys(pod())
    assert "hostPath" not in keys
    spec = pod()["spec"]
    assert (spec["hostNetwork"], spec["hostPID"], spec["hostIPC"]) == (False, False, False)


def test_the_builder_copies_its_inputs() -> None:
    settings = PodSettings.from_mapping({"node_selector": {"sde/role": "ws"}})
    env = {"LANG": "C"}
    first = build_pod(settings, project_id="ab", person_id="al", session_name="s", env=env)
    first["spec"]["nodeSelector"]["sde/role"] = "changed"
    first["spec"]["containers"][0]["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    env["LANG"] = "changed"
    second = build_pod(
        settings, project_id="ab", person_id="al", session_name="s", env={"LANG": "C"}
    )
    assert second["spec"]["nodeSelector"] == {"sde/role": "ws"}
    assert second["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert second["spec"]["containers"][0]["env"][-1] == {"name": "LANG", "value": "C"}


def test_secret_env_is_refused_by_the_builder() -> None:
    with pytest.raises(InputError, match="looks like a secret"):
        build_pod(
            PodSettings(),
            project_id="ab",
            person_id="al",
            session_name="s",
            env={"JUPYTERHUB_API_TOKEN": "x"},
        )


# --- the NetworkPolicy ---------------------------------------------------------------


def test_network_policy_is_exactly_this() -> None:
    assert build_network_policy(PodSettings(), project_id="diabetes-2026") == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "sde-ws-diabetes-2026",
            "namespace": "sde-workspaces",
            "labels": {
                "app.kubernetes.io/name": "sde-workspace",
                "app.kubernetes.io/component": "network-policy",
                "app.kubernetes.io/managed-by": "sde",
                "sde/project": "diabetes-2026",
            },
            "annotations": {"sde/project": "diabetes-2026"},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "sde-workspace",
                    "sde/project": "diabetes-2026",
                }
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {"app": "jupyterhub", "component": "proxy"}
                            }
                        },
                        {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}},
                    ],
                    "ports": [{"protocol": "TCP", "port": 8888}],
                }
            ],
            "egress": [
                {
                    "to": [
                        {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 8081}],
                },
                {
                    "to": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/component": "web",
                                    "app.kubernetes.io/name": "sde",
                                }
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8800}],
                },
                {
                    "to": [
                        {
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
            ],
        },
    }


def test_network_policy_selects_only_its_project_and_matches_the_pods() -> None:
    policy = build_network_policy(PodSettings(), project_id="diabetes-2026")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    labels = pod()["metadata"]["labels"]
    assert selector.items() <= labels.items()
    other = build_network_policy(PodSettings(), project_id="asthma-2026")
    assert other["spec"]["podSelector"]["matchLabels"]["sde/project"] == "asthma-2026"


def test_network_policy_has_no_route_out() -> None:
    policy = build_network_policy(PodSettings(), project_id="diabetes-2026")
    keys = walk_keys(policy)
    assert "ipBlock" not in keys
    for rule in policy["spec"]["egress"] + policy["spec"]["ingress"]:
        peers = rule.get("to", rule.get("from"))
        # A rule without peers or ports would allow every destination or port.
        assert peers
        assert rule["ports"]
        assert all(peer["podSelector"]["matchLabels"] for peer in peers)
    ports = {(p["protocol"], p["port"]) for r in policy["spec"]["egress"] for p in r["ports"]}
    assert ports == {("TCP", 8081), ("TCP", 8800), ("UDP", 53), ("TCP", 53)}


def test_services_in_another_namespace_are_selected_there() -> None:
    settings = PodSettings.from_mapping({"services_namespace": "sde", "hub_port": 9081})
    policy = build_network_policy(settings, project_id="diabetes-2026")
    for peer in policy["spec"]["ingress"][0]["from"] + policy["spec"]["egress"][0]["to"]:
        assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "sde"}}
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9081}]


# --- the restricted profile ----------------------------------------------------------

Breaker = Callable[[dict[str, Any]], None]


def _container(p: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = p["spec"]["containers"][0]
    return container


def _sc(p: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = _container(p)["securityContext"]
    return sc


BREAKERS: list[tuple[str, str, Breaker]] = [
    ("host network", "host-namespaces", lambda p: p["spec"].update(hostNetwork=True)),
    ("host pid", "host-namespaces", lambda p: p["spec"].update(hostPID=True)),
    ("host ipc", "host-namespaces", lambda p: p["spec"].update(hostIPC=True)),
    ("privileged", "privileged", lambda p: _sc(p).update(privileged=True)),
    ("drop nothing", "capabilities", lambda p: _sc(p)["capabilities"].update(drop=["NET_RAW"])),
    ("add SYS_ADMIN", "capabilities", lambda p: _sc(p)["capabilities"].update(add=["SYS_ADMIN"])),
    ("no capabilities", "capabilities", lambda p: _sc(p).pop("capabilities")),
    ("host port", "host-ports", lambda p: _container(p)["ports"][0].update(hostPort=8888)),
    (
        "apparmor unconfined",
        "apparmor",
        lambda p: _sc(p).update(appArmorProfile={"type": "Unconfined"}),
    ),
    (
        "apparmor annotation",
        "apparmor",
        lambda p: p["metadata"]["annotations"].update(
            {"container.apparmor.security.beta.kubernetes.io/notebook": "unconfined"}
        ),
    ),
    ("selinux user", "selinux", lambda p: _sc(p).update(seLinuxOptions={"user": "root"})),
    ("selinux type", "selinux", lambda p: _sc(p).update(seLinuxOptions={"type": "spc_t"})),
    ("proc mount", "proc-mount", lambda p: _sc(p).update(procMount="Unmasked")),
    (
        "unsafe sysctl",
        "sysctls",
        lambda p: p["spec"]["securityContext"].update(
            sysctls=[{"name": "kernel.msgmax", "value": "1"}]
        ),
    ),
    (
        "windows host process",
        "windows-host-process",
        lambda p: _sc(p).update(windowsOptions={"hostProcess": True}),
    ),
    (
        "nfs volume",
        "volume-types",
        lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    ),
    (
        "escalation allowed",
        "privilege-escalation",
        lambda p: _sc(p).update(allowPrivilegeEscalation=True),
    ),
    ("escalation unset", "privilege-escalation", lambda p: _sc(p).pop("allowPrivilegeEscalation")),
    ("container root allowed", "run-as-non-root", lambda p: _sc(p).update(runAsNonRoot=False)),
    (
        "pod root allowed",
        "run-as-non-root",
        lambda p: p["spec"]["securityContext"].update(runAsNonRoot=False),
    ),
    (
        "non-root set nowhere",
        "run-as-non-root",
        lambda p: (_sc(p).pop("runAsNonRoot"), p["spec"]["securityContext"].pop("runAsNonRoot")),
    ),
    ("container uid 0", "run-as-user", lambda p: _sc(p).update(runAsUser=0)),
    ("pod uid 0", "run-as-user", lambda p: p["spec"]["securityContext"].update(runAsUser=0)),
    (
        "container unconfined",
        "seccomp",
        lambda p: _sc(p).update(seccompProfile={"type": "Unconfined"}),
    ),
    (
        "pod unconfined",
        "seccomp",
        lambda p: p["spec"]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    ),
    (
        "seccomp set nowhere",
        "seccomp",
        lambda p: (
            _sc(p).pop("seccompProfile"),
            p["spec"]["securityContext"].pop("seccompProfile"),
        ),
    ),
    (
        "privileged init container",
        "privileged",
        lambda p: p["spec"].update(
            initContainers=[
                dict(
                    copy.deepcopy(_container(p)),
                    name="init",
                    securityContext=dict(_sc(p), privileged=True),
                )
            ]
        ),
    ),
    ("no containers", "pod-shape", lambda p: p["spec"].pop("containers")),
]


@pytest.mark.parametrize(
    ("case", "rule", "breaker"), BREAKERS, ids=[case for case, _, _ in BREAKERS]
)
def test_each_rule_fires_on_a_pod_that_breaks_it(case: str, rule: str, breaker: Breaker) -> None:
    broken = copy.deepcopy(pod())
    breaker(broken)
    violations = check_pod_restricted(broken)
    assert {v.split(":", 1)[0] for v in violations} == {rule}, violations


def test_a_host_path_volume_breaks_two_rules() -> None:
    broken = pod()
    broken["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/etc"}})
    assert check_pod_restricted(broken) == [
        "host-path: volume 'host' is a hostPath",
        "volume-types: volume 'host' is of type hostPath",
    ]


def test_every_rule_has_a_breaking_case() -> None:
    covered = {rule for _, rule, _ in BREAKERS} | {"host-path"}
    assert covered == set(RESTRICTED_RULES)


def test_the_built_pod_is_restricted() -> None:
    assert check_pod_restricted(pod()) == []
    csi = {"csi_driver": "x.example", "csi_attributes": {"p": "{project}"}}
    assert check_pod_restricted(pod(extract=csi)) == []


def test_container_level_settings_alone_satisfy_the_profile() -> None:
    relaxed = pod()
    relaxed["spec"]["securityContext"] = {}
    assert check_pod_restricted(relaxed) == []


def test_net_bind_service_may_be_added() -> None:
    allowed = pod()
    _sc(allowed)["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert check_pod_restricted(allowed) == []


def test_extract_settings_reject_direct_construction_without_project() -> None:
    with pytest.raises(ConfigError, match="must contain"):
        ExtractVolume(claim="shared-extract")


# --- the extract on object storage ---------------------------------------------------

STORE_URL = "s3://sde-lake/prod/projects/diabetes-2026/extract"
STORE_OPTIONS = (("AWS_ENDPOINT_URL", "https://objects.example.org"), ("AWS_REGION", "eu-west-2"))


def store_extract(**kwargs: Any) -> StoreExtract:
    fields: dict[str, Any] = {
        "url": STORE_URL,
        "options": STORE_OPTIONS,
        "secret_name": "sde-lake-diabetes-2026",
        "secret_keys": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        "optional_secret_keys": ("AWS_SESSION_TOKEN",),
    }
    fields.update(kwargs)
    return StoreExtract(**fields)


def store_pod(extract: StoreExtract | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    return build_pod(
        PodSettings(),
        project_id="diabetes-2026",
        person_id="alice",
        session_name="default",
        env={"TZ": "Europe/London", "LANG": "en_GB.UTF-8"} if env is None else env,
        extract=extract,
    )


def test_a_pod_reading_its_extract_from_the_store_is_exactly_this() -> None:
    built = store_pod(store_extract())
    expected = copy.deepcopy(EXPECTED_POD)
    container = expected["spec"]["containers"][0]
    env = container["env"]
    env[3] = {"name": "SDE_EXTRACT", "value": STORE_URL}
    env[12:12] = [
        {"name": "AWS_ENDPOINT_URL", "value": "https://objects.example.org"},
        {"name": "AWS_REGION", "value": "eu-west-2"},
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {
                "secretKeyRef": {"name": "sde-lake-diabetes-2026", "key": "AWS_ACCESS_KEY_ID"}
            },
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "sde-lake-diabetes-2026", "key": "AWS_SECRET_ACCESS_KEY"}
            },
        },
        {
            "name": "AWS_SESSION_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "sde-lake-diabetes-2026",
                    "key": "AWS_SESSION_TOKEN",
                    "optional": True,
                }
            },
        },
    ]
    # No extract volume and no mount: the extract is read from the store.
    container["volumeMounts"] = container["volumeMounts"][1:]
    expected["spec"]["volumes"] = expected["spec"]["volumes"][1:]
    assert built == expected
    assert check_pod_restricted(built) == []
    assert "persistentVolumeClaim" not in walk_keys(built)


def test_without_a_secret_the_pod_has_no_credential_variables() -> None:
    built = store_pod(store_extract(secret_name=None, secret_keys=(), optional_secret_keys=()))
    env = built["spec"]["containers"][0]["env"]
    assert "valueFrom" not in walk_keys(built)
    assert {e["name"] for e in env} >= {"SDE_EXTRACT", "AWS_ENDPOINT_URL", "AWS_REGION"}
    assert not any(e["name"].startswith("AWS_") and "KEY" in e["name"] for e in env)
    assert [v["name"] for v in built["spec"]["volumes"]] == ["scratch", "tmp"]


def test_the_store_extract_is_the_same_object_for_a_local_lake_as_before() -> None:
    # extract=None is a local lake: exactly today's pod, with its extract volume.
    assert store_pod(None) == EXPECTED_POD


def test_env_may_not_override_the_stores_variables() -> None:
    with pytest.raises(InputError, match=r"AWS_REGION.*set by sde"):
        store_pod(store_extract(), env={"AWS_REGION": "us-east-1"})


def test_the_builder_refuses_an_extract_of_the_wrong_type() -> None:
    with pytest.raises(InputError, match="StoreExtract"):
        store_pod({"url": STORE_URL})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "/data/extract"}, "object-store URL"),
        ({"url": "s3://key:hunter2-value@bucket/p"}, "user information"),
        ({"url": "s3://bucket/p?x=hunter2-value"}, "object-store URL"),
        ({"url": "s3://bucket/$(HOME)/hunter2-value"}, "must not contain"),
        ({"url": "s3://bucket/{username}/hunter2-value"}, "must not contain"),
        ({"options": (("AWS_SECRET_ACCESS_KEY", "hunter2-value"),)}, "looks like a credential"),
        ({"options": (("AWS_ACCESS_KEY_ID", "hunter2-value"),)}, "looks like a credential"),
        ({"options": (("SDE_EXTRACT", "hunter2-value"),)}, "is set by sde"),
        ({"options": (("AWS-REGION", "hunter2-value"),)}, "not a valid variable name"),
        ({"options": (("AWS_REGION", "a"), ("AWS_REGION", "hunter2-value"))}, "given twice"),
        ({"options": (("AWS_REGION", 3),)}, "text value"),
        ({"options": (("AWS_REGION", "$(hunter2-value)"),)}, "must not contain"),
        ({"options": {"AWS_REGION": "hunter2-value"}}, "pairs of name and value"),
        ({"secret_name": "Not_A_Name"}, "valid Secret name"),
        ({"secret_name": None}, "credential keys need 'secret_name'"),
        ({"secret_keys": (), "optional_secret_keys": ()}, "at least one credential key"),
        ({"secret_keys": ("AWS_REGION",)}, "given twice"),
        ({"secret_keys": ("HOME",)}, "is set by sde"),
    ],
)
def test_bad_store_extracts_are_refused_without_their_values(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        store_extract(**fields)
    assert "hunter2-value" not in str(caught.value)


def test_paths_to_token_files_are_plain_options() -> None:
    extract = store_extract(
        options=(("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),),
        secret_name=None,
        secret_keys=(),
        optional_secret_keys=(),
    )
    assert extract.plain_env() == {
        "SDE_EXTRACT": STORE_URL,
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token",
    }
    assert extract.credential_env() == []


@pytest.mark.parametrize("name", ["AWS_ACCESS_KEY_ID", "MY_ACCESS_KEY_FOR_X"])
def test_access_key_names_are_secrets_in_extra_env(name: str) -> None:
    with pytest.raises(InputError, match="looks like a secret"):
        check_env({name: "hunter2-value"})


# --- egress to the object store ------------------------------------------------------


def test_object_store_egress_is_parsed_and_written_in_full() -> None:
    settings = PodSettings.from_mapping(
        {
            "object_store_egress": [
                {"cidr": "10.20.0.0/16", "ports": [443, 9000]},
                {"cidr": "192.0.2.7"},
                {"cidr": "2001:DB8:20::/48"},
            ]
        }
    )
    assert settings.object_store_egress == (
        ObjectStoreEgress("10.20.0.0/16", (443, 9000)),
        ObjectStoreEgress("192.0.2.7/32", (443,)),
        ObjectStoreEgress("2001:db8:20::/48", (443,)),
    )
    assert PodSettings.from_mapping({"object_store_egress": None}) == PodSettings()


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ("10.0.0.0/8", "must be a list"),
        ([{"cidr": "10.20.0.1/16"}], "not an address block"),
        ([{"cidr": "objects.example.org"}], "not an address block"),
        ([{"ports": [443]}], "needs a 'cidr'"),
        ([{"cidr": "10.20.0.0/16", "ports": []}], "at least one port"),
        ([{"cidr": "10.20.0.0/16", "ports": [0]}], "port numbers"),
        ([{"cidr": "10.20.0.0/16", "ports": [True]}], "port numbers"),
        ([{"cidr": "10.20.0.0/16", "ports": "443"}], "list of port numbers"),
        ([{"cidr": "10.20.0.0/16", "ports": [443, 443]}], "given twice"),
        ([{"cidr": "10.20.0.0/16", "protocol": "UDP"}], "unknown .* settings: protocol"),
        (["10.20.0.0/16"], "must be a mapping"),
        ([{"cidr": "0.0.0.0/0"}], "wider than /8"),
        ([{"cidr": "0.0.0.0/1"}, {"cidr": "128.0.0.0/1"}], "wider than /8"),
        ([{"cidr": "::/0"}], "wider than /32"),
    ],
)
def test_bad_object_store_egress_is_refused(blocks: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PodSettings.from_mapping({"object_store_egress": blocks})


def test_a_wide_block_needs_the_explicit_flag() -> None:
    wide = {"object_store_egress": [{"cidr": "0.0.0.0/0", "ports": [443]}]}
    settings = PodSettings.from_mapping({**wide, "allow_wide_object_store_egress": True})
    assert settings.object_store_egress[0].is_wide
    assert not ObjectStoreEgress("10.0.0.0/8").is_wide
    assert ObjectStoreEgress("10.0.0.0/7").is_wide
    with pytest.raises(ConfigError, match="true or false"):
        PodSettings.from_mapping({**wide, "allow_wide_object_store_egress": "yes"})
    with pytest.raises(ConfigError, match="ObjectStoreEgress values"):
        PodSettings(object_store_egress=({"cidr": "10.0.0.0/8"},))  # type: ignore[arg-type]


def test_the_policy_lets_the_pods_reach_only_the_stores_blocks() -> None:
    plain = build_network_policy(PodSettings(), project_id="diabetes-2026")
    settings = PodSettings.from_mapping(
        {
            "object_store_egress": [
                {"cidr": "10.20.0.0/16", "ports": [443, 9000]},
                {"cidr": "2001:db8:20::/48"},
            ]
        }
    )
    policy = build_network_policy(settings, project_id="diabetes-2026")
    egress = policy["spec"]["egress"]
    # Today's rules unchanged, then one rule per block: its CIDR, its TCP ports.
    assert egress[:3] == plain["spec"]["egress"]
    assert egress[3:] == [
        {
            "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 9000}],
        },
        {
            "to": [{"ipBlock": {"cidr": "2001:db8:20::/48"}}],
            "ports": [{"protocol": "TCP", "port": 443}],
        },
    ]
    assert {k: v for k, v in policy["spec"].items() if k != "egress"} == {
        k: v for k, v in plain["spec"].items() if k != "egress"
    }
    for rule in egress:
        # Never a rule open to every peer or to every port.
        assert rule["to"]
        assert rule["ports"]
        assert "except" not in walk_keys(rule)


def test_each_project_has_its_own_service_account_bound_as_configured() -> None:
    settings = PodSettings.from_mapping(
        {
            "service_account_annotations": {
                "iam.gke.io/gcp-service-account": "sde-{project}@lab.iam.gserviceaccount.com"
            }
        }
    )
    account = build_service_account(settings, project_id="diabetes-2026")
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == service_account_name("diabetes-2026")
    assert account["metadata"]["namespace"] == settings.namespace
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "sde-diabetes-2026@lab.iam.gserviceaccount.com",
        "sde/project": "diabetes-2026",
    }
    other = build_service_account(settings, project_id="asthma")
    assert other["metadata"]["name"] != account["metadata"]["name"]
    built = build_pod(
        settings, project_id="diabetes-2026", person_id="alice", session_name="lab", env={}
    )
    assert built["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert built["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("annotations", "said"),
    [
        ({"not a key!": "x"}, "is not a valid annotation key"),
        ({"sde/project": "other"}, "is set by sde"),
        ({"eks.amazonaws.com/role-arn": "arn:{person}"}, "only the placeholder {project}"),
        ({"eks.amazonaws.com/role-arn": 7}, "must be a mapping of names to text"),
    ],
)
def test_service_account_annotations_that_cannot_be_used_are_refused(
    annotations: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(said)):
        PodSettings.from_mapping({"service_account_annotations": annotations})


def test_azure_workload_identity_puts_its_label_on_the_pods() -> None:
    azure = PodSettings.from_mapping(
        {"service_account_annotations": {"azure.workload.identity/client-id": "0000-{project}"}}
    )
    built = build_pod(azure, project_id="asthma", person_id="alice", session_name="lab", env={})
    assert built["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    plain = build_pod(
        PodSettings(), project_id="asthma", person_id="alice", session_name="lab", env={}
    )
    assert "azure.workload.identity/use" not in plain["metadata"]["labels"]
