"""The state directory ("home") of one sde installation.

Layout (created by ``sde init``)::

    <home>/
      config.yaml          settings (risk appetite, approvals) -- no secrets
      keys/master.key      32 random bytes, mode 0600; outside the lake, never logged
      control.db           SQLite control plane (projects, people, releases, audit)
      sources/             provider files as delivered (identifiable; operators only)
      lake/linked/         Delta tables keyed by pid (operators only)
      lake/projects/<id>/  per project: extract/ (tables keyed by project pseudonym),
                           outputs/ and scratch/ (working folders)
      lake/quarantine/     rejected rows with reasons (identifiable; operators only)
      lake/egress/         released outputs, with checks and checksums
      lake/manifests/      ingest manifests (Delta)

The lake's table zones (``linked``, ``quarantine``, ``manifests`` and each project's
extract) are :data:`~sde.adapters.delta.Location` s: folders under ``<home>/lake`` by
default, or prefixes of an object store when ``config.yaml`` has a ``lake:`` section
(:class:`LakeSettings`; docs/lake.md). The working folders (``sources``, ``egress``, each
project's outputs and scratch, keys, control.db) are always local paths. The store's
credentials never come from the file: the entry point (``sde`` CLI, the hub, a
workspace) passes the ``SDE_LAKE_*`` variables of its environment
(:func:`lake_environment`) to :func:`open_home`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from sde.adapters.delta import REMOTE_SCHEMES, Location, RemoteTable
from sde.domain.credentials import looks_like_credential
from sde.domain.projects import check_project_id
from sde.domain.pseudonyms import MASTER_KEY_BYTES
from sde.errors import ConfigError

CONFIG_FILE = "config.yaml"
KEY_FILE = "keys/master.key"
MARKER = ".sde-home"


@dataclass(frozen=True)
class Settings:
    """Settings from ``config.yaml``; the defaults are the embedded ones."""

    min_cell_count: int = 10
    approvals_required: int = 2
    policy_engine: str = "regopy"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Settings:
        known = {"min_cell_count", "approvals_required", "policy_engine"}
        kwargs: dict[str, Any] = {k: data[k] for k in known if k in data}
        for name in ("min_cell_count", "approvals_required"):
            value = kwargs.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"config setting {name!r} must be a positive whole number")
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    def to_mapping(self) -> dict[str, Any]:
        return {
            "min_cell_count": self.min_cell_count,
            "approvals_required": self.approvals_required,
            "policy_engine": self.policy_engine,
            **self.extra,
        }


LAKE_ENV_PREFIX: Final = "SDE_LAKE_"
"""``SDE_LAKE_<OPTION>`` in the environment sets the store's option ``<OPTION>`` (e.g.
``SDE_LAKE_AWS_SECRET_ACCESS_KEY``): the only way to give a credential."""

_S3: Final = "s3"
_AZURE: Final = "azure"
_GCS: Final = "gcs"
_SCHEME_STORE: Final = {
    "s3": _S3,
    "s3a": _S3,
    "az": _AZURE,
    "abfs": _AZURE,
    "abfss": _AZURE,
    "gs": _GCS,
}
assert {f"{s}://" for s in _SCHEME_STORE} == set(REMOTE_SCHEMES)

PLAIN_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    _S3: frozenset(
        {
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ALLOW_HTTP",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
            "AWS_CONDITIONAL_PUT",
            "AWS_S3_ALLOW_UNSAFE_RENAME",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        }
    ),
    _AZURE: frozenset(
        {
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_USE_EMULATOR",
            "AZURE_ENDPOINT",
            "AZURE_ALLOW_HTTP",
            "AZURE_USE_FABRIC_ENDPOINT",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
        }
    ),
    _GCS: frozenset(
        {
            "GOOGLE_BUCKET_NAME",
            "GOOGLE_BASE_URL",
            "GOOGLE_ALLOW_HTTP",
            "GOOGLE_SKIP_SIGNATURE",
        }
    ),
}
"""Options ``config.yaml`` may hold: addresses and switches, never a credential. For GCS,
``GOOGLE_BASE_URL`` is an emulator or a private endpoint (``https://``; plain ``http://``
only with ``GOOGLE_ALLOW_HTTP`` and ``GOOGLE_SKIP_SIGNATURE``, an emulator that takes no
credentials); :func:`sde.adapters.delta.gcs_storage_options` checks them together."""

GCS_EMULATOR_VARIABLES: Final = (
    "CLOUD_STORAGE_EMULATOR_ENDPOINT",
    "CLOUD_STORAGE_TESTBENCH_ENDPOINT",
)
"""Variables with which Google's C++ storage client (pyarrow's ``GcsFileSystem``) sends
every request, and the platform's access tokens, to another address than the one it is
given: refused in the environment of a process that opens a lake on ``gs://``."""

