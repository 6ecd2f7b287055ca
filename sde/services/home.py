"""The state directory ("home") of one sde installation.

Layout (created by ``sde init``)::

    <home>/
      config.yaml          settings (risk appetite, approvals) -- no secrets
      keys/master.key      32 random bytes, mode 0600; outside the lake, never logged
      control.db           SQLite control plane (projects, people, releases, audit)
      sources/             provider files as delivered (identifiable; operators only)
      lake/linked/         Delta tables keyed by pid (operators only)
      lake/projects/<id>/  per-project extracts keyed by project pseudonym
      lake/quarantine/     rejected rows with reasons (identifiable; operators only)
      lake/egress/         released outputs, with checks and checksums
      lake/manifests/      ingest manifests (Delta)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


@dataclass(frozen=True)
class Home:
    root: Path
    settings: Settings
    key_override: bytes | None = None

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def linked(self) -> Path:
        return self.lake / "linked"

    @property
    def projects(self) -> Path:
        return self.lake / "projects"

    @property
    def quarantine(self) -> Path:
        return self.lake / "quarantine"

    @property
    def egress(self) -> Path:
        return self.lake / "egress"

    @property
    def manifests(self) -> Path:
        return self.lake / "manifests"

    @property
    def key_path(self) -> Path:
        return self.root / KEY_FILE

    @property
    def database_url(self) -> str:
        url = self.settings.extra.get("database_url")
        return str(url) if url else f"sqlite:///{self.root / 'control.db'}"

    def project_dir(self, project_id: str) -> Path:
        return self.projects / project_id

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
    for folder in (
        root,
        home.sources,
        home.linked,
        home.projects,
        home.quarantine,
        home.egress,
        home.manifests,
    ):
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


def open_home(root: Path, key_override: bytes | None = None) -> Home:
    root = root.resolve()
    if not (root / MARKER).exists():
        raise ConfigError(f"{root} is not an sde home; run `sde init --home {root}` first")
    try:
        data = yaml.safe_load((root / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {root / CONFIG_FILE}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{root / CONFIG_FILE} must be a mapping of settings")
    return Home(root, Settings.from_mapping(data), key_override)
