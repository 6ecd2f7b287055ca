"""Researcher workspaces as isolated Kubernetes pods: pure builders and rules.

"Safe settings": each researcher's workspace runs in its own pod, which can read only its
project's extract, write only to scratch space that vanishes with the pod, and talk only
to the hub, the proxy and the sde service. This module builds those objects from
configuration, as plain dicts ready for the Kubernetes API; nothing here talks to a
cluster (see docs/workspaces-kubernetes.md).

- :class:`PodSettings` is the ``workspaces:`` section of ``config.yaml``; every value is
  validated when the settings are made, so an unsafe pod cannot be built from them.
- :func:`build_pod` makes a workspace Pod; :func:`build_network_policy` makes the
  per-project NetworkPolicy that confines those pods.
- With the lake on object storage, :class:`StoreExtract` says where a project's extract
  is (its URL, the store's plain options, and the Secret its credentials come from, by
  ``secretKeyRef``); ``build_pod`` then mounts no extract volume, and the pods may reach
  the store's addresses given in ``object_store_egress`` (:class:`ObjectStoreEgress`).
- :func:`check_pod_restricted` checks a pod against the Pod Security Standards
  "restricted" profile (:data:`RESTRICTED_RULES`), as pure rules, and returns the
  violations. The builder's pods pass it.

Builders copy their inputs: the returned dicts share nothing with the settings or the
caller's mappings. Errors name settings, rules and containers; env values never appear.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sde.domain.credentials import looks_like_credential
from sde.domain.projects import check_person_id, check_project_id
from sde.errors import ConfigError, InputError

# Label keys this module writes. The prefix ``sde`` is a valid DNS subdomain.
LABEL_PROJECT = "sde/project"
LABEL_PERSON = "sde/person"
LABEL_SESSION = "sde/session"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
WORKSPACE_APP = "sde-workspace"

HOME_DIR = "/home/jovyan"
EXTRACT_PATH = f"{HOME_DIR}/extract"
SCRATCH_PATH = f"{HOME_DIR}/scratch"
TMP_PATH = "/tmp"  # noqa: S108 -- a mount point inside the pod, backed by an emptyDir
CONTAINER_NAME = "notebook"
PROJECT_PLACEHOLDER = "{project}"
DEFAULT_EXTRACT_CLAIM = "sde-extract-{project}"

# Set in every workspace; ``env`` given to build_pod may not override them. The home
# directory is read-only (readOnlyRootFilesystem), so tools that write state keep it
# under /tmp.
RESERVED_ENV: dict[str, str] = {
    "SDE_PROJECT": "",  # filled per pod
    "SDE_USER": "",  # filled per pod
    "SDE_SCRATCH": SCRATCH_PATH,  # where DuckDB may read and write files
    "SDE_EXTRACT": EXTRACT_PATH,  # the project's extract, read-only
    "SDE_OUTPUTS": f"{SCRATCH_PATH}/outputs",  # tables waiting to be asked for release
    "HOME": HOME_DIR,
    "JUPYTER_RUNTIME_DIR": f"{TMP_PATH}/jupyter/runtime",
    "IPYTHONDIR": f"{TMP_PATH}/ipython",
    "MPLCONFIGDIR": f"{TMP_PATH}/matplotlib",
    "XDG_CACHE_HOME": f"{TMP_PATH}/cache",
    "XDG_CONFIG_HOME": f"{TMP_PATH}/config",
    "XDG_DATA_HOME": f"{TMP_PATH}/data",
}

# --- Kubernetes name and label rules ------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN_PART = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_SUBDOMAIN_PART}(\.{_DNS_SUBDOMAIN_PART})*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SESSION_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# A Secret's data key (k8s.io/apimachinery IsConfigMapKey).
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
# An object-store URL as a workspace is given it: scheme://bucket[/prefix], no spaces,
# query or fragment (the home's lake settings check it fully).
_STORE_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s?#/]+(/[^\s?#]*)?$")

# Container image references (the grammar of distribution/reference, without IPv6 hosts).
_IMAGE_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"  # noqa: E501
_IMAGE_PATH = r"(?:[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)"
_IMAGE = re.compile(
    rf"^(?:{_IMAGE_DOMAIN}/)?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*"
    r"(?P<tag>:[\w][\w.-]{0,127})?"
    r"(?P<digest>@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

# Resource quantities (k8s.io/apimachinery resource.Quantity, as written in manifests).
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

Labels = tuple[tuple[str, str], ...]


def is_label_key(key: str) -> bool:
    """A Kubernetes label (or annotation) key: ``[prefix/]name``, the prefix a DNS
    subdomain of at most 253 characters, the name at most 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(_LABEL_NAME.match(name))


def is_label_value(value: str) -> bool:
    """A Kubernetes label value: empty, or up to 63 letters, digits, ``-_.``, starting and
    ending with a letter or digit."""
    return bool(_LABEL_VALUE.match(value))


def is_dns_label(value: str) -> bool:
    return bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes resource quantity (``500m``, ``2``, ``4Gi``, ``1e3``) as an exact number.
    Raises ``ValueError`` for anything else."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number = Fraction(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Fraction(1024 ** _BINARY[suffix])
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number * (Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent))


def format_bytes(amount: Fraction) -> str:
    """A byte count as a quantity, in the largest binary unit that divides it exactly."""
    whole = int(amount)
    if whole != amount or whole < 0:
        raise ValueError("a byte count must be a whole number >= 0")
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = 1024**power
        if whole and whole % unit == 0:
            return f"{whole // unit}{suffix}"
    return str(whole)


def label_safe(value: str) -> str:
    """``value`` itself when it is a valid label value; otherwise a stable, valid stand-in:
    its start (trailing ``-._`` removed) and 16 hex digits of its SHA-256, joined by ``.``.
    Distinct ids keep distinct labels (a clash needs a SHA-256 preimage)."""
    if is_label_value(value) and value:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "", value)[:40].rstrip("-._").lstrip("-._")
    return f"{stem}.{digest}" if stem else f"x.{digest}"


