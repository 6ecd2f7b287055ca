"""The Helm chart ``helm/sde``, rendered offline by Helm's own Go SDK (helm-python-sdk),
checked against the Kubernetes schemas (kubernetes-validate, strict), sde's own rules
(the "restricted" profile, the workspace settings and NetworkPolicy builders, the policy
bundle hash), and by running what the chart ships: the init container's script that
assembles a pod's sde home, the hub's configuration file, and the real OPA over the
policies ConfigMap laid out as a kubelet mounts it.

Not verified here (no cluster on this machine): that a cluster admits and runs these
objects, that its CNI enforces the NetworkPolicies, and that the images build.
"""

from __future__ import annotations

import copy
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from sde.adapters.kubernetes import KubeApi, KubeForbidden, WorkspaceCluster
from sde.adapters.rego_embedded import policy_bundle_hash, policy_files
from sde.domain.workspaces import (
    PodSettings,
    build_default_deny,
    build_network_policy,
    build_pod,
    build_service_account,
    check_pod_restricted,
    network_policy_name,
    service_account_name,
)
from sde.hub.oidc import HubAuthSettings
from sde.services.home import Settings, open_home
from sde.web.patient_oidc import PRIVATE_KEY_ENV as PATIENT_KEY_ENV
from sde.web.patient_oidc import SECRET_ENV as PATIENT_SECRET_ENV
from sde.web.patient_oidc import patient_oidc_settings
from tests import postgres
from tests.browser import free_port
from tests.kube_server import KubeServer
from tests.kube_server import kube_server as kube_server  # the session fixture
from tests.processes import running

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "sde"
POLICIES = REPO / "policies"
OPA = REPO / ".build" / "bin" / "opa"
PRODUCTION = yaml.safe_load((CHART / "values-production.yaml").read_text())
# The production example keeps its tables on S3; the lake-on-a-claim tests use it on a PVC.
PRODUCTION_ON_PVC = {
    **PRODUCTION,
    "lake": {"type": "pvc", "persistence": {"existingClaim": "sde-lake-production"}},
}
RELEASE, NAMESPACE = "sde", "research"
NEWEST = kubernetes_validate.latest_version()
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
VALUE_SETS = {"default": {}, "production": PRODUCTION}

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(chart: helm.Chart, values: dict[str, Any], namespace: str = NAMESPACE) -> list[Doc]:
    """Every object the chart renders (hooks included), NOTES.txt left out."""
    out = chart.render(copy.deepcopy(values), name=RELEASE, namespace=namespace, is_install=True)
    docs: list[Doc] = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: helm.Chart) -> list[Doc]:
    return render(chart, VALUE_SETS[request.param])


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str, namespace: str = NAMESPACE) -> Doc:
    """The object of that kind and name in ``namespace`` (or cluster-scoped)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace", namespace) == namespace
    ]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_template(doc: Doc) -> Doc:
    """The pod (metadata + spec) a workload object makes."""
    if doc["kind"] == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"])
    return dict(doc["spec"]["template"])


def workloads(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in POD_KINDS]


def containers(pod: Doc) -> list[Doc]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_yaml(docs: list[Doc]) -> dict[str, Any]:
    data = one(docs, "ConfigMap", f"{RELEASE}-config")["data"]["config.yaml"]
    loaded: dict[str, Any] = yaml.safe_load(data)
    return loaded


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- Helm itself ---------------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_the_chart_lints_clean(values: str) -> None:
    report = helm.lint(CHART, copy.deepcopy(VALUE_SETS[values]), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is information ("icon is recommended"); nothing worse.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_default_render_has_every_component(chart: helm.Chart) -> None:
    docs = render(chart, {})
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [
        ("Deployment", "sde-hub"),
        ("Deployment", "sde-airlock"),
        ("Deployment", "sde-opa"),
        ("Job", "sde-migrations"),
        ("ConfigMap", "sde-config"),
        ("ConfigMap", "sde-opa-policies"),
        ("Service", "sde-proxy-public"),
        ("PersistentVolumeClaim", "sde-lake"),
        ("Namespace", "sde-workspaces"),
        ("NetworkPolicy", "sde-default-deny"),
    ]:
        assert expected in names
    assert ("CronJob", "sde-ingest") not in names  # off unless asked for
    assert ("CronJob", "sde-ingest") in {
        (d["kind"], d["metadata"]["name"]) for d in render(chart, PRODUCTION)
    }


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[Doc]) -> None:
    assert len(rendered) > 15
    for doc in rendered:
        version = kubernetes_validate.validate(doc, NEWEST, strict=True)
        assert version == NEWEST.rsplit(".", 1)[0]


def test_strict_validation_is_really_strict(chart: helm.Chart) -> None:
    deployment = copy.deepcopy(one(render(chart, {}), "Deployment", "sde-hub"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, NEWEST, strict=True)


def test_the_packaged_chart_carries_the_policies(chart: helm.Chart, tmp_path: Path) -> None:
    archive = helm.package(CHART, destination=tmp_path)
    packaged = helm.Chart.load(archive)
    assert render(packaged, {}) == render(chart, {})


# --- Pods: Pod Security "restricted" and the rest of the house rules ------------------


def test_every_pod_meets_the_restricted_profile(rendered: list[Doc]) -> None:
    assert len(workloads(rendered)) >= 4
    for doc in workloads(rendered):
        pod = pod_template(doc)
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert check_pod_restricted(pod) == [], where
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec.get("enableServiceLinks") is False, where
        for container in containers(pod):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["runAsUser"] > 0
            for part in ("requests", "limits"):
                assert set(container["resources"][part]) >= {"cpu", "memory"}, where


def test_only_the_hub_gets_a_service_account_token(rendered: list[Doc]) -> None:
    tokens = {
        doc["metadata"]["name"]: pod_template(doc)["spec"].get("automountServiceAccountToken")
        for doc in workloads(rendered)
    }
    assert tokens.pop(f"{RELEASE}-hub") is True
    assert tokens
    assert set(tokens.values()) == {False}
    account = one(rendered, "ServiceAccount", f"{RELEASE}-hub")
    assert account["automountServiceAccountToken"] is False  # only the hub's pod asks for it


def test_long_running_pods_have_probes_and_disruption_budgets(rendered: list[Doc]) -> None:
    budgets = by_kind(rendered, "PodDisruptionBudget")
    for doc in by_kind(rendered, "Deployment"):
        for container in pod_template(doc)["spec"]["containers"]:
            assert "livenessProbe" in container
            assert "readinessProbe" in container
        labels = pod_template(doc)["metadata"]["labels"]
        assert any(labels_match(b["spec"]["selector"]["matchLabels"], labels) for b in budgets)


def test_probes_use_each_components_health_endpoint(chart: helm.Chart) -> None:
    docs = render(chart, {})
    hub = pod_template(one(docs, "Deployment", "sde-hub"))["spec"]["containers"][0]
    assert hub["livenessProbe"]["httpGet"]["path"] == "/hub/health"
    opa = pod_template(one(docs, "Deployment", "sde-opa"))["spec"]["containers"][0]
    assert opa["livenessProbe"]["httpGet"]["path"] == "/health"
    assert opa["readinessProbe"]["httpGet"]["path"] == "/health?bundles"


# --- Secrets --------------------------------------------------------------------------

CANARIES = {
    "SDE_MASTER_KEY": "c4a9" * 16,
    "SDE_DATABASE_URL": "postgresql://sde:canary-db-password-7f3e@db/sde",
    "JPY_COOKIE_SECRET": "d00d" * 16,
    "SDE_AIRLOCK_API_TOKEN": "canary-airlock-token-91b2",
    "SDE_OIDC_CLIENT_SECRET": "canary-oidc-secret-5d1c",
    PATIENT_SECRET_ENV: "canary-patient-secret-0a4e",
    PATIENT_KEY_ENV: "canary-patient-private-key-3c8d",
}


def test_no_secret_value_is_in_any_rendered_object(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where a careless chart would find secrets: the renderer's environment.
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    for values in VALUE_SETS.values():
        text = "\n".join(
            chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE).values()
        )
        for value in CANARIES.values():
            assert value not in text
        docs = render(chart, values)
        assert by_kind(docs, "Secret") == []


def test_secrets_reach_pods_only_by_reference_to_the_existing_secret(rendered: list[Doc]) -> None:
    names = set()
    for doc in workloads(rendered):
        for container in containers(pod_template(doc)):
            for env in container.get("env", []):
                secret_like = any(
                    word in env["name"] for word in ("KEY", "SECRET", "TOKEN", "PASSWORD", "URL")
                ) and env["name"] not in {
                    "SDE_HUB_CONNECT_URL",
                    "SDE_AIRLOCK_URL",
                    "SDE_POD_API_URL",
                    "JUPYTERHUB_SERVICE_URL",
                    "JUPYTERHUB_BASE_URL",
                    "JUPYTERHUB_API_URL",
                    "JUPYTERHUB_OAUTH_CALLBACK_URL",
                    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS",
                }
                if secret_like:
                    assert "value" not in env, env["name"]
                    names.add(env["valueFrom"]["secretKeyRef"]["name"])
    expected = (
        "sde-production-secrets" if len(names & {"sde-production-secrets"}) else "sde-secrets"
    )
    assert names == {expected}


def test_config_maps_hold_no_secrets(rendered: list[Doc]) -> None:
    settings = config_yaml(rendered)
    assert "database_url" not in settings

    def keys(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield str(key)
                yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    for key in keys(settings):
        lowered = key.lower()
        assert "secret" not in lowered, key
        assert "password" not in lowered, key
        assert "token" not in lowered or key == "token_url", key


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": {"existingSecret": ""}}, "existingSecret"),
        ({"secrets": {"keys": {"masterKey": ""}}}, "secrets.keys.masterKey"),
        (
            {
                "hub": {
                    "oidc": {
                        **PRODUCTION["hub"]["oidc"],
                        "enabled": True,
                    }
                },
                "secrets": {"keys": {"oidcClientSecret": ""}},
            },
            "secrets.keys.oidcClientSecret",
        ),
        (
            {
                "hub": {
                    "oidc": {"enabled": True, "egressTo": [{"ipBlock": {"cidr": "203.0.113.1/32"}}]}
                }
            },
            "hub.oidc.clientId",
        ),
        ({"hub": {"oidc": {**PRODUCTION["hub"]["oidc"], "egressTo": []}}}, "hub.oidc.egressTo"),
        ({"patientPage": {"oidc": {"enabled": True}}}, "patientPage.oidc.egressTo"),
        (
            {"secrets": {"keys": {"databaseMigrationUrl": "database-migration-url"}}},
            "name the role sde runs as in database.runtimeRole",
        ),
        ({"database": {"runtimeRole": "sde_app"}}, "secrets.keys.databaseMigrationUrl"),
    ],
)
def test_a_missing_secret_or_setting_refuses_to_render(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message.replace(".", r"\.")):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


# --- Values schema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"unknownKey": 1}, "unknownKey"),
        ({"lake": {"type": "nfs"}}, "/lake/type"),
        ({"proxy": {"service": {"type": "ExternalName"}}}, "/proxy/service/type"),
        ({"runAsUser": 0}, "/runAsUser"),
        ({"workspaces": {"uid": 0}}, "/workspaces/uid"),
        ({"database": {"egressTo": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}}, "cidr"),
        ({"database": {"egressTo": [{}]}}, "/database/egressTo/0"),
        ({"database": {"caCertificate": {"configMap": "Bad_Name"}}}, "/database/caCertificate"),
        ({"database": {"caCertificate": {"key": "../ca.crt"}}}, "/database/caCertificate/key"),
        ({"database": {"caCertificate": {"file": "/ca.crt"}}}, "/database/caCertificate"),
        ({"hub": {"oidc": {"tokenUrl": "http://idp/token"}}}, "/hub/oidc/tokenUrl"),
        ({"workspaces": {"extractClaim": "shared-extract"}}, "/workspaces/extractClaim"),
        ({"images": {"sde": {"repository": "x", "tag": "1", "digest": "md5:00"}}}, "digest"),
        ({"secrets": {"masterKey": "ab" * 32}}, "masterKey"),
        ({"patientPage": {"oidc": {"settings": {"client_secret": "x"}}}}, "settings"),
        # sign-in state lives in the airlock's process: two replicas would break sign-in
        ({"airlock": {"replicas": 2}}, "/airlock/replicas"),
    ],
)
def test_the_schema_refuses_bad_values(
    chart: helm.Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmError, match="schema") as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert where in str(refused.value)


def test_the_chart_refuses_what_the_schema_cannot_see(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match="not be the release namespace"):
        chart.render({"workspaces": {"namespace": NAMESPACE}}, name=RELEASE, namespace=NAMESPACE)


# --- Services -------------------------------------------------------------------------


def test_no_load_balancer_or_node_port_unless_asked(chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        types = {
            s["spec"].get("type", "ClusterIP") for s in by_kind(render(chart, values), "Service")
        }
        assert types == {"ClusterIP"}
    for kind in ("LoadBalancer", "NodePort"):
        services = by_kind(render(chart, {"proxy": {"service": {"type": kind}}}), "Service")
        exposed = [s["metadata"]["name"] for s in services if s["spec"]["type"] != "ClusterIP"]
        assert exposed == [f"{RELEASE}-proxy-public"]


# --- NetworkPolicies --------------------------------------------------------------------


def policies_selecting(docs: list[Doc], namespace: str, labels: dict[str, str]) -> list[Doc]:
    return [
        p
        for p in by_kind(docs, "NetworkPolicy")
        if p["metadata"]["namespace"] == namespace
        and (
            p["spec"]["podSelector"] == {}
            or labels_match(p["spec"]["podSelector"]["matchLabels"], labels)
        )
    ]


def test_each_namespace_has_a_default_deny(rendered: list[Doc]) -> None:
    settings = PodSettings.from_mapping(config_yaml(rendered)["workspaces"])
    release_deny = one(rendered, "NetworkPolicy", f"{RELEASE}-default-deny")
    assert release_deny["metadata"]["namespace"] == NAMESPACE
    assert release_deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    workspace_deny = [
        p
        for p in by_kind(rendered, "NetworkPolicy")
        if p["metadata"]["namespace"] == settings.namespace
    ]
    # Exactly what the hub's WorkspaceCluster.ensure_namespace puts there, so it finds it
    # already in place and leaves it alone.
    assert workspace_deny == [build_default_deny(settings)]
    namespace = one(rendered, "Namespace", settings.namespace)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_is_confined_by_egress_rules_naming_their_peers(rendered: list[Doc]) -> None:
    for doc in workloads(rendered):
        labels = pod_template(doc)["metadata"]["labels"]
        own = [
            p
            for p in policies_selecting(rendered, NAMESPACE, labels)
            if p["spec"]["podSelector"] != {}
        ]
        assert own, f"no NetworkPolicy of its own selects {doc['metadata']['name']}"
        for policy in own:
            assert "Egress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("egress", []):
                assert rule.get("to"), f"{policy['metadata']['name']}: an egress rule to anywhere"
                assert rule.get("ports"), f"{policy['metadata']['name']}: a rule on every port"
                for peer in rule["to"]:
                    assert peer, "an empty peer"
                    cidr = peer.get("ipBlock", {}).get("cidr", "")
                    assert not cidr.endswith("/0"), f"{policy['metadata']['name']}: {cidr}"


def test_only_the_public_port_is_open_to_anywhere(rendered: list[Doc]) -> None:
    for policy in by_kind(rendered, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            if not rule.get("from"):
                assert policy["metadata"]["name"] == f"{RELEASE}-hub"
                assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_the_register_is_rebuilt_on_a_schedule_reaching_only_the_database_and_dns(
    chart: helm.Chart,
) -> None:
    """On by default: every decision, extract, release and sanction is published (and a
    new checkpoint) without anyone remembering to; it can be switched off."""
    docs = render(chart, {})
    job = one(docs, "CronJob", f"{RELEASE}-register")
    assert job["spec"]["schedule"] == "*/15 * * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_template(job)
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["sde", "register", "build", "--home", "/srv/sde/run/home"]
    assert "env" not in container  # a lake on a claim: no credential to pass
    assert pod["spec"]["initContainers"][0]["name"] == "prepare-home"
    policy = one(docs, "NetworkPolicy", f"{RELEASE}-register")
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        pod["metadata"]["labels"].items()
    )
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432]  # DNS (UDP, TCP) and the database; not OPA, not the web
    off = render(chart, {"register": {"enabled": False}})
    names = {(d["kind"], d["metadata"]["name"]) for d in off}
    assert ("CronJob", f"{RELEASE}-register") not in names
    assert ("NetworkPolicy", f"{RELEASE}-register") not in names


def test_opa_reaches_nothing(rendered: list[Doc]) -> None:
    opa = one(rendered, "NetworkPolicy", f"{RELEASE}-opa")
    assert opa["spec"]["egress"] == []
    assert "Egress" in opa["spec"]["policyTypes"]


def test_workspaces_reach_only_the_hub_and_the_airlock(rendered: list[Doc]) -> None:
    settings = PodSettings.from_mapping(config_yaml(rendered)["workspaces"])
    assert settings.services_namespace == NAMESPACE
    policy = build_network_policy(settings, project_id="diabetes-2026")
    hub = pod_template(one(rendered, "Deployment", f"{RELEASE}-hub"))
    airlock = pod_template(one(rendered, "Deployment", f"{RELEASE}-airlock"))
    pods = [d for d in workloads(rendered) if pod_template(d)["metadata"]["labels"]]
    # Address blocks only for the lake's object store (production's lake is on S3), with
    # its ports; never a /0.
    store = {
        block["cidr"]: set(block["ports"])
        for block in config_yaml(rendered)["workspaces"].get("object_store_egress", [])
    }
    assert all(not cidr.endswith("/0") for cidr in store)
    reached: dict[str, set[int]] = {}
    for rule in policy["spec"]["egress"]:
        ports = {p["port"] for p in rule["ports"]}
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert store.get(peer["ipBlock"]["cidr"]) == ports
                continue
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            if namespace != NAMESPACE:
                assert namespace == settings.dns_namespace
                assert ports == {53}
                continue
            selected = [
                d["metadata"]["name"]
                for d in pods
                if labels_match(
                    peer["podSelector"]["matchLabels"], pod_template(d)["metadata"]["labels"]
                )
            ]
            for name in selected:
                reached.setdefault(name, set()).update(ports)
    assert reached == {f"{RELEASE}-hub": {8081}, f"{RELEASE}-airlock": {8800}}
    # ...and those ports are the ones the pods listen on,
    assert 8081 in {p["containerPort"] for p in hub["spec"]["containers"][0]["ports"]}
    assert 8800 in {p["containerPort"] for p in airlock["spec"]["containers"][0]["ports"]}
    # ...and the hub's and the airlock's own policies let the workspaces in.
    for name, port in ((f"{RELEASE}-hub", 8081), (f"{RELEASE}-airlock", 8800)):
        rules = one(rendered, "NetworkPolicy", name)["spec"]["ingress"]
        assert any(
            {"protocol": "TCP", "port": port} in rule["ports"]
            and any(
                peer.get("namespaceSelector", {}).get("matchLabels")
                == {"kubernetes.io/metadata.name": settings.namespace}
                and peer["podSelector"]["matchLabels"]
                == {"app.kubernetes.io/name": "sde-workspace"}
                for peer in rule.get("from", [])
            )
            for rule in rules
        )


# --- sde's configuration ----------------------------------------------------------------


def pem_key() -> str:
    """A fresh RSA private key in PEM, as the patient page's private_key_jwt needs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def test_config_yaml_is_what_sde_reads(chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        settings = config_yaml(render(chart, values))
        parsed = Settings.from_mapping(settings)
        assert parsed.policy_engine == "opa"
        assert parsed.extra["opa_url"] == f"http://{RELEASE}-opa.{NAMESPACE}.svc:8181"
        PodSettings.from_mapping(settings["workspaces"])
        HubAuthSettings.from_mapping(settings.get("hub"))
        patient_oidc_settings(
            settings.get("patient_page"), {PATIENT_SECRET_ENV: "x", PATIENT_KEY_ENV: pem_key()}
        )
        # the register keeps every published checkpoint: on the lake's volume, not in the
        # pod's memory
        assert settings["register_folder"] == "/srv/sde/data/register"
    production = config_yaml(render(chart, PRODUCTION))
    hub = pod_template(one(render(chart, PRODUCTION), "Deployment", f"{RELEASE}-hub"))
    mounts = {m["mountPath"]: m["name"] for m in hub["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in hub["spec"]["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts["/srv/sde/data"]]
    assert HubAuthSettings.from_mapping(production["hub"]).authenticator == "oidc"
    assert PodSettings.from_mapping(production["workspaces"]).image.endswith("@sha256:" + "1" * 64)


def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered: list[Doc]) -> None:
    job = one(rendered, "Job", f"{RELEASE}-migrations")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    # (production also grants the runtime role: test_the_owner_migrates_and_sde_runs_as_...)
    assert container["command"][:5] == [
        "sde",
        "db",
        "upgrade",
        "--database-url-env",
        "SDE_DATABASE_URL",
    ]
    policy = one(rendered, "NetworkPolicy", f"{RELEASE}-migrations")
    # Its NetworkPolicy exists before it (a hook of lower weight).
    assert int(policy["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )


def test_workspace_service_accounts_are_bound_as_the_values_say(chart: helm.Chart) -> None:
    role = "arn:aws:iam::123456789012:role/sde-extract-{project}"
    values = {"workspaces": {"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": role}}}
    settings = PodSettings.from_mapping(config_yaml(render(chart, values))["workspaces"])
    account = build_service_account(settings, project_id="diabetes")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/sde-extract-diabetes"
    )
    default = PodSettings.from_mapping(config_yaml(render(chart, {}))["workspaces"])
    assert default.service_account_annotations == ()
    with pytest.raises(helm.HelmError, match=r"invalid propertyName .bad key!."):
        chart.render(
            {"workspaces": {"serviceAccountAnnotations": {"bad key!": "x"}}},
            name=RELEASE,
            namespace=NAMESPACE,
        )


