"""sde's Kubernetes adapter (``sde.adapters.kubernetes``) against a real kube-apiserver
on a real etcd, both built from their Go modules (``bash scripts/setup_kube.sh``) and
started once for the session by ``tests/kube_server.py``; without the binaries these
tests fail with the command to build them.

It is an API server alone: no kubelet, scheduler or controller-manager. Pods are stored,
admitted or refused, and stay ``Pending`` (nothing runs them), which is expected here;
what is tested is what the API server does with sde's objects, Pod Security Admission
included. Each test works in a namespace of its own.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sde.adapters.kubernetes import (
    PSA_LABELS,
    KubeApi,
    KubeConflict,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnauthorized,
    KubeUnreachable,
    WorkspaceCluster,
    selector_text,
)
from sde.domain.workspaces import (
    LABEL_NAME,
    WORKSPACE_APP,
    PodSettings,
    build_default_deny,
    build_network_policy,
    build_pod,
    check_pod_restricted,
    network_policy_name,
    service_account_name,
)
from sde.errors import ConfigError, InputError, NotFound, PolicyDenied, StateError
from tests.kube_server import KubeServer
from tests.kube_server import kube_server as kube_server  # the session fixture

pytestmark = pytest.mark.kube

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def api(kube_server: KubeServer) -> Iterator[KubeApi]:
    with KubeApi(kube_server.url, kube_server.token, kube_server.ca_file) as client:
        yield client


@pytest.fixture
def cluster(api: KubeApi) -> WorkspaceCluster:
    """A WorkspaceCluster on a namespace no other test uses, made ready."""
    settings = PodSettings(namespace=f"sde-ws-test-{next(_numbers)}")
    workspaces = WorkspaceCluster(api, settings)
    workspaces.ensure_namespace()
    return workspaces


def workspace_pod(cluster: WorkspaceCluster, project: str, person: str) -> dict[str, Any]:
    return build_pod(
        cluster.settings,
        project_id=project,
        person_id=person,
        session_name="default",
        env={"LANG": "en_GB.UTF-8"},
    )


def pod_names(cluster: WorkspaceCluster) -> set[str]:
    pods = cluster.api.list("Pod", cluster.namespace, {LABEL_NAME: WORKSPACE_APP})
    return {pod["metadata"]["name"] for pod in pods}


def policy_names(cluster: WorkspaceCluster) -> set[str]:
    policies = cluster.api.list("NetworkPolicy", cluster.namespace, {LABEL_NAME: WORKSPACE_APP})
    return {policy["metadata"]["name"] for policy in policies}


def test_the_server_is_the_version_built(api: KubeApi, kube_server: KubeServer) -> None:
    assert api.version() == kube_server.version


# --- the namespace -------------------------------------------------------------------


def test_namespace_enforces_restricted_and_denies_by_default(cluster: WorkspaceCluster) -> None:
    namespace = cluster.api.get("Namespace", cluster.namespace)
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    deny = cluster.api.get("NetworkPolicy", "sde-default-deny", cluster.namespace)
    assert deny["spec"] == build_default_deny(cluster.settings)["spec"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    versions = (namespace["metadata"]["resourceVersion"], deny["metadata"]["resourceVersion"])
    cluster.ensure_namespace()  # idempotent: nothing is rewritten
    again = (
        cluster.api.get("Namespace", cluster.namespace)["metadata"]["resourceVersion"],
        cluster.api.get("NetworkPolicy", "sde-default-deny", cluster.namespace)["metadata"][
            "resourceVersion"
        ],
    )
    assert again == versions


def test_an_existing_namespace_without_the_labels_gets_them(api: KubeApi) -> None:
    name = f"sde-ws-test-{next(_numbers)}"
    api.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"a": "b"}}}
    )
    WorkspaceCluster(api, PodSettings(namespace=name)).ensure_namespace()
    labels = api.get("Namespace", name)["metadata"]["labels"]
    assert {key: labels[key] for key in PSA_LABELS} == PSA_LABELS
    assert labels["a"] == "b"  # the namespace's own labels are kept


def test_a_weakened_default_deny_is_restored(cluster: WorkspaceCluster) -> None:
    deny = cluster.api.get("NetworkPolicy", "sde-default-deny", cluster.namespace)
    deny["spec"]["policyTypes"] = ["Ingress"]  # egress left open
    cluster.api.replace(deny)
    cluster.ensure_namespace()
    restored = cluster.api.get("NetworkPolicy", "sde-default-deny", cluster.namespace)
    assert restored["spec"]["policyTypes"] == ["Ingress", "Egress"]


# --- the project's NetworkPolicy -----------------------------------------------------


def test_open_project_creates_the_built_network_policy(cluster: WorkspaceCluster) -> None:
    name = network_policy_name("diabetes-2026")
    with pytest.raises(KubeNotFound):
        cluster.api.get("NetworkPolicy", name, cluster.namespace)
    cluster.open_project("diabetes-2026")
    stored = cluster.api.get("NetworkPolicy", name, cluster.namespace)
    built = build_network_policy(cluster.settings, project_id="diabetes-2026")
    assert stored["spec"] == built["spec"]
    assert stored["metadata"]["labels"] == built["metadata"]["labels"]
    assert stored["metadata"]["annotations"] == built["metadata"]["annotations"]

    version = stored["metadata"]["resourceVersion"]
    cluster.open_project("diabetes-2026")  # idempotent: the policy is not rewritten
    assert (
        cluster.api.get("NetworkPolicy", name, cluster.namespace)["metadata"]["resourceVersion"]
        == version
    )
    assert policy_names(cluster) == {"sde-default-deny", name}


def test_open_project_puts_back_a_policy_changed_in_the_cluster(
    cluster: WorkspaceCluster,
) -> None:
    cluster.open_project("diabetes-2026")
    name = network_policy_name("diabetes-2026")
    widened = cluster.api.get("NetworkPolicy", name, cluster.namespace)
    widened["spec"]["egress"].append({})  # an empty rule: egress to anywhere
    cluster.api.replace(widened)
    assert {} in cluster.api.get("NetworkPolicy", name, cluster.namespace)["spec"]["egress"]
    cluster.open_project("diabetes-2026")
    stored = cluster.api.get("NetworkPolicy", name, cluster.namespace)
    assert (
        stored["spec"] == build_network_policy(cluster.settings, project_id="diabetes-2026")["spec"]
    )


# --- Pod Security Admission ----------------------------------------------------------


def test_the_built_pod_is_admitted_under_restricted(cluster: WorkspaceCluster) -> None:
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    created = cluster.create_workspace_pod(pod)
    assert created["metadata"]["name"] == pod["metadata"]["name"]
    assert created["status"]["phase"] == "Pending"  # no kubelet: it never runs
    stored = cluster.api.get("Pod", pod["metadata"]["name"], cluster.namespace)
    assert stored["spec"]["securityContext"] == pod["spec"]["securityContext"]
    assert (
        stored["spec"]["containers"][0]["securityContext"]
        == (pod["spec"]["containers"][0]["securityContext"])
    )
    assert stored["spec"]["automountServiceAccountToken"] is False


def _privileged(pod: dict[str, Any]) -> None:
    context = pod["spec"]["containers"][0]["securityContext"]
    context["privileged"] = True
    context["allowPrivilegeEscalation"] = True  # implied; the server refuses one without


def _root(pod: dict[str, Any]) -> None:
    for context in (
        pod["spec"]["securityContext"],
        pod["spec"]["containers"][0]["securityContext"],
    ):
        context["runAsNonRoot"] = False
        context["runAsUser"] = 0


def _host_path(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"][0] = {"name": "extract", "hostPath": {"path": "/srv/lake"}}


UNSAFE: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    # change, sde's rule id, words in Pod Security Admission's refusal
    "privileged": (_privileged, "privileged", "privileged"),
    "root": (_root, "run-as-non-root", "runAsNonRoot"),
    "host-path": (_host_path, "host-path", "hostPath"),
}


@pytest.mark.parametrize("change", sorted(UNSAFE))
def test_an_unsafe_pod_is_refused_by_pod_security_admission(
    cluster: WorkspaceCluster, api: KubeApi, change: str
) -> None:
    make_unsafe, rule, words = UNSAFE[change]
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    make_unsafe(pod)
    assert any(v.startswith(f"{rule}:") for v in check_pod_restricted(pod))  # sde agrees
    with pytest.raises(KubeForbidden) as refused:
        api.create(pod)  # straight to the server: no check by sde first
    error = refused.value
    assert error.status == 403
    assert error.reason == "Forbidden"
    assert 'violates PodSecurity "restricted:latest"' in error.api_message
    assert words in error.api_message
    assert isinstance(error, PolicyDenied)
    assert "PodSecurity" in str(error)
    assert pod["metadata"]["name"] not in pod_names(cluster)


def test_the_same_unsafe_pod_is_stored_where_nothing_is_enforced(
    api: KubeApi, cluster: WorkspaceCluster
) -> None:
    """The control for the test above: what refuses those pods is the namespace's
    restricted label, not something else about the pod or the server."""
    name = f"sde-open-test-{next(_numbers)}"
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    for make_unsafe, _, _ in UNSAFE.values():
        make_unsafe(pod)
    pod["metadata"]["namespace"] = name
    created = api.create(pod)
    assert created["spec"]["containers"][0]["securityContext"]["privileged"] is True


def test_create_workspace_pod_refuses_an_unsafe_pod_before_the_server(
    cluster: WorkspaceCluster,
) -> None:
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    _privileged(pod)
    with pytest.raises(PolicyDenied) as refused:
        cluster.create_workspace_pod(pod)
    assert not isinstance(refused.value, KubeForbidden)  # sde's own check refused it
    assert any(reason.startswith("privileged:") for reason in refused.value.reasons)
    assert pod_names(cluster) == set()


def test_create_workspace_pod_refuses_a_pod_of_another_namespace(
    cluster: WorkspaceCluster,
) -> None:
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    pod["metadata"]["namespace"] = "default"
    with pytest.raises(InputError, match="not in namespace"):
        cluster.create_workspace_pod(pod)


# --- suspension and bans -------------------------------------------------------------


def test_close_project_removes_its_pods_and_policy_only(cluster: WorkspaceCluster) -> None:
    pods = {
        (project, person): workspace_pod(cluster, project, person)
        for project, person in [
            ("diabetes-2026", "alice"),
            ("diabetes-2026", "bob"),
            ("asthma-2026", "alice"),
        ]
    }
    for project in ("diabetes-2026", "asthma-2026"):
        cluster.open_project(project)
    for pod in pods.values():
        cluster.create_workspace_pod(pod)
    names = {key: pod["metadata"]["name"] for key, pod in pods.items()}

    removed = cluster.close_project("diabetes-2026")

    pods_removed = sorted(
        [f"Pod/{names['diabetes-2026', 'alice']}", f"Pod/{names['diabetes-2026', 'bob']}"]
    )
    assert removed == [
        *pods_removed,
        f"NetworkPolicy/{network_policy_name('diabetes-2026')}",
        f"ServiceAccount/{service_account_name('diabetes-2026')}",
    ]
    assert pod_names(cluster) == {names["asthma-2026", "alice"]}
    assert policy_names(cluster) == {"sde-default-deny", network_policy_name("asthma-2026")}
    accounts = cluster.api.list("ServiceAccount", cluster.namespace, {LABEL_NAME: WORKSPACE_APP})
    assert [a["metadata"]["name"] for a in accounts] == [service_account_name("asthma-2026")]
    assert cluster.close_project("diabetes-2026") == []  # idempotent


def test_each_project_runs_as_its_own_service_account_bound_as_configured(
    cluster: WorkspaceCluster,
) -> None:
    """One ServiceAccount per project, annotated for workload identity with the project
    put in; no token mounted; the pods run as it; a changed or removed annotation reaches
    the cluster (a binding left over would keep the project's old identity)."""
    role = "arn:aws:iam::123456789012:role/sde-{project}"
    bound = dataclasses.replace(
        cluster.settings,
        service_account_annotations=(("eks.amazonaws.com/role-arn", role),),
    )
    cluster = WorkspaceCluster(cluster.api, bound)
    cluster.ensure_namespace()
    for project in ("diabetes-2026", "asthma-2026"):
        cluster.open_project(project)
    pod = cluster.create_workspace_pod(workspace_pod(cluster, "diabetes-2026", "alice"))
    assert pod["spec"]["serviceAccountName"] == service_account_name("diabetes-2026")
    assert pod["spec"]["automountServiceAccountToken"] is False
    accounts = {
        a["metadata"]["name"]: a
        for a in cluster.api.list("ServiceAccount", cluster.namespace, {LABEL_NAME: WORKSPACE_APP})
    }
    assert set(accounts) == {service_account_name(p) for p in ("diabetes-2026", "asthma-2026")}
    account = accounts[service_account_name("diabetes-2026")]
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/sde-diabetes-2026",
        "sde/project": "diabetes-2026",
    }
    # The binding removed from the settings is removed from the cluster at the next spawn.
    cluster = WorkspaceCluster(
        cluster.api, dataclasses.replace(bound, service_account_annotations=())
    )
    cluster.open_project("diabetes-2026")
    account = cluster.api.get(
        "ServiceAccount", service_account_name("diabetes-2026"), cluster.namespace
    )
    assert account["metadata"]["annotations"] == {"sde/project": "diabetes-2026"}


