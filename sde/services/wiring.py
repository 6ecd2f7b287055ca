"""Composition: open the adapters a home is configured for. Entry points (the CLI, the
workspace, the demo) call these; services receive what they return."""

from __future__ import annotations

from pathlib import Path

from sde.adapters.rego_embedded import RegoEmbeddedEngine, default_policy_dir
from sde.adapters.sql import ControlPlane, open_control_plane
from sde.domain.policy import PolicyEngine
from sde.errors import ConfigError
from sde.services.home import Home
from sde.services.release import ReleaseService


def control_plane(home: Home) -> ControlPlane:
    return open_control_plane(home.database_url)


def policy_engine(home: Home, policy_dir: Path | None = None) -> PolicyEngine:
    name = home.settings.policy_engine
    if name != "regopy":
        raise ConfigError(f"policy engine {name!r} is not available; use 'regopy'")
    return RegoEmbeddedEngine(policy_dir or default_policy_dir())


def release_service(home: Home, store: ControlPlane, engine: PolicyEngine) -> ReleaseService:
    return ReleaseService(
        store,
        engine,
        egress_dir=home.egress,
        min_cell_count=home.settings.min_cell_count,
        approvals_required=home.settings.approvals_required,
    )