CREDENTIAL_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    _S3: frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}),
    _AZURE: frozenset(
        {
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_TOKEN",
            "AZURE_CLIENT_SECRET",
        }
    ),
    _GCS: frozenset({"GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY"}),
}
"""Options that only the environment (``SDE_LAKE_<OPTION>``) may give."""


WORKSPACE_CREDENTIALS: Final = ("none", "per_project_secret", "inherit")
"""How a workspace session gets credentials for its project's extract on object storage:
``none`` (the default: the session gets the extract's address and the plain options, and
its credentials from the platform, e.g. workload identity bound to the project),
``per_project_secret`` (a Kubernetes Secret per project, named by ``project_credentials``,
holding read-only credentials for that project's prefix) or ``inherit`` (the service's
own credentials: a development setting for the local spawner, never for production)."""


@dataclass(frozen=True)
class LakeSettings:
    """The ``lake:`` section of ``config.yaml``: where the table zones live.

    Without it (``url`` None) the lake is the folder ``<home>/lake``. With it::

        lake:
          url: s3://sde-lake/prod            # s3://, az://, abfss://, gs://
          options:                           # plain options only (no credentials)
            AWS_ENDPOINT_URL: https://objects.example.org
            AWS_REGION: eu-west-2
          workspace_credentials: per_project_secret
          project_credentials: sde-lake-{project}

    Credentials come from ``SDE_LAKE_<OPTION>`` variables of the process that opens the
    home, never from the file: a credential (or anything that looks like one) in the
    file is refused, naming the option, never its value."""

    url: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    workspace_credentials: str = "none"
    project_credentials: str | None = None

    @property
    def store(self) -> str | None:
        """``s3``, ``azure``, ``gcs``, or None for a lake on local disk."""
        if self.url is None:
            return None
        return _SCHEME_STORE[self.url.split("://", 1)[0]]

    @classmethod
    def from_mapping(cls, data: object) -> LakeSettings:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("config setting 'lake' must be a mapping (url, options, ...)")
        known = {"url", "options", "workspace_credentials", "project_credentials"}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            secret = [k for k in unknown if looks_like_credential(k.upper())]
            if secret:
                raise ConfigError(
                    f"config.yaml 'lake' holds a credential ({', '.join(secret)}): "
                    f"credentials come from the environment ({LAKE_ENV_PREFIX}<OPTION>), "
                    "never from the file"
                )
            raise ConfigError(f"unknown setting(s) in config.yaml 'lake': {', '.join(unknown)}")
        url = check_lake_url(data.get("url"))
        store = _SCHEME_STORE[url.split("://", 1)[0]]
        raw_options = data.get("options") or {}
        if not isinstance(raw_options, Mapping):
            raise ConfigError("config setting 'lake.options' must map option names to text")
        options: dict[str, str] = {}
        for key, value in raw_options.items():
            name = str(key).upper()
            if name not in PLAIN_OPTIONS[store]:
                if name in CREDENTIAL_OPTIONS[store] or looks_like_credential(name):
                    raise ConfigError(
                        f"config.yaml 'lake.options' holds a credential ({key}): credentials "
                        f"come from the environment ({LAKE_ENV_PREFIX}{name}), never from "
                        "the file"
                    )
                raise ConfigError(
                    f"'lake.options' has {key}, which is not a {store} option sde knows "
                    f"(allowed: {', '.join(sorted(PLAIN_OPTIONS[store]))})"
                )
            if isinstance(value, bool):
                value = "true" if value else "false"
            if (
                not isinstance(value, str | int)
                or str(value) != str(value).strip()
                or not str(value)
            ):
                raise ConfigError(f"'lake.options' {key} must be plain text")
            options[name] = str(value)
        mode = data.get("workspace_credentials", "none")
        if mode not in WORKSPACE_CREDENTIALS:
            raise ConfigError(
                f"'lake.workspace_credentials' must be one of {', '.join(WORKSPACE_CREDENTIALS)}"
            )
        secret_name = data.get("project_credentials")
        if mode == "per_project_secret":
            if not isinstance(secret_name, str) or "{project}" not in secret_name:
                raise ConfigError(
                    "'lake.project_credentials' must name each project's Secret and contain "
                    "{project} (e.g. sde-lake-{project}) when workspace_credentials is "
                    "per_project_secret"
                )
            sample = secret_name.replace("{project}", "p")
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?", sample):
                raise ConfigError(
                    "'lake.project_credentials' must give a valid Secret name "
                    "(lower-case letters, digits and '-')"
                )
        elif secret_name is not None:
            raise ConfigError(
                "'lake.project_credentials' is only used with workspace_credentials: "
                "per_project_secret"
            )
        return cls(url, options, mode, secret_name)

    def to_mapping(self) -> dict[str, Any]:
        if self.url is None:
            return {}
        out: dict[str, Any] = {"url": self.url, "options": dict(self.options)}
        out["workspace_credentials"] = self.workspace_credentials
        if self.project_credentials is not None:
            out["project_credentials"] = self.project_credentials
        return out

    def storage_options(self, environment: Mapping[str, str]) -> dict[str, str]:
        """The file's plain options with the environment's (``SDE_LAKE_<OPTION>``) on top.
        Refuses a variable that names no option of this store (a typo would otherwise
        leave a credential unused and the store's default chain in charge)."""
        redirect = sorted(n for n in GCS_EMULATOR_VARIABLES if environment.get(n))
        environment = {k: v for k, v in environment.items() if k not in GCS_EMULATOR_VARIABLES}
        if self.store is None:
            if environment:
                raise ConfigError(
                    f"{', '.join(sorted(environment))} set, but config.yaml has no "
                    "'lake: url': the lake is the local folder <home>/lake"
                )
            return {}
        if redirect and self.store == _GCS:
            raise ConfigError(
                f"{', '.join(redirect)} is set: Google's storage client would send the lake's "
                "requests (and access tokens) there instead of lake.url's store; unset it "
                "(an emulator is named by lake.options GOOGLE_BASE_URL)"
            )
        allowed = PLAIN_OPTIONS[self.store] | CREDENTIAL_OPTIONS[self.store]
        options = dict(self.options)
        for variable, value in sorted(environment.items()):
            name = variable.removeprefix(LAKE_ENV_PREFIX)
            if not variable.startswith(LAKE_ENV_PREFIX) or name not in allowed:
                raise ConfigError(
                    f"{variable} is not a {self.store} option sde knows "
                    f"(allowed: {', '.join(LAKE_ENV_PREFIX + n for n in sorted(allowed))})"
                )
            options[name] = value
        return options