def test_stop_person_removes_only_that_persons_pods(cluster: WorkspaceCluster) -> None:
    # "carol." is a valid person id but not a valid label value: it is selected by its
    # stand-in label.
    keys = [
        ("diabetes-2026", "carol."),
        ("asthma-2026", "carol."),
        ("diabetes-2026", "carol"),
        ("diabetes-2026", "dan"),
    ]
    names = {}
    for project, person in keys:
        pod = workspace_pod(cluster, project, person)
        cluster.create_workspace_pod(pod)
        names[project, person] = pod["metadata"]["name"]

    removed = cluster.stop_person("carol.")

    assert removed == sorted(
        [f"Pod/{names['diabetes-2026', 'carol.']}", f"Pod/{names['asthma-2026', 'carol.']}"]
    )
    assert pod_names(cluster) == {names["diabetes-2026", "carol"], names["diabetes-2026", "dan"]}
    assert cluster.stop_person("carol.") == []


# --- the API's refusals --------------------------------------------------------------


def test_a_wrong_token_is_refused(kube_server: KubeServer) -> None:
    wrong = "not-the-token-" + "x" * 20
    client = KubeApi(kube_server.url, wrong, kube_server.ca_file)
    with client, pytest.raises(KubeUnauthorized) as refused:
        client.get("Namespace", "default")
    error = refused.value
    assert (error.status, error.reason) == (401, "Unauthorized")
    assert isinstance(error, ConfigError)
    assert str(error) == (
        "Kubernetes API server refused getting Namespace 'default' (Unauthorized): Unauthorized"
    )
    assert wrong not in str(error)