# --- Settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Toleration:
    """One toleration of a node taint. A toleration without a key would tolerate every
    taint (control-plane nodes included), so a key is required."""

    key: str
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None

    def __post_init__(self) -> None:
        where = f"workspaces toleration {self.key!r}"
        if not self.key:
            raise ConfigError(
                "a workspaces toleration needs a 'key': one without would tolerate every taint"
            )
        if not is_label_key(self.key):
            raise ConfigError(f"{where}: 'key' is not a valid Kubernetes label key")
        if self.operator not in TOLERATION_OPERATORS:
            raise ConfigError(
                f"{where}: 'operator' must be one of {', '.join(TOLERATION_OPERATORS)}"
            )
        if self.operator == "Exists" and self.value:
            raise ConfigError(f"{where}: 'value' must be empty when 'operator' is Exists")
        if not is_label_value(self.value):
            raise ConfigError(f"{where}: 'value' is not a valid Kubernetes label value")
        if self.effect and self.effect not in TAINT_EFFECTS:
            raise ConfigError(
                f"{where}: 'effect' must be one of {', '.join(TAINT_EFFECTS)} (or empty for all)"
            )
        if self.toleration_seconds is not None:
            if self.effect != "NoExecute":
                raise ConfigError(f"{where}: 'tolerationSeconds' needs 'effect: NoExecute'")
            if _not_whole(self.toleration_seconds) or self.toleration_seconds < 0:
                raise ConfigError(f"{where}: 'tolerationSeconds' must be a whole number >= 0")

    @classmethod
    def from_mapping(cls, data: Any) -> Toleration:
        if not isinstance(data, Mapping):
            raise ConfigError("each workspaces toleration must be a mapping")
        known = ("key", "operator", "value", "effect", "tolerationSeconds")
        _refuse_unknown("workspaces toleration", data, known)
        for name in ("key", "operator", "value", "effect"):
            if name in data and not isinstance(data[name], str):
                raise ConfigError(f"workspaces toleration setting {name!r} must be text")
        return cls(
            key=data.get("key", ""),
            operator=data.get("operator", "Equal"),
            value=data.get("value", ""),
            effect=data.get("effect", ""),
            toleration_seconds=data.get("tolerationSeconds"),
        )

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.value:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@dataclass(frozen=True)
class ExtractVolume:
    """Where a project's extract comes from: a PersistentVolumeClaim named by ``claim``
    (``{project}`` replaced by the project id), or an inline CSI volume (``csi_driver``
    with ``csi_attributes``, where ``{project}`` is replaced in the values). Exactly one.
    hostPath is never a choice. The project id must appear, so two projects can never
    be given the same extract."""

    claim: str | None = DEFAULT_EXTRACT_CLAIM
    csi_driver: str | None = None
    csi_attributes: Labels = ()

    def __post_init__(self) -> None:
        if (self.claim is None) == (self.csi_driver is None):
            raise ConfigError(
                "workspaces extract needs exactly one of 'claim' (a PersistentVolumeClaim "
                "name pattern) or 'csi_driver'"
            )
        if self.claim is not None:
            if self.csi_attributes:
                raise ConfigError("workspaces extract 'csi_attributes' needs 'csi_driver'")
            _check_pattern("workspaces extract 'claim'", self.claim)
            if PROJECT_PLACEHOLDER not in self.claim:
                raise ConfigError(
                    "workspaces extract 'claim' must contain {project}: "
                    "each project has its own extract"
                )
            if not is_dns_subdomain(self.claim.replace(PROJECT_PLACEHOLDER, "p")):
                raise ConfigError(
                    "workspaces extract 'claim' must give a valid PersistentVolumeClaim name "
                    "(lower-case letters, digits, '-' and '.')"
                )
        else:
            assert self.csi_driver is not None
            if not (is_dns_subdomain(self.csi_driver) and len(self.csi_driver) <= 63):
                raise ConfigError("workspaces extract 'csi_driver' is not a valid CSI driver name")
            for name, value in self.csi_attributes:
                if not name or not isinstance(value, str):
                    raise ConfigError("workspaces extract 'csi_attributes' must map names to text")
                _check_pattern(f"workspaces extract csi attribute {name!r}", value)
            if not any(PROJECT_PLACEHOLDER in value for _, value in self.csi_attributes):
                raise ConfigError(
                    "workspaces extract 'csi_attributes' must contain {project} in a value: "
                    "each project has its own extract"
                )

    @classmethod
    def from_mapping(cls, data: Any) -> ExtractVolume:
        if not isinstance(data, Mapping):
            raise ConfigError("the workspaces 'extract' setting must be a mapping")
        for forbidden in ("hostPath", "host_path", "hostpath"):
            if forbidden in data:
                raise ConfigError(
                    "workspaces extract: hostPath volumes are never used; "
                    "give a PersistentVolumeClaim 'claim' or a 'csi_driver'"
                )
        _refuse_unknown("workspaces extract", data, ("claim", "csi_driver", "csi_attributes"))
        driver = data.get("csi_driver")
        claim = data.get("claim", None if "csi_driver" in data else DEFAULT_EXTRACT_CLAIM)
        if claim is not None and not isinstance(claim, str):
            raise ConfigError("workspaces extract 'claim' must be text")
        if driver is not None and not isinstance(driver, str):
            raise ConfigError("workspaces extract 'csi_driver' must be text")
        attributes = _labels_from("workspaces extract 'csi_attributes'", data.get("csi_attributes"))
        return cls(claim=claim, csi_driver=driver, csi_attributes=attributes)

    def to_volume(self, project_id: str) -> dict[str, Any]:
        """The pod volume for one project, mounted read-only."""
        if self.claim is not None:
            name = self.claim.replace(PROJECT_PLACEHOLDER, project_id)
            if not is_dns_subdomain(name):
                raise InputError(
                    f"project id {project_id!r} does not give a valid extract claim name"
                )
            return {
                "name": "extract",
                "persistentVolumeClaim": {"claimName": name, "readOnly": True},
            }
        return {
            "name": "extract",
            "csi": {
                "driver": self.csi_driver,
                "readOnly": True,
                "volumeAttributes": {
                    name: value.replace(PROJECT_PLACEHOLDER, project_id)
                    for name, value in self.csi_attributes
                },
            },
        }


EnvPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StoreExtract:
    """A project's extract on object storage, as its workspace pods read it (the lake is
    on object storage: ``lake:`` in config.yaml, docs/lake.md).

    ``url`` becomes ``SDE_EXTRACT``; ``options`` (the store's plain options: endpoint,
    region, ...) become plain variables under their own names. With a per-project Secret
    (``secret_name``), each of ``secret_keys`` (and of ``optional_secret_keys``, which the
    Secret may lack) becomes a variable of the same name taken from the Secret's key of
    that name by ``secretKeyRef``: the credential is never a literal in the pod spec.
    Without a Secret the pod has no credential variables and the store's own chain
    (workload identity) decides.

    Checked when made (``ConfigError`` names the field, never a value): an option whose
    name looks like a secret is refused, except a path to one (a name ending ``_FILE``,
    e.g. ``AWS_WEB_IDENTITY_TOKEN_FILE``); names are variable names and never sde's own
    (:data:`RESERVED_ENV`); values hold no ``$(`` (Kubernetes would expand it) and no
    ``{`` or ``}`` (KubeSpawner would)."""

    url: str
    options: EnvPairs = ()
    secret_name: str | None = None
    secret_keys: tuple[str, ...] = ()
    optional_secret_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "the extract on object storage"
        if not isinstance(self.url, str) or not _STORE_URL.match(self.url):
            raise ConfigError(f"{where}: 'url' must be an object-store URL (scheme://bucket/...)")
        authority = self.url.split("://", 1)[1].split("/", 1)[0]
        if ":" in authority.rpartition("@")[0]:
            raise ConfigError(f"{where}: 'url' holds user information (a credential)")
        _check_literal(f"{where}: 'url'", self.url)
        if not isinstance(self.options, tuple):
            raise ConfigError(f"{where}: 'options' must be pairs of name and value")
        names: set[str] = set()
        for pair in self.options:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ConfigError(f"{where}: 'options' must be pairs of name and value")
            name, value = pair
            _check_store_name(f"{where}: option", name, names)
            # Secrets reach a pod through secretKeyRef, never as literals in its spec.
            if looks_like_credential(name) and not name.endswith("_FILE"):
                raise ConfigError(
                    f"{where}: option {name!r} looks like a credential: credentials reach "
                    "a pod by secretKeyRef only"
                )
            if not isinstance(value, str):
                raise ConfigError(f"{where}: option {name!r} must have a text value")
            _check_literal(f"{where}: option {name!r}", value)
        keys = (*self.secret_keys, *self.optional_secret_keys)
        if self.secret_name is None:
            if keys:
                raise ConfigError(f"{where}: credential keys need 'secret_name'")
            return
        if not isinstance(self.secret_name, str) or not is_dns_subdomain(self.secret_name):
            raise ConfigError(f"{where}: 'secret_name' is not a valid Secret name")
        if not keys:
            raise ConfigError(f"{where}: 'secret_name' needs at least one credential key")
        for key in keys:
            _check_store_name(f"{where}: credential key", key, names)
            if not _SECRET_KEY.match(key):
                raise ConfigError(f"{where}: credential key {key!r} is not a Secret key")

    def plain_env(self) -> dict[str, str]:
        """``SDE_EXTRACT`` (the URL) and the store's plain options."""
        return {"SDE_EXTRACT": self.url, **dict(self.options)}

    def credential_env(self) -> list[dict[str, Any]]:
        """The credential variables, each a ``secretKeyRef`` on the project's Secret
        (``optional: true`` for the keys it may lack); none without a Secret."""
        if self.secret_name is None:
            return []
        optional = set(self.optional_secret_keys)
        out: list[dict[str, Any]] = []
        for key in sorted((*self.secret_keys, *self.optional_secret_keys)):
            ref: dict[str, Any] = {"name": self.secret_name, "key": key}
            if key in optional:
                ref["optional"] = True
            out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
        return out

    def env_names(self) -> frozenset[str]:
        """Every variable this extract sets (``SDE_EXTRACT`` aside)."""
        names = [name for name, _ in self.options]
        return frozenset([*names, *self.secret_keys, *self.optional_secret_keys])


def _check_store_name(where: str, name: object, seen: set[str]) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ConfigError(f"{where} {name!r} is not a valid variable name")
    if name in RESERVED_ENV:
        raise ConfigError(f"{where} {name!r} is set by sde")
    if name in seen:
        raise ConfigError(f"{where} {name!r} is given twice")
    seen.add(name)


def _check_literal(where: str, value: str) -> None:
    if "$(" in value or "{" in value or "}" in value:
        raise ConfigError(
            f"{where} must not contain '$(', '{{' or '}}' (Kubernetes or KubeSpawner would "
            "expand them)"
        )


WIDE_EGRESS_PREFIX: dict[int, int] = {4: 8, 6: 32}
"""An ``object_store_egress`` block with a shorter prefix than this (per IP version) is
"wide" (``0.0.0.0/0`` and ``::/0`` above all): refused unless
``allow_wide_object_store_egress`` is true."""