def test_rbac_is_minimal(rendered: list[Doc]) -> None:
    settings = PodSettings.from_mapping(config_yaml(rendered)["workspaces"])
    roles = by_kind(rendered, "Role")
    assert [r["metadata"]["namespace"] for r in roles] == [settings.namespace]
    allowed = {
        ("", "pods"): {"get", "list", "watch", "create", "delete"},
        ("", "events"): {"get", "list", "watch"},
        ("networking.k8s.io", "networkpolicies"): {"get", "create", "update", "delete"},
        ("", "serviceaccounts"): {"get", "create", "update", "delete"},
    }
    for rule in roles[0]["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert set(rule["verbs"]) <= allowed[(group, resource)]
    (cluster_role,) = by_kind(rendered, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": [settings.namespace],
            "verbs": ["get"],
        }
    ]
    for doc in [*roles, cluster_role]:
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field]
    bindings = [*by_kind(rendered, "RoleBinding"), *by_kind(rendered, "ClusterRoleBinding")]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-hub", "namespace": NAMESPACE}
        ]


# --- OPA: exactly the policies the test suite tests --------------------------------------


def test_the_opa_config_map_is_exactly_the_policies(rendered: list[Doc]) -> None:
    config_map = one(rendered, "ConfigMap", f"{RELEASE}-opa-policies")
    data = dict(config_map["data"])
    manifest = yaml.safe_load(data.pop(".manifest"))
    files = {path.name: path.read_bytes() for path in policy_files(POLICIES)}
    assert files
    assert all(not name.endswith("_test.rego") for name in files)
    assert {name: text.encode() for name, text in data.items()} == files
    assert manifest == {"revision": policy_bundle_hash(POLICIES)}
    assert config_map["metadata"]["annotations"]["sde/policy-bundle-hash"] == manifest["revision"]
    opa = pod_template(one(rendered, "Deployment", f"{RELEASE}-opa"))
    checksum = opa["metadata"]["annotations"]["checksum/policies"]
    assert len(checksum) == 64  # a policy change rolls the OPA pods