def test_a_user_without_rights_is_forbidden_by_rbac(kube_server: KubeServer) -> None:
    client = KubeApi(kube_server.url, kube_server.viewer_token, kube_server.ca_file)
    with client, pytest.raises(KubeForbidden) as refused:
        client.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sde-viewer-test"}}
        )
    assert refused.value.status == 403
    assert 'User "viewer" cannot create resource "namespaces"' in refused.value.api_message
    assert "PodSecurity" not in str(refused.value)


def test_an_untrusted_certificate_is_refused(kube_server: KubeServer) -> None:
    # No CA bundle: the system's CAs do not know the test server's CA.
    client = KubeApi(kube_server.url, kube_server.token)
    with client, pytest.raises(KubeUnreachable, match="TLS certificate is not trusted"):
        client.get("Namespace", "default")


def test_conflicts_and_missing_objects(cluster: WorkspaceCluster) -> None:
    deny = build_default_deny(cluster.settings)
    with pytest.raises(KubeConflict) as exists:
        cluster.api.create(deny)
    assert exists.value.reason == "AlreadyExists"
    assert isinstance(exists.value, StateError)

    stale = cluster.api.get("NetworkPolicy", "sde-default-deny", cluster.namespace)
    changed_meanwhile = copy.deepcopy(stale)
    changed_meanwhile["metadata"]["labels"]["touched"] = "yes"
    cluster.api.replace(changed_meanwhile)  # moves the resourceVersion on
    with pytest.raises(KubeConflict) as changed:
        cluster.api.replace(stale)
    assert changed.value.reason == "Conflict"

    with pytest.raises(KubeNotFound) as missing:
        cluster.api.delete("Pod", "ws-nobody", cluster.namespace)
    assert isinstance(missing.value, NotFound)
    assert cluster.api.delete("Pod", "ws-nobody", cluster.namespace, missing_ok=True) is False


def test_an_invalid_manifest_is_refused_with_the_servers_reason(
    cluster: WorkspaceCluster,
) -> None:
    pod = workspace_pod(cluster, "diabetes-2026", "alice")
    pod["spec"]["containers"][0]["name"] = "Not_A_DNS_Label"
    with pytest.raises(KubeInvalid) as refused:
        cluster.api.create(pod)
    assert refused.value.status == 422
    assert refused.value.reason == "Invalid"
    assert "spec.containers[0].name" in refused.value.api_message


def test_the_client_refuses_plain_http_and_empty_selectors(kube_server: KubeServer) -> None:
    plain = kube_server.url.replace("https://", "http://")
    with pytest.raises(ConfigError, match="https"):
        KubeApi(plain, kube_server.token, kube_server.ca_file)
    with pytest.raises(InputError, match="at least one label"):
        selector_text({})