@dataclass(frozen=True)
class ObjectStoreEgress:
    """One address block (``cidr``) where the lake's object store answers, and its TCP
    ``ports``: the workspace pods may connect there (only there) when the lake is on
    object storage."""

    cidr: str
    ports: tuple[int, ...] = (443,)

    def __post_init__(self) -> None:
        where = "workspaces object_store_egress"
        if not isinstance(self.cidr, str):
            raise ConfigError(f"{where} 'cidr' must be text")
        try:
            network = ipaddress.ip_network(self.cidr, strict=True)
        except ValueError:
            raise ConfigError(
                f"{where} 'cidr' {self.cidr!r} is not an address block such as 10.20.0.0/16 "
                "(with the host bits zero)"
            ) from None
        if str(network) != self.cidr:
            raise ConfigError(f"{where} 'cidr' {self.cidr!r} must be written as {network}")
        if not isinstance(self.ports, tuple) or not self.ports:
            raise ConfigError(f"{where} {self.cidr}: 'ports' must list at least one port")
        for port in self.ports:
            if _not_whole(port) or not 0 < port < 65536:
                raise ConfigError(f"{where} {self.cidr}: 'ports' must be port numbers")
        if len(set(self.ports)) != len(self.ports):
            raise ConfigError(f"{where} {self.cidr}: a port is given twice")

    @property
    def is_wide(self) -> bool:
        network = ipaddress.ip_network(self.cidr)
        return network.prefixlen < WIDE_EGRESS_PREFIX[network.version]

    @classmethod
    def from_mapping(cls, data: Any) -> ObjectStoreEgress:
        where = "workspaces object_store_egress"
        if not isinstance(data, Mapping):
            raise ConfigError(f"each {where} entry must be a mapping (cidr, ports)")
        _refuse_unknown(f"{where} entry", data, ("cidr", "ports"))
        cidr = data.get("cidr")
        if not isinstance(cidr, str):
            raise ConfigError(f"each {where} entry needs a 'cidr' (e.g. 10.20.0.0/16)")
        # Written out in full (a bare address is its /32 or /128); a block that is not
        # one is refused, with the reason, by the constructor.
        with contextlib.suppress(ValueError):
            cidr = str(ipaddress.ip_network(cidr.strip(), strict=True))
        ports = data.get("ports", [443])
        if not isinstance(ports, Sequence) or isinstance(ports, str):
            raise ConfigError(f"{where} {cidr}: 'ports' must be a list of port numbers")
        return cls(cidr=cidr, ports=tuple(ports))

    def to_rule(self) -> dict[str, Any]:
        """The NetworkPolicy egress rule: this block, these TCP ports."""
        return {
            "to": [{"ipBlock": {"cidr": self.cidr}}],
            "ports": [{"protocol": "TCP", "port": port} for port in self.ports],
        }