def mount_config_map(data: dict[str, str], folder: Path) -> None:
    """``data`` laid out as the kubelet mounts a ConfigMap volume: the files in a
    ``..<timestamp>`` folder, ``..data`` linking to it, and each key a link through it."""
    stamp = folder / "..2026_11_25_00_00_00.123456789"
    stamp.mkdir(parents=True)
    for key, text in data.items():
        (stamp / key).write_bytes(text.encode())
    (folder / "..data").symlink_to(stamp.name)
    for key in data:
        (folder / key).symlink_to(f"..data/{key}")


@pytest.fixture
def opa_over_the_config_map(tmp_path: Path) -> Iterator[str]:
    if not (OPA.is_file() and os.access(OPA, os.X_OK)):
        pytest.fail(f"the OPA binary {OPA} is missing: `SDE_SETUP_OPA=1 bash scripts/setup.sh`")
    docs = render(helm.Chart.load(CHART), {})
    mount_config_map(
        one(docs, "ConfigMap", f"{RELEASE}-opa-policies")["data"], tmp_path / "policies"
    )
    container = pod_template(one(docs, "Deployment", f"{RELEASE}-opa"))["spec"]["containers"][0]
    port = free_port()
    args = [
        f"--addr=127.0.0.1:{port}"
        if arg.startswith("--addr=")
        else "--diagnostic-addr=127.0.0.1:0"
        if arg.startswith("--diagnostic-addr=")
        else str(tmp_path / "policies")
        if arg == "/policies"
        else arg
        for arg in container["args"]
    ]
    url = f"http://127.0.0.1:{port}"
    with running(
        [str(OPA), *args], name="OPA", ready_url=f"{url}/health?bundles", log=tmp_path / "opa.log"
    ):
        yield url