def check_lake_url(value: object) -> str:
    """An object-store URL (``s3://bucket/prefix`` and the like) without credentials,
    query or fragment. Messages never repeat the value (it might hold a credential)."""
    if not isinstance(value, str) or not value:
        raise ConfigError("config setting 'lake.url' must be an object-store URL")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in _SCHEME_STORE:
        raise ConfigError(
            "config setting 'lake.url' must start with one of "
            f"{', '.join(REMOTE_SCHEMES)} (remove 'lake:' for a lake on local disk)"
        )
    authority = rest.split("/", 1)[0]
    if not authority:
        raise ConfigError("config setting 'lake.url' names no bucket or container")
    if any(c in value for c in "?#\\ ") or "://" in rest:
        raise ConfigError("config setting 'lake.url' must be a plain URL (no query or fragment)")
    user, at, _ = authority.rpartition("@")
    if at and (":" in user or _SCHEME_STORE[scheme] != _AZURE):
        raise ConfigError(
            "config setting 'lake.url' holds user information; credentials come from the "
            f"environment ({LAKE_ENV_PREFIX}<OPTION>), never from the file"
        )
    if any(part in (".", "..") for part in rest.split("/")):
        raise ConfigError("config setting 'lake.url' must not contain . or .. segments")
    return value.rstrip("/")