@dataclass(frozen=True)
class PodSettings:
    """The ``workspaces:`` section of ``config.yaml``: how workspace pods are built.

    Every value is checked here (``ConfigError`` names the setting), so a pod built from
    settings is within the rules. See docs/workspaces-kubernetes.md for each key."""

    namespace: str = "sde-workspaces"
    image: str = "ghcr.io/sde/workspace:latest"
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    scratch_limit: str = "10Gi"
    tmp_limit: str = "1Gi"
    node_selector: Labels = ()
    tolerations: tuple[Toleration, ...] = ()
    extract: ExtractVolume = field(default_factory=ExtractVolume)
    uid: int = 1000
    gid: int = 1000
    services_namespace: str | None = None
    hub_selector: Labels = (("app", "jupyterhub"), ("component", "hub"))
    proxy_selector: Labels = (("app", "jupyterhub"), ("component", "proxy"))
    sde_service_selector: Labels = ((LABEL_NAME, "sde"), (LABEL_COMPONENT, "web"))
    dns_namespace: str = "kube-system"
    dns_selector: Labels = (("k8s-app", "kube-dns"),)
    notebook_port: int = 8888
    hub_port: int = 8081
    sde_service_port: int = 8800
    object_store_egress: tuple[ObjectStoreEgress, ...] = ()
    allow_wide_object_store_egress: bool = False
    service_account_annotations: Labels = ()

    def __post_init__(self) -> None:
        for name in ("namespace", "dns_namespace"):
            if not is_dns_label(getattr(self, name)):
                raise ConfigError(
                    f"workspaces setting {name!r} must be a Kubernetes namespace name"
                )
        if self.services_namespace is not None and not is_dns_label(self.services_namespace):
            raise ConfigError(
                "workspaces setting 'services_namespace' must be a Kubernetes namespace name"
            )
        check_image(self.image)
        for request, limit in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
            low = _positive_quantity(request, getattr(self, request))
            high = _positive_quantity(limit, getattr(self, limit))
            if low > high:
                raise ConfigError(f"workspaces setting {request!r} must not exceed {limit!r}")
        for name in ("scratch_limit", "tmp_limit"):
            size = _positive_quantity(name, getattr(self, name))
            if size.denominator != 1:
                raise ConfigError(f"workspaces setting {name!r} must be a whole number of bytes")
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if _not_whole(value) or not 0 < value < 2**31:
                raise ConfigError(
                    f"workspaces setting {name!r} must be a whole number above 0 (never root)"
                )
        for name in ("notebook_port", "hub_port", "sde_service_port"):
            value = getattr(self, name)
            if _not_whole(value) or not 0 < value < 65536:
                raise ConfigError(f"workspaces setting {name!r} must be a port number")
        _check_labels("node_selector", self.node_selector)
        for name in ("hub_selector", "proxy_selector", "sde_service_selector", "dns_selector"):
            labels = getattr(self, name)
            _check_labels(name, labels)
            if not labels:
                # An empty selector would match every pod in the namespace.
                raise ConfigError(f"workspaces setting {name!r} must name at least one label")
        for toleration in self.tolerations:
            if not isinstance(toleration, Toleration):
                raise ConfigError("workspaces 'tolerations' must be Toleration values")
        if not isinstance(self.extract, ExtractVolume):
            raise ConfigError("workspaces 'extract' must be an ExtractVolume")
        if not isinstance(self.allow_wide_object_store_egress, bool):
            raise ConfigError(
                "workspaces setting 'allow_wide_object_store_egress' must be true or false"
            )
        _check_service_account_annotations(self.service_account_annotations)
        if not isinstance(self.object_store_egress, tuple):
            raise ConfigError("workspaces 'object_store_egress' must be ObjectStoreEgress values")
        for block in self.object_store_egress:
            if not isinstance(block, ObjectStoreEgress):
                raise ConfigError(
                    "workspaces 'object_store_egress' must be ObjectStoreEgress values"
                )
            if block.is_wide and not self.allow_wide_object_store_egress:
                raise ConfigError(
                    f"workspaces object_store_egress {block.cidr} is wider than "
                    f"/{WIDE_EGRESS_PREFIX[ipaddress.ip_network(block.cidr).version]}: it "
                    "would let the workspaces reach much of the internet. Give the store's "
                    "own addresses, or set allow_wide_object_store_egress: true"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> PodSettings:
        """Settings from the ``workspaces:`` section (``None``: the defaults). Unknown keys
        are refused by name."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("the 'workspaces' section of config.yaml must be a mapping")
        _refuse_unknown("workspaces", data, SETTING_KEYS)
        kwargs: dict[str, Any] = {}
        for name in ("namespace", "image", "services_namespace", "dns_namespace"):
            if name in data:
                if not isinstance(data[name], str):
                    raise ConfigError(f"workspaces setting {name!r} must be text")
                kwargs[name] = data[name]
        for name in _QUANTITY_KEYS:
            if name in data:
                kwargs[name] = _quantity_text(name, data[name])
        for name in ("uid", "gid", "notebook_port", "hub_port", "sde_service_port"):
            if name in data:
                kwargs[name] = data[name]
        for name in ("node_selector", *_SELECTOR_KEYS):
            if name in data:
                kwargs[name] = _labels_from(f"workspaces setting {name!r}", data[name])
        if "tolerations" in data:
            raw = data["tolerations"]
            if not isinstance(raw, Sequence) or isinstance(raw, str):
                raise ConfigError("workspaces setting 'tolerations' must be a list of mappings")
            kwargs["tolerations"] = tuple(Toleration.from_mapping(item) for item in raw)
        if "extract" in data:
            kwargs["extract"] = ExtractVolume.from_mapping(data["extract"])
        if "object_store_egress" in data:
            raw = data["object_store_egress"] or []
            if not isinstance(raw, Sequence) or isinstance(raw, str):
                raise ConfigError(
                    "workspaces setting 'object_store_egress' must be a list of mappings "
                    "(cidr, ports)"
                )
            kwargs["object_store_egress"] = tuple(ObjectStoreEgress.from_mapping(i) for i in raw)
        if "allow_wide_object_store_egress" in data:
            kwargs["allow_wide_object_store_egress"] = data["allow_wide_object_store_egress"]
        if "service_account_annotations" in data:
            kwargs["service_account_annotations"] = _labels_from(
                "workspaces setting 'service_account_annotations'",
                data["service_account_annotations"],
            )
        return cls(**kwargs)

    def scratch_and_tmp_bytes(self) -> str:
        """The container's ephemeral-storage: scratch plus /tmp."""
        return format_bytes(parse_quantity(self.scratch_limit) + parse_quantity(self.tmp_limit))


_QUANTITY_KEYS = (
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    "scratch_limit",
    "tmp_limit",
)
_SELECTOR_KEYS = ("hub_selector", "proxy_selector", "sde_service_selector", "dns_selector")
SETTING_KEYS: tuple[str, ...] = (
    "namespace",
    "image",
    *_QUANTITY_KEYS,
    "node_selector",
    "tolerations",
    "extract",
    "uid",
    "gid",
    "services_namespace",
    *_SELECTOR_KEYS,
    "dns_namespace",
    "notebook_port",
    "hub_port",
    "sde_service_port",
    "object_store_egress",
    "allow_wide_object_store_egress",
    "service_account_annotations",
)


def check_image(image: str) -> str:
    """A container image reference that names its version: a tag (``:1.4.2``) or a digest
    (``@sha256:…``). An image without either would silently mean ``latest``."""
    if not isinstance(image, str):
        raise ConfigError("workspaces setting 'image' must be text")
    match = _IMAGE.match(image)
    if not match:
        raise ConfigError(
            f"workspaces setting 'image' is not a container image reference: {image!r}"
        )
    if not (match["tag"] or match["digest"]):
        raise ConfigError(
            f"workspaces setting 'image' must carry a tag or a digest (':1.2.3' or "
            f"'@sha256:…'), not an implicit 'latest': {image!r}"
        )
    return image


def _not_whole(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _refuse_unknown(where: str, data: Mapping[Any, Any], known: Iterable[str]) -> None:
    allowed = set(known)
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(f"unknown {where} settings: {', '.join(unknown)}")


def _quantity_text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"workspaces setting {name!r} must be a Kubernetes quantity")
    return str(value)


def _positive_quantity(name: str, value: object) -> Fraction:
    if not isinstance(value, str):
        raise ConfigError(f"workspaces setting {name!r} must be a Kubernetes quantity")
    try:
        amount = parse_quantity(value)
    except ValueError:
        raise ConfigError(
            f"workspaces setting {name!r} must be a Kubernetes quantity such as 500m, 2 or 4Gi"
        ) from None
    if amount <= 0:
        raise ConfigError(f"workspaces setting {name!r} must be above 0")
    return amount


def _labels_from(where: str, data: object) -> Labels:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of names to text")
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"{where} must be a mapping of names to text")
        pairs.append((key, value))
    return tuple(sorted(pairs))


def _check_labels(name: str, labels: object) -> None:
    if not isinstance(labels, tuple):
        raise ConfigError(f"workspaces setting {name!r} must be pairs of label key and value")
    keys: set[str] = set()
    for pair in labels:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ConfigError(f"workspaces setting {name!r} must be pairs of label key and value")
        key, value = pair
        if not (isinstance(key, str) and is_label_key(key)):
            raise ConfigError(f"workspaces setting {name!r}: {key!r} is not a valid label key")
        if not (isinstance(value, str) and is_label_value(value)):
            raise ConfigError(
                f"workspaces setting {name!r}: the value of {key!r} is not a valid label value"
            )
        if key in keys:
            raise ConfigError(f"workspaces setting {name!r}: {key!r} is given twice")
        keys.add(key)