@pytest.mark.opa
def test_the_real_opa_serves_the_config_map_as_sdes_bundle(opa_over_the_config_map: str) -> None:
    from sde.adapters.opa_server import OpaServerEngine

    with urllib.request.urlopen(f"{opa_over_the_config_map}/v1/policies", timeout=5) as answer:
        loaded = yaml.safe_load(answer.read())["result"]
    # Each policy once (the kubelet's links are skipped, the timestamped copy is read).
    assert sorted(Path(p["id"]).name for p in loaded) == sorted(
        path.name for path in policy_files(POLICIES)
    )
    # sde's own client accepts it: one bundle, revision = the policy bundle hash, canaries.
    with OpaServerEngine(
        opa_over_the_config_map, expected_bundle_hash=policy_bundle_hash(POLICIES)
    ) as engine:
        assert engine.bundle_hash == policy_bundle_hash(POLICIES)


# --- What the pods run: the home, the hub's configuration ----------------------------


def prepared_home(tmp_path: Path, docs: list[Doc]) -> tuple[Path, bytes, str]:
    data = one(docs, "ConfigMap", f"{RELEASE}-config")["data"]
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.yaml").write_text(data["config.yaml"])
    script = tmp_path / "etc" / "prepare_home.py"
    script.write_text(data["prepare_home.py"])
    (tmp_path / "run").mkdir()  # the emptyDir; the home is a folder the script makes in it
    key = bytes(range(32))
    database_url = f"postgresql+psycopg://sde:pw@127.0.0.1:1/sde-{tmp_path.name}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SDE_HOME": str(tmp_path / "run" / "home"),
        "SDE_CONFIG_TEMPLATE": str(tmp_path / "etc" / "config.yaml"),
        "SDE_DATA": str(tmp_path / "data"),
        "SDE_MASTER_KEY": key.hex(),
        "SDE_DATABASE_URL": database_url,
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert key.hex() not in result.stdout + result.stderr
    return tmp_path / "run" / "home", key, database_url


