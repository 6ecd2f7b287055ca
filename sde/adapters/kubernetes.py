"""The Kubernetes API adapter: creates and deletes sde's workspace objects in a cluster.

A small synchronous client over the Kubernetes REST API (``requests``), for the three
kinds sde manages, and the use cases built on it:

- :class:`KubeApi` reads, lists, creates, replaces and deletes Namespaces, Pods and
  NetworkPolicies, as plain dicts, with a bearer token over HTTPS. The server's
  certificate is checked against ``ca_file`` (or the system's CAs); switching the check
  off needs ``insecure_skip_verify=True``, said out loud.
- :class:`WorkspaceCluster` puts the manifests built by :mod:`sde.domain.workspaces`
  into the cluster: the workspaces' namespace under Pod Security Admission "restricted"
  with its default-deny NetworkPolicy (:meth:`~WorkspaceCluster.ensure_namespace`), a
  project's NetworkPolicy at its first spawn (:meth:`~WorkspaceCluster.open_project`),
  removed with the project's pods when the project is suspended
  (:meth:`~WorkspaceCluster.close_project`), and a banned person's running sessions
  stopped (:meth:`~WorkspaceCluster.stop_person`).

Errors are ``sde.errors`` types (:class:`KubeApiError` and its subclasses): each names
the verb, the kind and the object's name, then the API server's ``reason`` and
``message``. Object names, labels and API messages are all that appear; no manifest
value (an environment variable, say) is ever put into a message by this module.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from sde.domain.projects import check_person_id
from sde.domain.sessions import WorkspacePod
from sde.domain.workspaces import (
    LABEL_COMPONENT,
    LABEL_NAME,
    LABEL_PERSON,
    LABEL_PROJECT,
    WORKSPACE_APP,
    PodSettings,
    build_default_deny,
    build_network_policy,
    build_service_account,
    check_pod_restricted,
    label_safe,
    network_policy_name,
    project_selector,
    service_account_name,
)
from sde.errors import ConfigError, InputError, NotFound, PolicyDenied, SdeError, StateError

# Pod Security Admission: the namespace labels that make the API server enforce a profile.
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PSA_LABELS: dict[str, str] = {PSA_ENFORCE: "restricted", PSA_ENFORCE_VERSION: "latest"}

MAX_MESSAGE = 600  # characters of an API server's message kept in an error
HUB_SERVER_ANNOTATION = "hub.jupyter.org/servername"
"""KubeSpawner's annotation of a named server's pod (none on a person's default server)."""


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST API."""

    name: str
    api_version: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        # the core group ("v1") is under /api, named groups under /apis
        root = "/apis" if "/" in self.api_version else "/api"
        return f"{root}/{self.api_version}"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("Namespace", "v1", "namespaces", namespaced=False),
        Kind("Pod", "v1", "pods", namespaced=True),
        Kind("ServiceAccount", "v1", "serviceaccounts", namespaced=True),
        Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", namespaced=True),
    )
}


# --- errors --------------------------------------------------------------------------


class KubeApiError(SdeError):
    """The API server refused a request, or could not be asked. ``status`` is the HTTP
    status (0 when no answer came), ``reason`` the API's ``Status.reason`` (``NotFound``,
    ``AlreadyExists``, ``Forbidden``, ``Unauthorized``, ``Invalid``, ...) and
    ``api_message`` its ``Status.message``."""

    def __init__(self, action: str, status: int, reason: str, api_message: str) -> None:
        self.action = action
        self.status = status
        self.reason = reason
        self.api_message = api_message
        detail = f" ({reason})" if reason else ""
        text = f": {api_message}" if api_message else ""
        SdeError.__init__(self, f"Kubernetes API server refused {action}{detail}{text}")


class KubeUnreachable(KubeApiError, ConfigError):
    """No answer: the server could not be reached, or its certificate was not trusted."""

    def __init__(self, action: str, problem: str) -> None:
        super().__init__(action, 0, "", "")
        SdeError.__init__(self, f"Kubernetes API server could not be asked {action}: {problem}")


class KubeUnauthorized(KubeApiError, ConfigError):
    """401: the token was not accepted."""


class KubeForbidden(KubeApiError, PolicyDenied):
    """403: refused by authorization (RBAC) or by an admission plugin (Pod Security
    Admission names ``PodSecurity`` in the message)."""

    def __init__(self, action: str, status: int, reason: str, api_message: str) -> None:
        KubeApiError.__init__(self, action, status, reason, api_message)
        self.decision = f"Kubernetes API server: {action}"
        self.reasons = [api_message] if api_message else []


class KubeNotFound(KubeApiError, NotFound):
    """404: no such object (or no such namespace)."""


class KubeConflict(KubeApiError, StateError):
    """409: the object exists already, or was changed since it was read."""


class KubeInvalid(KubeApiError, InputError):
    """400 or 422: the manifest was not valid for the server."""


_ERRORS: dict[int, type[KubeApiError]] = {
    401: KubeUnauthorized,
    403: KubeForbidden,
    404: KubeNotFound,
    409: KubeConflict,
    400: KubeInvalid,
    422: KubeInvalid,
}


# --- the REST client -----------------------------------------------------------------


def selector_text(labels: Mapping[str, str]) -> str:
    """A label selector for a list request: ``k1=v1,k2=v2`` (equality only). An empty
    selector would select every object, so it is refused."""
    if not labels:
        raise InputError("a label selector must name at least one label")
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApi:
    """Namespaces, Pods and NetworkPolicies over the Kubernetes REST API.

    ``base_url`` is ``https://host[:port]`` (plain HTTP is refused: the bearer token would
    travel in clear); ``ca_file`` is the CA bundle that signs the server's certificate
    (``None``: the system's CAs). ``insecure_skip_verify=True`` switches certificate
    checks off and is for throwaway test servers only."""

    def __init__(
        self,
        base_url: str,
        token: str,
        ca_file: Path | str | None = None,
        *,
        insecure_skip_verify: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(
                "the Kubernetes API server URL must be https://host[:port] "
                "(a bearer token is never sent over plain HTTP)"
            )
        if not token or any(c in token for c in "\r\n "):
            raise ConfigError("the Kubernetes API token is empty or malformed")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ConfigError(f"the Kubernetes CA bundle {str(ca_file)!r} is not a file")
        if timeout_s <= 0:
            raise ConfigError("the Kubernetes API time-out must be above 0 seconds")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._verify: bool | str = (
            False if insecure_skip_verify else (str(ca_file) if ca_file is not None else True)
        )
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        self._session.trust_env = False  # no proxy or netrc from the environment

    @classmethod
    def in_cluster(cls, environ: Mapping[str, str], account: Path = SERVICE_ACCOUNT_DIR) -> KubeApi:
        """The API server of the cluster this process runs in, as its service account
        (``KUBERNETES_SERVICE_HOST``/``_PORT``, the mounted token and CA)."""
        host = environ.get("KUBERNETES_SERVICE_HOST", "")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        token_file = account / "token"
        if not host or not token_file.is_file():
            raise ConfigError(
                "not running inside a Kubernetes cluster (no KUBERNETES_SERVICE_HOST or "
                f"no service-account token at {token_file})"
            )
        if ":" in host:
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", token_file.read_text().strip(), account / "ca.crt")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths --

    @staticmethod
    def _kind(kind: str) -> Kind:
        try:
            return KINDS[kind]
        except KeyError:
            raise InputError(
                f"kind {kind!r} is not one sde manages ({', '.join(sorted(KINDS))})"
            ) from None

    def _path(self, kind: Kind, namespace: str | None, name: str | None = None) -> str:
        path = kind.prefix
        if kind.namespaced:
            if not namespace:
                raise InputError(f"a {kind.name} needs a namespace")
            path += f"/namespaces/{quote(namespace, safe='')}"
        elif namespace:
            raise InputError(f"a {kind.name} is not namespaced")
        path += f"/{kind.plural}"
        if name is not None:
            if not name:
                raise InputError(f"a {kind.name} needs a name")
            path += f"/{quote(name, safe='')}"
        return path

    @staticmethod
    def _describe(verb: str, kind: Kind, name: str | None, namespace: str | None) -> str:
        what = f"{verb} {kind.name}" + (f" {name!r}" if name else "s")
        return what + (f" in namespace {namespace!r}" if namespace else "")

    def _request(
        self,
        method: str,
        path: str,
        action: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            answer = self._session.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                verify=self._verify,
                timeout=self.timeout_s,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise KubeUnreachable(action, "its TLS certificate is not trusted") from None
        except requests.exceptions.Timeout:
            raise KubeUnreachable(action, f"no answer within {self.timeout_s:g} s") from None
        except requests.exceptions.RequestException as exc:
            raise KubeUnreachable(action, type(exc).__name__) from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 300:
            reason, message = _status_of(data, answer.status_code)
            error = _ERRORS.get(answer.status_code, KubeApiError)
            raise error(action, answer.status_code, reason, message)
        if not isinstance(data, dict):
            raise KubeApiError(action, answer.status_code, "", "the answer was not a JSON object")
        return data

    # -- verbs --

    def version(self) -> str:
        """The server's ``gitVersion`` (``v1.37.2``): a cheap check that the server is
        reachable, trusted and accepts the token."""
        data = self._request("GET", "/version", "asking its version")
        version = data.get("gitVersion")
        if not isinstance(version, str):
            raise KubeApiError("asking its version", 200, "", "the answer has no gitVersion")
        return version

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object, as the server holds it. ``KubeNotFound`` when there is none."""
        k = self._kind(kind)
        action = self._describe("getting", k, name, namespace)
        return self._request("GET", self._path(k, namespace, name), action)

    def list(
        self, kind: str, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` carrying all of ``labels``."""
        k = self._kind(kind)
        action = self._describe("listing", k, None, namespace)
        data = self._request(
            "GET", self._path(k, namespace), action, params={"labelSelector": selector_text(labels)}
        )
        items = data.get("items")
        if not isinstance(items, list):
            raise KubeApiError(action, 200, "", "the answer has no items list")
        return [item for item in items if isinstance(item, dict)]

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object; the server's copy is returned. ``KubeConflict`` (reason
        ``AlreadyExists``) when it exists."""
        k, name, namespace = self._identify(manifest)
        action = self._describe("creating", k, name, namespace)
        return self._request("POST", self._path(k, namespace), action, body=manifest)

    def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the object with ``manifest``. Without a ``metadata.resourceVersion`` the
        current one is read first; ``KubeConflict`` when the object changed in between."""
        k, name, namespace = self._identify(manifest)
        body = copy.deepcopy(dict(manifest))
        metadata = body.setdefault("metadata", {})
        if not metadata.get("resourceVersion"):
            current = self.get(k.name, name, namespace)
            metadata["resourceVersion"] = _mapping(current.get("metadata")).get(
                "resourceVersion", ""
            )
        action = self._describe("replacing", k, name, namespace)
        return self._request("PUT", self._path(k, namespace, name), action, body=body)

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = False,
        grace_period_s: int | None = None,
    ) -> bool:
        """Delete the object (its dependents in the background). True when the server
        accepted the deletion; False when there was nothing to delete and ``missing_ok``
        (otherwise ``KubeNotFound``)."""
        k = self._kind(kind)
        action = self._describe("deleting", k, name, namespace)
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if grace_period_s is not None:
            options["gracePeriodSeconds"] = grace_period_s
        try:
            self._request("DELETE", self._path(k, namespace, name), action, body=options)
        except KubeNotFound:
            if missing_ok:
                return False
            raise
        return True

    def _identify(self, manifest: Mapping[str, Any]) -> tuple[Kind, str, str | None]:
        kind = self._kind(str(manifest.get("kind", "")))
        if manifest.get("apiVersion") != kind.api_version:
            raise InputError(f"a {kind.name} manifest must have apiVersion {kind.api_version}")
        metadata = _mapping(manifest.get("metadata"))
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"a {kind.name} manifest needs metadata.name")
        namespace = metadata.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise InputError(f"{kind.name} {name!r}: metadata.namespace must be text")
        return kind, name, namespace or None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _status_of(data: object, status: int) -> tuple[str, str]:
    """The ``reason`` and ``message`` of a ``Status`` answer (shortened), or the HTTP
    status alone when the body is not one."""
    body = _mapping(data)
    reason = body.get("reason")
    message = body.get("message")
    reason_text = reason if isinstance(reason, str) else ""
    message_text = message if isinstance(message, str) else f"HTTP {status}"
    if len(message_text) > MAX_MESSAGE:
        message_text = message_text[: MAX_MESSAGE - 1] + "…"
    return reason_text, message_text


# --- sde's objects -------------------------------------------------------------------


def person_selector(person_id: str) -> dict[str, str]:
    """The labels that select every workspace pod of one person, in every project."""
    check_person_id(person_id)
    return {LABEL_NAME: WORKSPACE_APP, LABEL_PERSON: label_safe(person_id)}


def qualified(kind: str, name: str) -> str:
    """How removed objects are reported: ``Pod/ws-...``, ``NetworkPolicy/sde-ws-...``."""
    return f"{kind}/{name}"


class WorkspaceCluster:
    """sde's workspace objects in one namespace of one cluster (``settings.namespace``).

    Every method is idempotent: calling it twice leaves the cluster as calling it once."""

    def __init__(self, api: KubeApi, settings: PodSettings) -> None:
        self.api = api
        self.settings = settings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def ensure_namespace(self) -> None:
        """The namespace exists, Pod Security Admission enforces "restricted" in it (the
        labels are added to an existing namespace that lacks them), and its default-deny
        NetworkPolicy is in place."""
        name = self.namespace
        try:
            current = self.api.get("Namespace", name)
        except KubeNotFound:
            try:
                self.api.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": name, "labels": dict(PSA_LABELS)},
                    }
                )
            except KubeConflict:  # made by someone else in between: check its labels
                current = self.api.get("Namespace", name)
                self._label_namespace(current)
        else:
            self._label_namespace(current)
        self._create_or_replace(build_default_deny(self.settings))

    def _label_namespace(self, current: Mapping[str, Any]) -> None:
        labels = dict(_mapping(_mapping(current.get("metadata")).get("labels")))
        if all(labels.get(key) == value for key, value in PSA_LABELS.items()):
            return
        updated = copy.deepcopy(dict(current))
        updated["metadata"]["labels"] = {**labels, **PSA_LABELS}
        self.api.replace(updated)

    def open_project(self, project_id: str) -> dict[str, Any]:
        """The project's ServiceAccount (``build_service_account``) and NetworkPolicy
        (``build_network_policy``), created at the project's first spawn and replaced
        when they differ (so a changed setting reaches the cluster). Returns the server's
        copy of the NetworkPolicy."""
        self._create_or_replace(build_service_account(self.settings, project_id=project_id))
        return self._create_or_replace(build_network_policy(self.settings, project_id=project_id))

    def close_project(self, project_id: str) -> list[str]:
        """Delete every workspace pod of the project, then its NetworkPolicy and its
        ServiceAccount (when the project is suspended or closed). Returns what was
        removed, ``Kind/name``; an empty list when there was nothing."""
        removed = self._delete_pods(project_selector(project_id))
        policy = network_policy_name(project_id)
        if self.api.delete("NetworkPolicy", policy, self.namespace, missing_ok=True):
            removed.append(qualified("NetworkPolicy", policy))
        account = service_account_name(project_id)
        if self.api.delete("ServiceAccount", account, self.namespace, missing_ok=True):
            removed.append(qualified("ServiceAccount", account))
        return removed

    def open_projects(self) -> list[str]:
        """The projects whose NetworkPolicy is in the namespace (their exact ids, from the
        policy's annotation), sorted."""
        selector = {LABEL_NAME: WORKSPACE_APP, LABEL_COMPONENT: "network-policy"}
        projects = set()
        for item in self.api.list("NetworkPolicy", self.namespace, selector):
            project = _mapping(_mapping(item.get("metadata")).get("annotations")).get(LABEL_PROJECT)
            if isinstance(project, str) and project:
                projects.add(project)
        return sorted(projects)

    def stop_person(self, person_id: str) -> list[str]:
        """Delete every workspace pod of the person, in every project (a ban stops the
        person's running sessions). Returns the pods removed, ``Pod/name``."""
        return self._delete_pods(person_selector(person_id))

    def workspace_pods(self) -> list[WorkspacePod]:
        """Every workspace pod in the namespace, with the session it serves (from its
        annotations: ``sde/person``, ``sde/project`` and KubeSpawner's server name),
        sorted by name."""
        pods = []
        for item in self.api.list("Pod", self.namespace, {LABEL_NAME: WORKSPACE_APP}):
            metadata = _mapping(item.get("metadata"))
            annotations = _mapping(metadata.get("annotations"))
            name = metadata.get("name")
            if not isinstance(name, str) or not name:
                continue
            pods.append(
                WorkspacePod(
                    name=name,
                    person=str(annotations.get(LABEL_PERSON) or ""),
                    server=str(annotations.get(HUB_SERVER_ANNOTATION) or ""),
                    project=str(annotations.get(LABEL_PROJECT) or ""),
                    created=_timestamp(metadata.get("creationTimestamp")),
                )
            )
        return sorted(pods, key=lambda pod: pod.name)

    def delete_workspace_pod(self, name: str) -> bool:
        """Delete one workspace pod; False when it was already gone."""
        return self.api.delete("Pod", name, self.namespace, missing_ok=True)

    def create_workspace_pod(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """Submit a workspace pod built by ``build_pod``. It is checked first, here: it
        must be a Pod of this namespace labelled as a workspace, and meet the
        "restricted" profile (``check_pod_restricted``; ``PolicyDenied`` names the
        rules). The cluster's Pod Security Admission checks it again."""
        metadata = _mapping(pod.get("metadata"))
        name = str(metadata.get("name") or "")
        if pod.get("kind") != "Pod":
            raise InputError("a workspace must be a Pod manifest")
        if metadata.get("namespace") != self.namespace:
            raise InputError(f"workspace pod {name!r} is not in namespace {self.namespace!r}")
        if _mapping(metadata.get("labels")).get(LABEL_NAME) != WORKSPACE_APP:
            raise InputError(f"workspace pod {name!r} lacks the label {LABEL_NAME}={WORKSPACE_APP}")
        violations = check_pod_restricted(pod)
        if violations:
            raise PolicyDenied(f"workspace pod {name!r}", violations)
        return self.api.create(pod)

    def _delete_pods(self, labels: Mapping[str, str]) -> list[str]:
        removed: list[str] = []
        for name in sorted(_names(self.api.list("Pod", self.namespace, labels))):
            if self.api.delete("Pod", name, self.namespace, missing_ok=True):
                removed.append(qualified("Pod", name))
        return removed

    def _create_or_replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.api.create(manifest)
        except KubeConflict as exc:
            if exc.reason != "AlreadyExists":
                raise
        metadata = _mapping(manifest.get("metadata"))
        kind, name = str(manifest["kind"]), str(metadata["name"])
        current = self.api.get(kind, name, self.namespace)
        if _same_object(current, manifest):
            return current
        return self.api.replace(manifest)


def _timestamp(value: object) -> dt.datetime | None:
    """An API server's RFC 3339 time (``2026-11-25T07:40:00Z``); None if absent or odd."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _names(items: Iterable[Mapping[str, Any]]) -> list[str]:
    names = (_mapping(item.get("metadata")).get("name") for item in items)
    return [name for name in names if isinstance(name, str) and name]


def _same_object(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """The server's object already says what ``wanted`` says: same spec (for a
    ServiceAccount: same token mounting and exactly the same annotations, since an
    annotation left over would keep a project bound to an identity), and every label and
    annotation of ``wanted`` present with its value."""
    if current.get("spec") != wanted.get("spec"):
        return False
    have, want = _mapping(current.get("metadata")), _mapping(wanted.get("metadata"))
    if wanted.get("kind") == "ServiceAccount" and (
        current.get("automountServiceAccountToken") != wanted.get("automountServiceAccountToken")
        or dict(_mapping(have.get("annotations"))) != dict(_mapping(want.get("annotations")))
    ):
        return False
    for field_name in ("labels", "annotations"):
        present = _mapping(have.get(field_name))
        if any(present.get(key) != value for key, value in _mapping(want.get(field_name)).items()):
            return False
    return True