def _check_service_account_annotations(annotations: object) -> None:
    """Annotation keys (qualified names) to text, ``{project}`` the only placeholder; the
    keys sde sets itself are refused."""
    where = "workspaces setting 'service_account_annotations'"
    if not isinstance(annotations, tuple):
        raise ConfigError(f"{where} must be pairs of annotation key and text")
    for pair in annotations:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ConfigError(f"{where} must be pairs of annotation key and text")
        key, value = pair
        if not (isinstance(key, str) and is_label_key(key)):
            raise ConfigError(f"{where}: {key!r} is not a valid annotation key")
        if key == LABEL_PROJECT:
            raise ConfigError(f"{where}: {key!r} is set by sde")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: the value of {key!r} must be text")
        _check_pattern(f"{where} {key!r}", value)


def _check_pattern(where: str, pattern: str) -> None:
    rest = pattern.replace(PROJECT_PLACEHOLDER, "")
    if "{" in rest or "}" in rest:
        raise ConfigError(f"{where} may use only the placeholder {{project}}")


# --- Labels and names ----------------------------------------------------------------


def workspace_labels(project_id: str, person_id: str) -> dict[str, str]:
    """The labels of a project's workspace pods. Ids are checked (``InputError``);
    a value that is not a valid label value is replaced by :func:`label_safe`'s stand-in
    (the exact ids are kept in annotations)."""
    check_project_id(project_id)
    check_person_id(person_id)
    return {
        LABEL_NAME: WORKSPACE_APP,
        LABEL_COMPONENT: "workspace",
        LABEL_MANAGED_BY: "sde",
        LABEL_PROJECT: label_safe(project_id),
        LABEL_PERSON: label_safe(person_id),
    }


def project_selector(project_id: str) -> dict[str, str]:
    """The labels that select every workspace pod of one project."""
    check_project_id(project_id)
    return {LABEL_NAME: WORKSPACE_APP, LABEL_PROJECT: label_safe(project_id)}


def check_session_name(value: str) -> str:
    if not isinstance(value, str) or not _SESSION_NAME.match(value):
        raise InputError(
            f"session name {value!r} must be 1 to 32 lower-case letters, digits or dashes, "
            "starting and ending with a letter or digit"
        )
    return value


def workspace_pod_name(project_id: str, person_id: str, session_name: str) -> str:
    """A pod name (a DNS label, at most 63 characters) unique to the project, person and
    session: a readable start and 10 hex digits of the SHA-256 of the three ids."""
    check_project_id(project_id)
    check_person_id(person_id)
    check_session_name(session_name)
    exact = "\0".join((project_id, person_id, session_name)).encode("utf-8")
    digest = hashlib.sha256(exact).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{project_id}-{person_id}-{session_name}")
    readable = re.sub(r"-{2,}", "-", readable)[: 63 - len("ws--") - len(digest)].strip("-")
    return f"ws-{readable}-{digest}"


def network_policy_name(project_id: str) -> str:
    check_project_id(project_id)
    return f"sde-ws-{label_safe(project_id)}"


AZURE_WORKLOAD_IDENTITY = "azure.workload.identity/"
"""The prefix of Azure workload identity's annotations (``client-id`` on the
ServiceAccount) and of the label its pods must carry (``use: "true"``)."""


def service_account_name(project_id: str) -> str:
    """The project's own ServiceAccount, which its workspace pods run as (the same name
    as its NetworkPolicy: objects of different kinds)."""
    return network_policy_name(project_id)


def build_service_account(settings: PodSettings, *, project_id: str) -> dict[str, Any]:
    """The ServiceAccount a project's workspace pods run as: one per project, so that a
    store reached by workload identity (``lake.workspace_credentials: none``) can tell
    projects apart, each bound by ``service_account_annotations`` (``{project}``
    replaced; e.g. ``eks.amazonaws.com/role-arn``, ``iam.gke.io/gcp-service-account``,
    ``azure.workload.identity/client-id``) to an identity that reads only that project's
    extract. No API token is mounted from it (nor by the pods)."""
    annotations = {
        key: value.replace(PROJECT_PLACEHOLDER, project_id)
        for key, value in settings.service_account_annotations
    }
    annotations[LABEL_PROJECT] = project_id
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": service_account_name(project_id),
            "namespace": settings.namespace,
            "labels": {
                LABEL_NAME: WORKSPACE_APP,
                LABEL_COMPONENT: "service-account",
                LABEL_MANAGED_BY: "sde",
                LABEL_PROJECT: label_safe(project_id),
            },
            "annotations": annotations,
        },
        "automountServiceAccountToken": False,
    }


# --- Pod -----------------------------------------------------------------------------


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    """Extra environment for a workspace: names are C identifiers, not reserved, and do
    not look like secrets (a literal in the pod spec is readable by anyone who can read
    the pod). Values are text; they never appear in errors."""
    if not isinstance(env, Mapping):
        raise InputError("workspace env must be a mapping of names to text")
    out: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InputError(f"workspace env name {name!r} is not a valid variable name")
        if name in RESERVED_ENV:
            raise InputError(f"workspace env name {name!r} is set by sde and cannot be given")
        if looks_like_credential(name):
            raise InputError(
                f"workspace env name {name!r} looks like a secret: secrets never go into a "
                "pod spec as literals"
            )
        if not isinstance(value, str):
            raise InputError(f"workspace env {name!r} must have a text value")
        out[name] = value
    return out