def lake_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``SDE_LAKE_*`` variables of an environment (for :func:`open_home`), and the
    :data:`GCS_EMULATOR_VARIABLES` if set (so a ``gs://`` lake can refuse them); entry
    points call this with ``os.environ``."""
    return {
        k: v
        for k, v in environ.items()
        if (k.startswith(LAKE_ENV_PREFIX) or k in GCS_EMULATOR_VARIABLES) and v
    }


@dataclass(frozen=True)
class Home:
    """One installation's state. ``lake_environment`` holds the ``SDE_LAKE_*`` variables
    the entry point read (credentials among them); it is never shown."""

    root: Path
    settings: Settings
    key_override: bytes | None = field(default=None, repr=False)
    lake_environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    lake_settings: LakeSettings = field(init=False, repr=False, compare=False)
    _storage_options: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lake = LakeSettings.from_mapping(self.settings.extra.get("lake"))
        object.__setattr__(self, "lake_settings", lake)
        object.__setattr__(
            self, "_storage_options", lake.storage_options(dict(self.lake_environment))
        )

    # --- the lake's table zones: local folders or object-storage prefixes ---------------

    @property
    def lake_is_remote(self) -> bool:
        return self.lake_settings.url is not None

    @property
    def lake(self) -> Location:
        """The lake's root: ``<home>/lake``, or the ``lake.url`` prefix on object storage."""
        if self.lake_settings.url is not None:
            return RemoteTable(self.lake_settings.url, dict(self._storage_options))
        return self.root / "lake"

    @property
    def linked(self) -> Location:
        return self.lake / "linked"

    @property
    def quarantine(self) -> Location:
        return self.lake / "quarantine"

    @property
    def manifests(self) -> Location:
        return self.lake / "manifests"

    def project_extract(self, project_id: str) -> Location:
        """Where a project's extract tables and manifest are (in the lake)."""
        return self.lake / "projects" / check_project_id(project_id) / "extract"

    # --- working folders: always on local disk (a volume in a cluster) ------------------

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def local_lake(self) -> Path:
        """``<home>/lake``: the table zones when the lake is local, and the working
        folders (egress, projects' outputs and scratch) in any case."""
        return self.root / "lake"

    @property
    def egress(self) -> Path:
        """Released outputs (local, whatever the lake)."""
        return self.local_lake / "egress"

    @property
    def projects(self) -> Path:
        """The projects' local working folders (:meth:`project_workspace`)."""
        return self.local_lake / "projects"

    def project_workspace(self, project_id: str) -> Path:
        """A project's local working folder (its outputs and scratch areas); with a local
        lake its extract is in here too (``extract/``), with a remote lake it is not."""
        return self.projects / check_project_id(project_id)

    def project_outputs(self, project_id: str) -> Path:
        return self.project_workspace(project_id) / "outputs"

    def project_scratch(self, project_id: str) -> Path:
        return self.project_workspace(project_id) / "scratch"

    @property
    def key_path(self) -> Path:
        return self.root / KEY_FILE

    @property
    def database_url(self) -> str:
        url = self.settings.extra.get("database_url")
        return str(url) if url else f"sqlite:///{self.root / 'control.db'}"

    def master_key(self) -> bytes:
        """The master key: the override given by the caller (from ``SDE_MASTER_KEY``) or
        the key file. Errors never include key material."""
        if self.key_override is not None:
            key = self.key_override
        else:
            try:
                key = self.key_path.read_bytes()
            except FileNotFoundError:
                raise ConfigError(f"no master key at {self.key_path}; run `sde init`") from None
            mode = self.key_path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(
                    f"master key file {self.key_path} is readable by others "
                    f"(mode {mode:o}); it must be 0600"
                )
        if len(key) != MASTER_KEY_BYTES:
            raise ConfigError(f"the master key must be exactly {MASTER_KEY_BYTES} bytes")
        return key


def parse_key_override(value: str) -> bytes:
    """``SDE_MASTER_KEY`` holds 64 hex characters."""
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise ConfigError("SDE_MASTER_KEY must be 64 hexadecimal characters") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError("SDE_MASTER_KEY must be 64 hexadecimal characters")
    return key


def init_home(root: Path, settings: Settings | None = None) -> Home:
    """Create a state directory. Refuses to touch an existing key (never overwritten)."""
    root = root.resolve()
    if (root / MARKER).exists():
        raise ConfigError(f"{root} is already an sde home")
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not empty; choose a new directory")
    settings = settings or Settings()
    home = Home(root, settings)
    folders = [root, home.sources, home.projects, home.egress]
    for zone in (home.linked, home.quarantine, home.manifests):
        if isinstance(zone, Path):  # a lake on local disk (init always makes one)
            folders.append(zone)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    (root / "keys").mkdir(mode=0o700)
    fd = os.open(home.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(MASTER_KEY_BYTES))
    (root / CONFIG_FILE).write_text(yaml.safe_dump(settings.to_mapping(), sort_keys=True))
    from sde.adapters.sql import upgrade  # local import: SQL is an adapter

    upgrade(home.database_url)
    (root / MARKER).write_text("sde home v1\n")
    return home


def open_home(
    root: Path,
    key_override: bytes | None = None,
    lake_environment: Mapping[str, str] | None = None,
) -> Home:
    """Open a state directory. ``lake_environment``: the ``SDE_LAKE_*`` variables
    (:func:`lake_environment`) giving the lake's credentials when it is on object
    storage."""
    root = root.resolve()
    if not (root / MARKER).exists():
        raise ConfigError(f"{root} is not an sde home; run `sde init --home {root}` first")
    try:
        data = yaml.safe_load((root / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {root / CONFIG_FILE}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{root / CONFIG_FILE} must be a mapping of settings")
    return Home(root, Settings.from_mapping(data), key_override, dict(lake_environment or {}))