def test_the_init_container_assembles_a_working_home(chart: helm.Chart, tmp_path: Path) -> None:
    docs = render(chart, PRODUCTION_ON_PVC)
    root, key, database_url = prepared_home(tmp_path, docs)
    home = open_home(root)
    assert home.master_key() == key
    assert stat.S_IMODE(home.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "config.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert home.database_url == database_url
    assert home.settings.policy_engine == "opa"
    assert home.linked.resolve() == (tmp_path / "data" / "lake" / "linked").resolve()
    assert home.linked.is_dir()
    assert home.sources.is_dir()
    # The init container is the same in every pod that opens a home.
    init = {
        doc["metadata"]["name"]: pod_template(doc)["spec"]["initContainers"][0]["command"]
        for doc in workloads(docs)
        if pod_template(doc)["spec"].get("initContainers")
    }
    assert set(init) == {
        f"{RELEASE}-hub",
        f"{RELEASE}-airlock",
        f"{RELEASE}-ingest",
        f"{RELEASE}-register",
    }
    assert {tuple(c) for c in init.values()} == {("python", "/etc/sde/bin/prepare_home.py")}


def test_the_database_ca_reaches_every_pod_that_opens_the_database(chart: helm.Chart) -> None:
    """database.caCertificate: the ConfigMap mounted read-only where the database is opened
    (the init container, which puts it in the URL, and the container that then uses the
    URL), the migration Job through PGSSLROOTCERT; nowhere without it. That libpq then
    checks the server's certificate: tests/integration/test_database_tls.py."""
    ca_file = "/etc/sde/database-ca/ca.crt"
    assert PRODUCTION["database"]["caCertificate"] == {
        "configMap": "sde-database-ca",
        "key": "ca.crt",
    }
    docs = render(chart, PRODUCTION)
    opening = {
        f"{RELEASE}-hub",
        f"{RELEASE}-airlock",
        f"{RELEASE}-ingest",
        f"{RELEASE}-migrations",
        f"{RELEASE}-register",
    }
    seen = set()
    for doc in workloads(docs):
        pod = pod_template(doc)["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if "database-ca" not in volumes:
            continue
        seen.add(doc["metadata"]["name"])
        assert volumes["database-ca"]["configMap"] == {
            "name": "sde-database-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }
        for container in containers({"spec": pod}):
            mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
            assert mounts["database-ca"] == {
                "name": "database-ca",
                "mountPath": "/etc/sde/database-ca",
                "readOnly": True,
            }, container["name"]
        env = {
            e["name"]: e.get("value")
            for container in containers({"spec": pod})
            for e in container.get("env", [])
        }
        if doc["kind"] == "Job":
            assert env["PGSSLROOTCERT"] == ca_file
        else:
            assert pod["initContainers"][0]["name"] == "prepare-home"
            assert env["SDE_DATABASE_CA"] == ca_file
    assert seen == opening
    for doc in workloads(render(chart, {})):
        pod = pod_template(doc)["spec"]
        assert "database-ca" not in {v["name"] for v in pod.get("volumes", [])}
        names = {e["name"] for c in containers({"spec": pod}) for e in c.get("env", [])}
        assert not names & {"SDE_DATABASE_CA", "PGSSLROOTCERT"}


def test_the_owner_migrates_and_sde_runs_as_a_role_that_owns_nothing(chart: helm.Chart) -> None:
    """With secrets.keys.databaseMigrationUrl and database.runtimeRole (production), the
    migration Job uses the owner's URL and grants the runtime role its privileges; every
    other pod gets the runtime role's URL. Without them, one URL for all (the default).
    What the grant allows: tests/integration/test_database_roles.py."""

    def database_urls(docs: list[Doc]) -> dict[str, set[str]]:
        keys: dict[str, set[str]] = {}
        for doc in workloads(docs):
            for container in containers(pod_template(doc)):
                for env in container.get("env", []):
                    if env["name"] == "SDE_DATABASE_URL":
                        key = env["valueFrom"]["secretKeyRef"]["key"]
                        keys.setdefault(doc["metadata"]["name"], set()).add(key)
        return keys

    production = render(chart, PRODUCTION)
    job = pod_template(one(production, "Job", f"{RELEASE}-migrations"))["spec"]["containers"][0]
    assert job["command"] == [
        "sde",
        "db",
        "upgrade",
        "--database-url-env",
        "SDE_DATABASE_URL",
        "--grant-to",
        "sde_app",
    ]
    assert database_urls(production) == {
        f"{RELEASE}-migrations": {"database-migration-url"},
        f"{RELEASE}-hub": {"database-url"},
        f"{RELEASE}-airlock": {"database-url"},
        f"{RELEASE}-ingest": {"database-url"},
        f"{RELEASE}-register": {"database-url"},
    }
    default = render(chart, {})
    job = pod_template(one(default, "Job", f"{RELEASE}-migrations"))["spec"]["containers"][0]
    assert "--grant-to" not in job["command"]
    assert set().union(*database_urls(default).values()) == {"database-url"}


def test_the_init_container_refuses_a_missing_or_bad_secret(
    chart: helm.Chart, tmp_path: Path
) -> None:
    data = one(render(chart, {}), "ConfigMap", f"{RELEASE}-config")["data"]
    script = tmp_path / "prepare_home.py"
    script.write_text(data["prepare_home.py"])
    (tmp_path / "config.yaml").write_text(data["config.yaml"])
    base = {
        "SDE_HOME": str(tmp_path / "home"),
        "SDE_CONFIG_TEMPLATE": str(tmp_path / "config.yaml"),
        "SDE_DATA": str(tmp_path / "data"),
        "SDE_DATABASE_URL": "postgresql+psycopg://sde:secretpw@db/sde",
    }
    for env, said in (
        (base, "SDE_MASTER_KEY is not set"),
        ({**base, "SDE_MASTER_KEY": "zz" * 32}, "64 hexadecimal characters"),
        ({**base, "SDE_MASTER_KEY": "ab" * 32, "SDE_DATABASE_URL": "sqlite:///x"}, "not SQLite"),
    ):
        result = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert said in result.stderr
        assert "secretpw" not in result.stderr + result.stdout
        assert not (tmp_path / "home" / ".sde-home").exists()


def test_the_hubs_configuration_file_runs_and_wires_the_cluster(
    chart: helm.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, PRODUCTION)
    root, _, _ = prepared_home(tmp_path, docs)
    hub_database = "postgresql+psycopg://hub:pw@db.example.nhs.uk/jupyterhub"
    c = _hub_config(docs, root, monkeypatch, SDE_HUB_DATABASE_URL=hub_database)
    assert (c.JupyterHub.db_url, c.JupyterHub.cleanup_servers) == (hub_database, False)
    assert c.JupyterHub.hub_ip == "0.0.0.0"
    assert c.JupyterHub.port == 8000
    assert c.JupyterHub.hub_port == 8081
    assert c.JupyterHub.hub_connect_url == f"http://{RELEASE}-hub.{NAMESPACE}.svc:8081"
    assert c.JupyterHub.spawner_class.__name__ == "SdeKubeSpawner"
    assert c.SdeKubeSpawner.ip == "0.0.0.0"  # reachable by the proxy, not loopback
    assert c.SdeKubeSpawner.namespace == PRODUCTION["workspaces"]["namespace"]
    assert c.SdeKubeSpawner.sde_api_url == (
        f"http://{RELEASE}-airlock.{NAMESPACE}.svc:8800/services/airlock"
    )
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["airlock"] == {
        "name": "airlock",
        "url": f"http://{RELEASE}-airlock.{NAMESPACE}.svc:8800",
        "api_token": "from-secret-sde_airlock_api_token",
        "oauth_no_confirm": True,
        "display": True,
    }
    assert "command" in services["register"]
    assert "command" in services["session-guard"]
    assert "--kubernetes" in services["session-guard"]["command"]
    # NHS login: the production example signs the patient page's requests with its key
    lake = {  # the production example's lake is on S3: its credentials, by reference
        name: f"from-secret-{name.lower()}"
        for name in ("SDE_LAKE_AWS_ACCESS_KEY_ID", "SDE_LAKE_AWS_SECRET_ACCESS_KEY")
    }
    assert services["patient"]["environment"] == {
        PATIENT_KEY_ENV: f"from-secret-{PATIENT_KEY_ENV.lower()}",
        **lake,
    }
    assert services["session-guard"]["environment"] == lake
    # The public register serves a folder of the home: no lake credentials.
    assert "environment" not in services["register"]
    assert c.JupyterHub.authenticator_class.__name__ == "SdeOIDCAuthenticator"


def _hub_config(
    docs: list[Doc], root: Path, monkeypatch: pytest.MonkeyPatch, **secrets: str
) -> Config:
    """The chart's jupyterhub_config.py run as the hub pod runs it: its env from the
    rendered container, a secret's value given in ``secrets`` or standing in as
    ``from-secret-<name>``."""
    hub = pod_template(one(docs, "Deployment", f"{RELEASE}-hub"))["spec"]["containers"][0]
    for env in hub["env"]:
        name = env["name"]
        monkeypatch.setenv(name, env.get("value", secrets.get(name, f"from-secret-{name.lower()}")))
    monkeypatch.setenv("SDE_HOME", str(root))
    source = one(docs, "ConfigMap", f"{RELEASE}-config")["data"]["jupyterhub_config.py"]
    c = Config()
    exec(compile(source, "jupyterhub_config.py", "exec"), {"c": c})
    return c


@pytest.mark.sql
@pytest.mark.postgres
def test_with_its_own_database_the_hubs_sessions_outlive_a_restart(
    chart: helm.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_admin_url: str
) -> None:
    """secrets.keys.hubDatabaseUrl: the hub keeps its state in PostgreSQL and does not
    stop the servers when it stops, so a new hub pod finds them. JupyterHub's own ORM is
    run on a real PostgreSQL as a hub, then as the hub that replaces it. (Not verified
    here: KubeSpawner finding the pods again; no pod runs on this machine.)"""
    from jupyterhub import orm

    values = {"secrets": {"keys": {"hubDatabaseUrl": "hub-database-url"}}}
    docs = render(chart, values)
    hub = pod_template(one(docs, "Deployment", f"{RELEASE}-hub"))["spec"]["containers"][0]
    [ref] = [e for e in hub["env"] if e["name"] == "SDE_HUB_DATABASE_URL"]
    assert ref["valueFrom"]["secretKeyRef"]["key"] == "hub-database-url"
    root, _, _ = prepared_home(tmp_path, docs)
    with postgres.fresh_database(postgres_admin_url) as url:
        c = _hub_config(docs, root, monkeypatch, SDE_HUB_DATABASE_URL=url)
        assert c.JupyterHub.db_url == url
        assert c.JupyterHub.cleanup_servers is False
        assert c.JupyterHub.upgrade_db is True
        first = orm.new_session_factory(c.JupyterHub.db_url)()
        user = orm.User(name="alice")
        first.add(user)
        server = orm.Server(ip="10.1.2.3", port=8888, base_url="/user/alice/")
        first.add(server)
        first.add(orm.Spawner(user=user, name="", server=server))
        first.commit()
        first.close()
        first.get_bind().dispose()
        # The pod is replaced: a new hub opens the same database and finds the session.
        second = orm.new_session_factory(c.JupyterHub.db_url)()
        [found] = second.query(orm.User).all()
        assert found.name == "alice"
        assert found.orm_spawners[""].server.ip == "10.1.2.3"
        second.close()
        second.get_bind().dispose()
    # Without it: the state in the pod's memory-backed home, servers stopped on the way down.
    default = render(chart, {})
    monkeypatch.delenv("SDE_HUB_DATABASE_URL")  # not in that pod's environment
    (tmp_path / "default").mkdir()
    c = _hub_config(default, prepared_home(tmp_path / "default", default)[0], monkeypatch)
    assert str(c.JupyterHub.db_url).startswith("sqlite:///")
    assert c.JupyterHub.cleanup_servers is True


def test_a_hub_database_that_is_not_postgresql_stops_the_hub(
    chart: helm.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, {"secrets": {"keys": {"hubDatabaseUrl": "hub-database-url"}}})
    root, _, _ = prepared_home(tmp_path, docs)
    with pytest.raises(SystemExit, match="SDE_HUB_DATABASE_URL must name a PostgreSQL database"):
        _hub_config(docs, root, monkeypatch, SDE_HUB_DATABASE_URL="sqlite:////tmp/hub.sqlite")


def test_the_hubs_configuration_stops_without_its_environment(
    chart: helm.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, {})
    root, _, _ = prepared_home(tmp_path, docs)
    monkeypatch.setenv("SDE_HOME", str(root))
    monkeypatch.delenv("SDE_POD_API_URL", raising=False)
    monkeypatch.setenv("SDE_GUARD_INTERVAL", "10")
    source = one(docs, "ConfigMap", f"{RELEASE}-config")["data"]["jupyterhub_config.py"]
    with pytest.raises(SystemExit, match="SDE_POD_API_URL is not set"):
        exec(compile(source, "jupyterhub_config.py", "exec"), {"c": Config()})


# --- Images ---------------------------------------------------------------------------

DOCKERFILES = {
    "hub": REPO / "helm" / "images" / "hub" / "Dockerfile",
    "workspace": REPO / "helm" / "images" / "workspace" / "Dockerfile",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments left out."""
    joined = path.read_text().replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_dockerfiles_follow_the_rules(image: str, chart: helm.Chart) -> None:
    steps = instructions(DOCKERFILES[image])
    users = [args for word, args in steps if word == "USER"]
    assert users
    assert users[-1].split(":")[0].isdigit()
    assert int(users[-1].split(":")[0]) > 0
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert all(word != "RUN" for word, _ in steps[last_user:])  # nothing runs as root after
    for word, args in steps:
        assert word != "ADD", "COPY only (ADD fetches URLs and unpacks archives)"
        if word == "FROM":
            base = args.split()[0]
            assert ":" in base.rsplit("/", 1)[-1], f"{base}: no tag"
            assert not base.endswith(":latest"), base
    pip = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert pip
    assert all("--require-hashes" in args or "--no-deps" in args for args in pip)
    assert any("--require-hashes" in args for args in pip)
    values = chart.values
    expected = {"hub": values["runAsUser"], "workspace": values["workspaces"]["uid"]}[image]
    assert int(users[-1].split(":")[0]) == expected


# --- Against a real kube-apiserver (marker kube) ---------------------------------------

RESOURCES = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Pod": ("/api/v1", "pods", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


@pytest.mark.kube
def test_a_real_api_server_admits_every_object_and_pod_under_restricted(
    chart: helm.Chart, kube_server: KubeServer
) -> None:
    import requests

    server = kube_server
    # Names no other test on the shared server uses.
    namespace, workspaces = "helm-chart-test", "helm-chart-test-workspaces"
    values = copy.deepcopy(PRODUCTION)
    values["workspaces"]["namespace"] = workspaces
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {server.token}"
    session.verify = str(server.ca_file)

    def create(doc: Doc) -> requests.Response:
        prefix, plural, namespaced = RESOURCES[doc["kind"]]
        where = f"/namespaces/{doc['metadata']['namespace']}" if namespaced else ""
        return session.post(f"{server.url}{prefix}{where}/{plural}", json=doc, timeout=20)

    try:
        # The release's namespace enforces "restricted" as well (the operator's job).
        release_ns = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        }
        assert create(release_ns).status_code == 201
        docs = render(chart, values, namespace)
        for doc in sorted(docs, key=lambda d: d["kind"] != "Namespace"):
            answer = create(doc)
            assert answer.status_code == 201, (doc["kind"], doc["metadata"]["name"], answer.text)
            assert "violates PodSecurity" not in answer.headers.get("Warning", "")
        # Pod Security Admission only warns about controllers; each pod itself is enforced.
        for number, doc in enumerate(workloads(docs)):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**pod_template(doc)["metadata"], "name": f"pod-{number}"},
                "spec": pod_template(doc)["spec"],
            }
            pod["metadata"]["namespace"] = namespace
            answer = create(pod)
            assert answer.status_code == 201, (doc["metadata"]["name"], answer.text)
        # ...and the same pod keeping its capabilities is refused: the label is enforcing.
        broken = copy.deepcopy(pod)
        broken["metadata"]["name"] = "pod-with-capabilities"
        broken["spec"]["containers"][0]["securityContext"]["capabilities"] = {}
        refused = create(broken)
        assert refused.status_code == 403
        assert "violates PodSecurity" in refused.text

        # The hub's service account may do what KubeSpawner and sde need, and no more.
        hub_account = f"system:serviceaccount:{namespace}:{RELEASE}-hub"

        def may(verb: str, resource: str, namespace: str = "", name: str = "") -> bool:
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": hub_account,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": resource,
                        "group": "networking.k8s.io" if resource == "networkpolicies" else "",
                        "namespace": namespace,
                        "name": name,
                    },
                },
            }
            answer = session.post(
                f"{server.url}/apis/authorization.k8s.io/v1/subjectaccessreviews",
                json=review,
                timeout=20,
            )
            assert answer.status_code == 201, answer.text
            return bool(answer.json()["status"].get("allowed"))

        assert may("create", "pods", workspaces)
        assert may("delete", "pods", workspaces)
        assert may("update", "networkpolicies", workspaces)
        assert may("get", "namespaces", "", workspaces)
        assert not may("create", "pods", namespace)
        assert not may("get", "secrets", workspaces)
        assert not may("get", "secrets", namespace)
        assert not may("update", "namespaces", "", workspaces)
        assert not may("get", "namespaces", "", "kube-system")
        assert not may("create", "pods", "kube-system")
        assert may("create", "serviceaccounts", workspaces)
        assert not may("create", "serviceaccounts", namespace)
        assert not may("create", "serviceaccounts/token", workspaces)

        # And sde's own cluster code, run as a user given exactly the hub's roles, does
        # all it does: the workspaces namespace checked, a project opened (its
        # ServiceAccount and NetworkPolicy), a pod made, listed and removed, the project
        # closed. A verb missing from the Role would fail here, not in production.
        for doc in docs:
            if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                bound = copy.deepcopy(doc)
                bound["metadata"]["name"] += "-test-user"
                bound["subjects"] = [
                    {
                        "kind": "User",
                        "name": "sde-hub-test",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ]
                assert create(bound).status_code == 201
        config = one(docs, "ConfigMap", f"{RELEASE}-config", namespace)["data"]["config.yaml"]
        settings = PodSettings.from_mapping(yaml.safe_load(config)["workspaces"])
        assert settings.namespace == workspaces
        with KubeApi(server.url, server.hub_token, server.ca_file) as api:
            hub = WorkspaceCluster(api, settings)
            hub.ensure_namespace()
            hub.open_project("diabetes")
            hub.create_workspace_pod(
                build_pod(
                    settings, project_id="diabetes", person_id="alice", session_name="lab", env={}
                )
            )
            [pod] = hub.workspace_pods()
            assert (pod.person, pod.project) == ("alice", "diabetes")
            assert hub.stop_person("alice") == [f"Pod/{pod.name}"]
            assert hub.close_project("diabetes") == [
                f"NetworkPolicy/{network_policy_name('diabetes')}",
                f"ServiceAccount/{service_account_name('diabetes')}",
            ]
            with pytest.raises(KubeForbidden):
                api.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "x", "namespace": namespace},
                    }
                )
    finally:
        session.close()


# --- The lake on object storage (lake.type s3, azure, gcs) ------------------------------

S3_LAKE: dict[str, Any] = {
    "lake": {
        "type": "s3",
        "persistence": {"size": "20Gi"},
        "objectStore": {
            "url": "s3://sde-lake/prod",
            "endpoint": "https://objects.example.org",
            "region": "eu-west-2",
            "egressTo": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
            "ports": [443, 9000],
        },
    },
    "secrets": {
        "keys": {
            "lakeAccessKeyId": "lake-access-key-id",
            "lakeSecretAccessKey": "lake-secret-access-key",
        }
    },
    "ingest": {"enabled": True},
}
LAKE_ENV = {
    "SDE_LAKE_AWS_ACCESS_KEY_ID": "lake-access-key-id",
    "SDE_LAKE_AWS_SECRET_ACCESS_KEY": "lake-secret-access-key",
}


def with_lake(**changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(S3_LAKE)
    values["lake"]["objectStore"].update(changes)
    return values


def lake_env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", []) if e["name"].startswith("SDE_LAKE_")}


@pytest.fixture(scope="module")
def s3_docs(chart: helm.Chart) -> list[Doc]:
    """The chart rendered with its lake on S3."""
    return render(chart, S3_LAKE)


class TestLakeOnObjectStorage:
    """lake.type s3: the tables on the store, the working folders on the claim, the
    credentials by reference to the existing Secret, egress to the store's named peers."""

    def test_it_validates_against_the_kubernetes_schemas(self, s3_docs: list[Doc]) -> None:
        for doc in s3_docs:
            kubernetes_validate.validate(doc, NEWEST, strict=True)

    def test_config_yaml_gets_the_lake_section_without_credentials(
        self, s3_docs: list[Doc]
    ) -> None:
        settings = config_yaml(s3_docs)
        assert settings["lake"] == {
            "url": "s3://sde-lake/prod",
            "options": {
                "AWS_ENDPOINT_URL": "https://objects.example.org",
                "AWS_REGION": "eu-west-2",
            },
            "workspace_credentials": "none",
        }
        # sde itself accepts it (a credential in it would be refused)
        assert Settings.from_mapping(settings).extra["lake"]["url"] == "s3://sde-lake/prod"

    def test_the_pods_that_open_the_lake_get_its_credentials_by_secret_key_ref(
        self, s3_docs: list[Doc]
    ) -> None:
        seen = {}
        for doc in workloads(s3_docs):
            spec = pod_template(doc)["spec"]
            for init in spec.get("initContainers", []):
                assert lake_env(init) == {}, "prepare-home needs no lake credentials"
            for container in spec["containers"]:
                env = lake_env(container)
                if env:
                    seen[doc["metadata"]["name"]] = env
        assert set(seen) == {
            f"{RELEASE}-hub",
            f"{RELEASE}-airlock",
            f"{RELEASE}-ingest",
            f"{RELEASE}-register",
        }
        for env in seen.values():
            assert set(env) == set(LAKE_ENV)
            for name, entry in env.items():
                assert "value" not in entry
                assert entry["valueFrom"]["secretKeyRef"] == {
                    "name": "sde-secrets",
                    "key": LAKE_ENV[name],
                }

    def test_the_store_is_reached_only_by_the_named_peers(self, s3_docs: list[Doc]) -> None:
        reaching = {}
        for policy in by_kind(s3_docs, "NetworkPolicy"):
            for rule in policy["spec"].get("egress") or []:
                if {"ipBlock": {"cidr": "203.0.113.0/24"}} in rule.get("to", []):
                    reaching[policy["metadata"]["name"]] = rule
        assert set(reaching) == {
            f"{RELEASE}-hub",
            f"{RELEASE}-airlock",
            f"{RELEASE}-ingest",
            f"{RELEASE}-register",
        }
        for rule in reaching.values():
            assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
            assert rule["ports"] == [
                {"protocol": "TCP", "port": 443},
                {"protocol": "TCP", "port": 9000},
            ]

    def test_a_claim_remains_for_the_working_folders_sized_as_asked(
        self, s3_docs: list[Doc]
    ) -> None:
        """The tables are on the store (the next test: no zone on the volume); the
        working folders (sources, egress, the register, outputs) still need a claim, kept
        on uninstall, of the size asked for (20Gi here, not the 100Gi default)."""
        [claim] = by_kind(s3_docs, "PersistentVolumeClaim")
        assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    def test_the_init_container_makes_a_home_whose_tables_are_on_the_store(
        self, s3_docs: list[Doc], tmp_path: Path
    ) -> None:
        root, key, _ = prepared_home(tmp_path, s3_docs)
        home = open_home(root)
        assert home.lake_is_remote
        assert str(home.linked) == "s3://sde-lake/prod/linked"
        assert str(home.project_extract("p1")) == "s3://sde-lake/prod/projects/p1/extract"
        assert home.egress.resolve() == (tmp_path / "data" / "lake" / "egress").resolve()
        assert home.egress.is_dir()
        assert home.projects.is_dir()
        for zone in ("linked", "quarantine", "manifests"):
            assert not (tmp_path / "data" / "lake" / zone).exists()
        assert home.master_key() == key

    def test_workload_identity_gives_no_credentials(self, chart: helm.Chart) -> None:
        values = with_lake()
        values["secrets"] = {"keys": {"lakeAccessKeyId": "", "lakeSecretAccessKey": ""}}
        for doc in workloads(render(chart, values)):
            for container in containers(pod_template(doc)):
                assert lake_env(container) == {}

    def test_per_project_credentials_reach_the_config(self, chart: helm.Chart) -> None:
        settings = config_yaml(render(chart, with_lake(workspaceCredentials="per_project_secret")))
        assert settings["lake"]["workspace_credentials"] == "per_project_secret"
        assert settings["lake"]["project_credentials"] == "sde-lake-{project}"

    def test_azure_and_gcs_render_their_own_options_and_keys(self, chart: helm.Chart) -> None:
        azure = copy.deepcopy(S3_LAKE)
        azure["lake"]["type"] = "azure"
        azure["lake"]["objectStore"] = {
            "url": "abfss://lake@sdeaccount.dfs.core.windows.net/prod",
            "accountName": "sdeaccount",
            "egressTo": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        }
        azure["secrets"] = {"keys": {"lakeAzureAccountKey": "lake-account-key"}}
        docs = render(chart, azure)
        assert config_yaml(docs)["lake"]["options"] == {"AZURE_STORAGE_ACCOUNT_NAME": "sdeaccount"}
        hub = pod_template(one(docs, "Deployment", f"{RELEASE}-hub"))["spec"]["containers"][0]
        assert set(lake_env(hub)) == {"SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY"}
        gcs = copy.deepcopy(azure)
        gcs["lake"]["type"] = "gcs"
        gcs["lake"]["objectStore"] = {
            "url": "gs://sde-lake/prod",
            "egressTo": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        }
        gcs["secrets"] = {"keys": {}}
        docs = render(chart, gcs)
        assert config_yaml(docs)["lake"] == {
            "url": "gs://sde-lake/prod",
            "options": {},
            "workspace_credentials": "none",
        }

    def test_the_production_example_keeps_its_lake_on_s3(self) -> None:
        assert PRODUCTION["lake"]["type"] == "s3"
        assert PRODUCTION["lake"]["objectStore"]["url"].startswith("s3://")
        assert PRODUCTION["lake"]["objectStore"]["workspaceCredentials"] == "per_project_secret"

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            (with_lake(egressTo=[]), "lake.objectStore.egressTo"),
            (
                with_lake(egressTo=[{"ipBlock": {"cidr": "0.0.0.0/0"}}]),
                "lake/objectStore/egressTo/0/ipBlock/cidr",
            ),
            (
                {
                    **S3_LAKE,
                    "secrets": {"keys": {"lakeAccessKeyId": "id", "lakeSecretAccessKey": ""}},
                },
                "secrets.keys.lakeSecretAccessKey",
            ),
            (
                with_lake(workspaceCredentials="per_project_secret", projectCredentials="shared"),
                "must contain {project}",
            ),
        ],
    )
    def test_what_would_open_the_store_or_leak_refuses_to_render(
        self, chart: helm.Chart, values: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(helm.HelmError, match=message.replace(".", r"\.")):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)

    @pytest.mark.parametrize(
        ("values", "where"),
        [
            ({"lake": {"type": "s3"}}, "/lake/objectStore"),
            (with_lake(url="gs://sde-lake/prod"), "/lake/objectStore/url"),
            (with_lake(url="s3://key:secret@sde-lake/prod"), "/lake/objectStore/url"),
            (with_lake(url="s3://sde-lake/prod?x=1"), "/lake/objectStore/url"),
            (with_lake(endpoint="ftp://objects"), "/lake/objectStore/endpoint"),
            (with_lake(workspaceCredentials="inherit"), "/lake/objectStore/workspaceCredentials"),
            (with_lake(accessKey="AKIA"), "accessKey"),
        ],
    )
    def test_the_schema_refuses_bad_lake_values(
        self, chart: helm.Chart, values: dict[str, Any], where: str
    ) -> None:
        with pytest.raises(helm.HelmError, match="schema") as refused:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        assert where in str(refused.value)


class TestWorkspacesReachTheStore:
    """With the lake on object storage, workspaces read their extract from the store: their
    settings carry the store's address blocks, and sde's per-project policy allows them."""

    def test_workspace_settings_carry_the_stores_blocks_and_ports(self, s3_docs: list[Doc]) -> None:
        workspaces = config_yaml(s3_docs)["workspaces"]
        assert workspaces["object_store_egress"] == [
            {"cidr": "203.0.113.0/24", "ports": [443, 9000]}
        ]
        settings = PodSettings.from_mapping(workspaces)
        policy = build_network_policy(settings, project_id="p-1")
        store_rules = [
            rule
            for rule in policy["spec"]["egress"]
            if {"ipBlock": {"cidr": "203.0.113.0/24"}} in rule.get("to", [])
        ]
        assert len(store_rules) == 1
        assert {p["port"] for p in store_rules[0]["ports"]} == {443, 9000}

    def test_a_local_lake_gives_workspaces_no_store_rule(self, chart: helm.Chart) -> None:
        assert "object_store_egress" not in config_yaml(render(chart, {}))["workspaces"]

    def test_a_gcs_service_account_key_refuses_to_render(self, chart: helm.Chart) -> None:
        """sde's file access cannot use it: refused here, not at every command."""
        values = with_lake(egressTo=[{"ipBlock": {"cidr": "203.0.113.0/24"}}])
        values["lake"]["type"] = "gcs"
        values["lake"]["objectStore"]["url"] = "gs://sde-lake/prod"
        values["secrets"] = {"keys": {"lakeGcsServiceAccountKey": "gcs-key"}}
        with pytest.raises(helm.HelmError, match="lakeGcsServiceAccountKey"):
            render(chart, values)
        del values["secrets"]  # the control: workload identity renders
        assert config_yaml(render(chart, values))["lake"]["url"] == "gs://sde-lake/prod"

    def test_a_store_block_with_exceptions_refuses_to_render(self, chart: helm.Chart) -> None:
        """Workspaces' rule carries whole blocks: an except would be dropped, widening it."""
        block = {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.8/29"]}}
        with pytest.raises(helm.HelmError, match="an ipBlock with except"):
            render(chart, with_lake(egressTo=[block]))

    def test_a_store_named_only_by_selectors_refuses_to_render(self, chart: helm.Chart) -> None:
        values = with_lake(egressTo=[{"podSelector": {"matchLabels": {"app": "minio"}}}])
        with pytest.raises(helm.HelmError, match="needs at least one ipBlock"):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