def build_pod(
    settings: PodSettings,
    *,
    project_id: str,
    person_id: str,
    session_name: str,
    env: Mapping[str, str],
    extract: StoreExtract | None = None,
) -> dict[str, Any]:
    """A workspace Pod for one person in one project (a plain dict for the API server).

    Non-root, no privilege escalation, no capabilities, seccomp RuntimeDefault, read-only
    root filesystem, no service-account token, no service links, no host namespaces and
    no hostPath; the project's extract read-only at ~/extract, an emptyDir scratch at
    ~/scratch and one at /tmp, both size-limited; never restarted.

    ``extract``: with the lake on object storage, where the extract is
    (:class:`StoreExtract`): then no extract volume is mounted, ``SDE_EXTRACT`` is its
    URL, the store's plain options are plain variables and its credentials, if any,
    ``secretKeyRef`` s on the project's Secret. ``None`` (a local lake): the extract
    volume from ``settings.extract``."""
    extra_env = check_env(env)
    if extract is not None and not isinstance(extract, StoreExtract):
        raise InputError("a workspace's extract on object storage must be a StoreExtract")
    labels = workspace_labels(project_id, person_id)
    check_session_name(session_name)
    labels[LABEL_SESSION] = session_name
    if any(
        key.startswith(AZURE_WORKLOAD_IDENTITY) for key, _ in settings.service_account_annotations
    ):
        # Azure's webhook gives its token only to pods that carry this label.
        labels[AZURE_WORKLOAD_IDENTITY + "use"] = "true"
    fixed_env = dict(RESERVED_ENV, SDE_PROJECT=project_id, SDE_USER=person_id)
    store_env: dict[str, str] = {}
    credentials: list[dict[str, Any]] = []
    if extract is not None:
        clash = sorted(extract.env_names() & extra_env.keys())
        if clash:
            raise InputError(
                f"workspace env name(s) {', '.join(clash)} are set by sde (the lake's store)"
            )
        store_env = extract.plain_env()
        fixed_env["SDE_EXTRACT"] = store_env.pop("SDE_EXTRACT")
        credentials = extract.credential_env()
    environment: list[dict[str, Any]] = [
        {"name": name, "value": value} for name, value in fixed_env.items()
    ]
    environment += [{"name": name, "value": store_env[name]} for name in sorted(store_env)]
    environment += credentials
    environment += [{"name": name, "value": extra_env[name]} for name in sorted(extra_env)]
    mounts = [
        {"name": "extract", "mountPath": EXTRACT_PATH, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_PATH},
        {"name": "tmp", "mountPath": TMP_PATH},
    ]
    volumes = [
        settings.extract.to_volume(project_id),
        {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": settings.tmp_limit}},
    ]
    if extract is not None:  # read from the store: no extract volume at all
        mounts, volumes = mounts[1:], volumes[1:]
    seccomp = {"type": "RuntimeDefault"}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "workingDir": HOME_DIR,
        "ports": [
            {"name": "notebook-port", "containerPort": settings.notebook_port, "protocol": "TCP"}
        ],
        "env": environment,
        "resources": {
            "requests": {
                "cpu": settings.cpu_request,
                "memory": settings.memory_request,
                "ephemeral-storage": settings.scratch_and_tmp_bytes(),
            },
            "limits": {
                "cpu": settings.cpu_limit,
                "memory": settings.memory_limit,
                "ephemeral-storage": settings.scratch_and_tmp_bytes(),
            },
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": dict(seccomp),
        },
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account_name(project_id),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "fsGroup": settings.gid,
            "seccompProfile": dict(seccomp),
        },
        "containers": [container],
        "volumes": volumes,
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [toleration.to_manifest() for toleration in settings.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": workspace_pod_name(project_id, person_id, session_name),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {
                LABEL_PROJECT: project_id,
                LABEL_PERSON: person_id,
                LABEL_SESSION: session_name,
            },
        },
        "spec": spec,
    }


# --- NetworkPolicy -------------------------------------------------------------------


def _peer(labels: Labels, namespace: str | None) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(labels)}}
    if namespace is not None:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return peer


def build_default_deny(settings: PodSettings) -> dict[str, Any]:
    """The namespace-wide default: no traffic in or out of any pod in the workspaces'
    namespace unless a policy allows it. NetworkPolicies add up, so without this a pod that
    no project policy selects (a mislabelled pod, say) would be open."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "sde-default-deny",
            "namespace": settings.namespace,
            "labels": {
                LABEL_NAME: WORKSPACE_APP,
                LABEL_COMPONENT: "network-policy",
                LABEL_MANAGED_BY: "sde",
            },
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def build_network_policy(settings: PodSettings, *, project_id: str) -> dict[str, Any]:
    """The NetworkPolicy for one project's workspace pods: in, only from the proxy and the
    hub to the notebook port; out, only to the hub API, the sde service and cluster DNS,
    and, when ``object_store_egress`` is set (the lake is on object storage), to those
    address blocks on their ports. No other traffic, so no route to the internet or to
    other projects' pods."""
    services = settings.services_namespace
    tcp = "TCP"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(project_id),
            "namespace": settings.namespace,
            "labels": {
                LABEL_NAME: WORKSPACE_APP,
                LABEL_COMPONENT: "network-policy",
                LABEL_MANAGED_BY: "sde",
                LABEL_PROJECT: label_safe(project_id),
            },
            "annotations": {LABEL_PROJECT: project_id},
        },
        "spec": {
            "podSelector": {"matchLabels": project_selector(project_id)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        _peer(settings.proxy_selector, services),
                        _peer(settings.hub_selector, services),
                    ],
                    "ports": [{"protocol": tcp, "port": settings.notebook_port}],
                }
            ],
            "egress": [
                {
                    "to": [_peer(settings.hub_selector, services)],
                    "ports": [{"protocol": tcp, "port": settings.hub_port}],
                },
                {
                    "to": [_peer(settings.sde_service_selector, services)],
                    "ports": [{"protocol": tcp, "port": settings.sde_service_port}],
                },
                {
                    "to": [_peer(settings.dns_selector, settings.dns_namespace)],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": tcp, "port": 53}],
                },
                *(block.to_rule() for block in settings.object_store_egress),
            ],
        },
    }


# --- Pod Security Standards: restricted ----------------------------------------------

