"""Workspaces in a real Kubernetes API server (kube-apiserver + etcd built from their Go
modules, ``tests/kube_server.py``; no kubelet, so pods are admitted and stored but never
run):

- :class:`~sde.hub.kube.SdeKubeSpawner` (KubeSpawner, configured by sde for the chosen
  project) puts the namespace (Pod Security "restricted") and the project's NetworkPolicy
  in place, and KubeSpawner's own create call gets the pod admitted; stopping deletes it;
- the session guard's cluster step removes the pods and NetworkPolicy of a project once
  it is suspended, and leaves an approved project's alone; each removal is audited;
- it removes the workspace pods no session of the hub accounts for (orphans of a hub
  restart), once older than the grace period, and no other.

KubeSpawner's ``_mock=True`` (its own test mode) stands in for JupyterHub's User and Hub
objects only; its API calls go to the real server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sde.adapters.kubernetes import KubeApi, KubeNotFound, WorkspaceCluster
from sde.domain.sessions import ORPHAN_GRACE, RunningSession
from sde.domain.workspace_tokens import token_key, verify
from sde.domain.workspaces import PodSettings, build_pod, network_policy_name
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.sessions import close_inactive_projects, remove_orphan_pods
from sde.services.wiring import control_plane, policy_engine
from tests.factories import airlock_project, application, approve_through_board
from tests.integration.test_session_guard import RecordingHub
from tests.kube_server import KubeServer
from tests.kube_server import kube_server as kube_server  # the session fixture

pytestmark = [pytest.mark.kube, pytest.mark.sql, pytest.mark.policy]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    with control_plane(home) as store:
        engine = policy_engine(home)
        airlock_project(store, engine)
        ProjectService(store).create_project(
            "olu", application("asthma", {"patients": ["sex"]}, sponsor="Uni")
        )
        ProjectService(store).add_member("olu", "asthma", "alice")
        approve_through_board(store, engine, "asthma", decided_by="bea")
    return home


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"sde-ws-{abs(hash(request.node.name)) % 10**8}"


@pytest.fixture
def cluster(kube_server: KubeServer, namespace: str) -> Iterator[WorkspaceCluster]:
    settings = PodSettings.from_mapping(
        {"image": "registry.example/sde/workspace:1.0", "namespace": namespace}
    )
    with KubeApi(kube_server.url, kube_server.token, kube_server.ca_file) as api:
        yield WorkspaceCluster(api, settings)


def _kubeconfig(path: Path, server: KubeServer) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- cluster: {{server: '{server.url}', certificate-authority: "
        f"'{server.ca_file}'}}\n  name: test\n"
        "contexts:\n- context: {cluster: test, user: test}\n  name: test\n"
        "current-context: test\n"
        f"users:\n- name: test\n  user: {{token: '{server.token}'}}\n"
    )
    return path


def test_the_kube_spawner_opens_the_project_and_its_pod_is_admitted_then_deleted(
    home: Home,
    cluster: WorkspaceCluster,
    kube_server: KubeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes_asyncio.config import kube_config

    from sde.hub.kube import SdeKubeSpawner

    config_file = _kubeconfig(tmp_path / "kubeconfig", kube_server)
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config_file))
    # The spawner reads the pods' settings from the home's config, as in a deployment.
    config_path = home.root / "config.yaml"
    data = yaml.safe_load(config_path.read_text())
    data["workspaces"] = {"image": cluster.settings.image, "namespace": cluster.namespace}
    config_path.write_text(yaml.safe_dump(data))

    async def spawn_and_stop() -> tuple[list[str], dict[str, Any]]:
        spawner = SdeKubeSpawner(
            _mock=True,
            sde_home=str(home.root),
            sde_api_url="http://sde.sde-services:8800/services/airlock",
            start_timeout=4,
            events_enabled=False,
        )
        spawner.sde_cluster = lambda _settings: cluster  # the test server, not in-cluster
        spawner.user.name = "alice"  # the mock user's own name is not a person id
        spawner.user_options = {"project": "diabetes"}
        with pytest.raises(TimeoutError):  # no kubelet: admitted, stored, never running
            await spawner.start()
        pods = cluster.api.list("Pod", cluster.namespace, {"sde/project": "diabetes"})
        names = [p["metadata"]["name"] for p in pods]
        [pod] = pods
        await spawner.stop(now=True)
        return names, pod

    names, pod = asyncio.run(spawn_and_stop())
    assert names == [pod["metadata"]["name"]]
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["SDE_PROJECT"], env["SDE_USER"]) == ("diabetes", "alice")
    assert env["SDE_API_URL"] == "http://sde.sde-services:8800/services/airlock"
    claim = verify(token_key(home.master_key()), env["SDE_TOKEN"], dt.datetime.now(dt.UTC))
    assert (claim.person, claim.project) == ("alice", "diabetes")
    assert "SDE_HOME" not in env
    assert "SDE_MASTER_KEY" not in env
    assert env["SDE_EXTRACT"] == "/home/jovyan/extract"
    namespace = cluster.api.get("Namespace", cluster.namespace)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policy = cluster.api.get("NetworkPolicy", network_policy_name("diabetes"), cluster.namespace)
    assert policy["spec"]["podSelector"]["matchLabels"]["sde/project"] == "diabetes"
    assert cluster.api.list("Pod", cluster.namespace, {"sde/project": "diabetes"}) == []


def test_the_guard_closes_a_suspended_project_in_the_cluster_and_no_other(
    home: Home, cluster: WorkspaceCluster
) -> None:
    cluster.ensure_namespace()
    for project in ("diabetes", "asthma"):
        cluster.open_project(project)
        cluster.create_workspace_pod(
            build_pod(
                cluster.settings, project_id=project, person_id="alice", session_name="lab", env={}
            )
        )
    with control_plane(home) as store:
        assert close_inactive_projects(store, cluster, store.audit) == {}
        GovernanceService(
            store, policy_engine(home), GovernanceSettings.from_mapping(home.settings.extra)
        ).suspend("olu", "diabetes", "agreement lapsed")
        closed = close_inactive_projects(store, cluster, store.audit)
        events = [e for e in store.audit.events() if e.action == "workspace.project_closed"]
    [removed] = closed.values()
    assert list(closed) == ["diabetes"]
    assert any(r.startswith("Pod/") for r in removed)
    assert f"NetworkPolicy/{network_policy_name('diabetes')}" in removed
    with pytest.raises(KubeNotFound):
        cluster.api.get("NetworkPolicy", network_policy_name("diabetes"), cluster.namespace)
    assert cluster.api.list("Pod", cluster.namespace, {"sde/project": "diabetes"}) == []
    assert cluster.open_projects() == ["asthma"]
    assert len(cluster.api.list("Pod", cluster.namespace, {"sde/project": "asthma"})) == 1
    [event] = events
    assert (event.subject, event.details["status"]) == ("project:diabetes", "suspended")
    assert event.details["removed"] == removed


def test_with_the_lake_on_object_storage_the_pod_is_admitted_with_secret_refs_only(
    home: Home,
    cluster: WorkspaceCluster,
    kube_server: KubeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A remote lake with per-project Secrets: the real API server admits the pod under
    "restricted" with the credentials as secretKeyRefs (the Secret need not exist for
    admission; the kubelet would wait for it), no extract volume, and the project's
    policy lets the pods reach the store's block."""
    from kubernetes_asyncio.config import kube_config

    from sde.hub.kube import SdeKubeSpawner

    config_file = _kubeconfig(tmp_path / "kubeconfig", kube_server)
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config_file))
    canaries = {
        "SDE_LAKE_AWS_ACCESS_KEY_ID": "AKIACANARYKUBE000001",
        "SDE_LAKE_AWS_SECRET_ACCESS_KEY": "canary-kube-secret-5e4d3c2b1a",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    config_path = home.root / "config.yaml"
    data = yaml.safe_load(config_path.read_text())
    data["lake"] = {
        "url": "s3://sde-lake/prod",
        "options": {"AWS_ENDPOINT_URL": "https://objects.example.org"},
        "workspace_credentials": "per_project_secret",
        "project_credentials": "sde-lake-{project}",
    }
    data["workspaces"] = {
        "image": cluster.settings.image,
        "namespace": cluster.namespace,
        "object_store_egress": [{"cidr": "10.20.0.0/16", "ports": [443]}],
    }
    config_path.write_text(yaml.safe_dump(data))

    async def spawn_and_stop() -> dict[str, Any]:
        spawner = SdeKubeSpawner(
            _mock=True,
            sde_home=str(home.root),
            sde_api_url="http://sde.sde-services:8800/services/airlock",
            start_timeout=4,
            events_enabled=False,
        )
        spawner.sde_cluster = lambda settings: WorkspaceCluster(cluster.api, settings)
        spawner.user.name = "alice"
        spawner.user_options = {"project": "diabetes"}
        with pytest.raises(TimeoutError):  # no kubelet: admitted, stored, never running
            await spawner.start()
        [pod] = cluster.api.list("Pod", cluster.namespace, {"sde/project": "diabetes"})
        await spawner.stop(now=True)
        return pod

    pod = asyncio.run(spawn_and_stop())
    text = yaml.safe_dump(pod)
    assert not [name for name, value in canaries.items() if value in text]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SDE_EXTRACT"]["value"] == "s3://sde-lake/prod/projects/diabetes/extract"
    assert env["AWS_ENDPOINT_URL"]["value"] == "https://objects.example.org"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "sde-lake-diabetes",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    assert "value" not in env["AWS_ACCESS_KEY_ID"]
    assert {v["name"] for v in pod["spec"]["volumes"]} >= {"scratch", "tmp"}
    assert not any(
        "persistentVolumeClaim" in v or "csi" in v or v["name"] == "extract"
        for v in pod["spec"]["volumes"]
    )
    policy = cluster.api.get("NetworkPolicy", network_policy_name("diabetes"), cluster.namespace)
    blocks = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert blocks == [
        {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    ]


def test_the_guard_removes_pods_no_session_of_the_hub_accounts_for(
    home: Home, cluster: WorkspaceCluster
) -> None:
    """A hub that restarted forgets its sessions, not their pods. The hub here is
    ``RecordingHub`` (a stand-in for JupyterHub's REST API, as in test_session_guard.py):
    alice's default server runs on diabetes; her old "analysis" server and a pod no hub
    made are orphans."""
    cluster.ensure_namespace()
    made = []
    for project, person, server in (
        ("diabetes", "alice", ""),
        ("diabetes", "alice", "analysis"),
        ("asthma", "alice", None),  # no hub annotation at all: made by hand
    ):
        pod = build_pod(
            cluster.settings,
            project_id=project,
            person_id=person,
            session_name=server or "lab",
            env={},
        )
        if server is not None:
            pod["metadata"]["annotations"]["hub.jupyter.org/username"] = person
        if server:
            pod["metadata"]["annotations"]["hub.jupyter.org/servername"] = server
        made.append(cluster.create_workspace_pod(pod)["metadata"]["name"])
    hub = RecordingHub([RunningSession("alice", "", "diabetes")])
    now = dt.datetime.now(dt.UTC)
    with control_plane(home) as store:
        # Young pods are left alone: a spawn may have begun after the hub was asked.
        assert remove_orphan_pods(hub, cluster, store.audit, now=now) == []
        removed = remove_orphan_pods(hub, cluster, store.audit, now=now + ORPHAN_GRACE)
        events = [e for e in store.audit.events() if e.action == "workspace.orphan_removed"]
        # Removed once: a second pass finds nothing more.
        assert remove_orphan_pods(hub, cluster, store.audit, now=now + ORPHAN_GRACE) == []
    assert sorted(p.name for p in removed) == sorted(made[1:])
    assert {(p.project, p.server) for p in removed} == {("diabetes", "analysis"), ("asthma", "")}
    left = [p.name for p in cluster.workspace_pods()]
    assert left == [made[0]]
    assert hub.stopped == []  # the hub's own session is not touched
    assert sorted((e.actor, e.subject, e.details["pod"]) for e in events) == sorted(
        ("session-guard", "person:alice", name) for name in made[1:]
    )