RESTRICTED_RULES: dict[str, str] = {
    "pod-shape": "the manifest has a spec with a non-empty containers list to check",
    "host-namespaces": "hostNetwork, hostPID and hostIPC are unset or false",
    "privileged": "no container is privileged",
    "capabilities": "every container drops ALL capabilities and adds none but NET_BIND_SERVICE",
    "host-path": "no hostPath volume",
    "host-ports": "no container port sets a hostPort",
    "apparmor": "no AppArmor profile is Unconfined",
    "selinux": "SELinux options set no user or role, and only a container type",
    "proc-mount": "procMount is unset or Default",
    "sysctls": "only the safe sysctls are set",
    "windows-host-process": "no Windows HostProcess container",
    "volume-types": "volumes are only configMap, csi, downwardAPI, emptyDir, ephemeral, "
    "persistentVolumeClaim, projected or secret",
    "privilege-escalation": "every container sets allowPrivilegeEscalation: false",
    "run-as-non-root": "runAsNonRoot: true for the pod or every container, false nowhere",
    "run-as-user": "runAsUser is never 0",
    "seccomp": "seccompProfile RuntimeDefault or Localhost for the pod or every container, "
    "Unconfined nowhere",
}

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
ALLOWED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(kind) or []
        if not isinstance(items, list):
            items = []
        for index, item in enumerate(items):
            container = _mapping(item)
            out.append((str(container.get("name") or f"{kind}[{index}]"), container))
    return out


def check_pod_restricted(pod: Mapping[str, Any]) -> list[str]:
    """The Pod Security Standards "restricted" profile (which includes "baseline") as pure
    rules over a Pod manifest. Returns one message per violation, each starting with the
    rule's id from :data:`RESTRICTED_RULES`; an empty list means compliant.

    Fails closed: a pod without a containers list is a violation, and no exemption is
    made for Windows pods."""
    violations: list[str] = []

    def fail(rule: str, detail: str) -> None:
        violations.append(f"{rule}: {detail}")

    metadata = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    pod_sc = _mapping(spec.get("securityContext"))
    containers = _containers(spec)
    if not isinstance(spec.get("containers"), list) or not spec.get("containers"):
        fail("pod-shape", "the pod has no containers list to check")

    for name in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(name) not in (None, False):
            fail("host-namespaces", f"{name} is set")

    volumes = spec.get("volumes") or []
    for index, item in enumerate(volumes if isinstance(volumes, list) else []):
        volume = _mapping(item)
        label = str(volume.get("name") or f"volumes[{index}]")
        sources = [key for key in volume if key != "name"]
        if "hostPath" in sources:
            fail("host-path", f"volume {label!r} is a hostPath")
        bad = [source for source in sources if source not in RESTRICTED_VOLUME_TYPES]
        if bad or len(sources) != 1:
            fail(
                "volume-types",
                f"volume {label!r} is of type {', '.join(sorted(sources)) or 'none'}",
            )

    sysctls = pod_sc.get("sysctls") or []
    for item in sysctls if isinstance(sysctls, list) else []:
        name = str(_mapping(item).get("name"))
        if name not in SAFE_SYSCTLS:
            fail("sysctls", f"sysctl {name!r} is not in the safe set")

    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = _mapping(pod_sc.get("seccompProfile")).get("type")
    if pod_non_root is False:
        fail("run-as-non-root", "the pod sets runAsNonRoot: false")
    if pod_sc.get("runAsUser") == 0:
        fail("run-as-user", "the pod sets runAsUser: 0")
    if pod_seccomp is not None and pod_seccomp not in ALLOWED_SECCOMP:
        fail("seccomp", f"the pod's seccompProfile is {pod_seccomp}")
    _check_common_context("the pod", pod_sc, fail)

    annotations = _mapping(metadata.get("annotations"))
    for key, value in annotations.items():
        if str(key).startswith(_APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            fail("apparmor", f"annotation {key!r} asks for {value!r}")

    for name, container in containers:
        where = f"container {name!r}"
        sc = _mapping(container.get("securityContext"))
        if sc.get("privileged") not in (None, False):
            fail("privileged", f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail("privilege-escalation", f"{where} does not set allowPrivilegeEscalation: false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False:
            fail("run-as-non-root", f"{where} sets runAsNonRoot: false")
        elif non_root is not True and pod_non_root is not True:
            fail("run-as-non-root", f"{where} does not run with runAsNonRoot: true")
        if sc.get("runAsUser") == 0:
            fail("run-as-user", f"{where} sets runAsUser: 0")
        seccomp = _mapping(sc.get("seccompProfile")).get("type")
        if seccomp is not None and seccomp not in ALLOWED_SECCOMP:
            fail("seccomp", f"{where} has seccompProfile {seccomp}")
        elif seccomp is None and pod_seccomp not in ALLOWED_SECCOMP:
            fail("seccomp", f"{where} has no seccompProfile RuntimeDefault or Localhost")
        capabilities = _mapping(sc.get("capabilities"))
        drop = capabilities.get("drop") or []
        if not isinstance(drop, list) or "ALL" not in drop:
            fail("capabilities", f"{where} does not drop ALL capabilities")
        add = capabilities.get("add") or []
        extra = [str(cap) for cap in (add if isinstance(add, list) else [add])]
        extra = [cap for cap in extra if cap != "NET_BIND_SERVICE"]
        if extra:
            fail("capabilities", f"{where} adds {', '.join(sorted(extra))}")
        if sc.get("procMount") not in (None, "Default"):
            fail("proc-mount", f"{where} sets procMount {sc.get('procMount')}")
        ports = container.get("ports") or []
        for port in ports if isinstance(ports, list) else []:
            if _mapping(port).get("hostPort") not in (None, 0):
                fail("host-ports", f"{where} sets a hostPort")
        _check_common_context(where, sc, fail)
    return violations


def _check_common_context(
    where: str, sc: Mapping[str, Any], fail: Callable[[str, str], None]
) -> None:
    """Rules that apply alike to the pod's and each container's securityContext."""
    apparmor = _mapping(sc.get("appArmorProfile")).get("type")
    if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
        fail("apparmor", f"{where} has appArmorProfile {apparmor}")
    selinux = _mapping(sc.get("seLinuxOptions"))
    if selinux.get("user") or selinux.get("role"):
        fail("selinux", f"{where} sets an SELinux user or role")
    if str(selinux.get("type") or "") not in SELINUX_TYPES:
        fail("selinux", f"{where} sets SELinux type {selinux.get('type')}")
    if _mapping(sc.get("windowsOptions")).get("hostProcess") not in (None, False):
        fail("windows-host-process", f"{where} is a Windows HostProcess")
