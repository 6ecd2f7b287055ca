"""Composition: open the adapters a home is configured for. Entry points (the CLI, the
workspace, the demo) call these; services receive what they return."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sde.adapters.rego_embedded import (
    RegoEmbeddedEngine,
    default_policy_dir,
    policy_bundle_hash,
)
from sde.adapters.sql import ControlPlane, open_control_plane
from sde.domain.policy import PolicyEngine
from sde.errors import ConfigError
from sde.services.decisions import SYSTEM_ACTOR, AuditedPolicyEngine
from sde.services.home import Home
from sde.services.ports import AuditSink
from sde.services.release import ReleaseService


def control_plane(home: Home) -> ControlPlane:
    return open_control_plane(home.database_url)


def record_home_created(home: Home, actor: str) -> None:
    """The audit log's first event: who created the home, with which kind of lake and
    control database (never the key, the database's address or the lake's)."""
    database = home.database_url.split(":", 1)[0].split("+", 1)[0]
    with control_plane(home) as plane:
        plane.audit.record(
            actor,
            "home.created",
            "home:" + home.root.name,
            {"lake": home.lake_settings.store or "local", "database": database},
        )


def policy_engine(
    home: Home,
    policy_dir: Path | None = None,
    *,
    audit: AuditSink | None = None,
    actor: str = SYSTEM_ACTOR,
) -> PolicyEngine:
    """The policy engine the home's settings name, over ``policy_dir`` (default: the
    repository's ``policies/``). With ``audit``, every decision is recorded there
    (:class:`~sde.services.decisions.AuditedPolicyEngine`, for ``actor``).

    ``policy_engine: regopy`` (the default) evaluates in-process. ``policy_engine: opa``
    asks the OPA server at ``opa_url`` (``http://127.0.0.1:8181``), whose bundle revision
    must be the hash of ``policy_dir``'s policies; ``opa_timeout_s`` (default 2) and
    ``opa_retries`` (default 2) tune it.
    """
    name = home.settings.policy_engine
    folder = policy_dir or default_policy_dir()
    engine: PolicyEngine
    if name == "regopy":
        engine = RegoEmbeddedEngine(folder)
    elif name == "opa":
        engine = _opa_engine(home.settings.extra, folder)
    else:
        raise ConfigError(f"policy engine {name!r} is not available; use 'regopy' or 'opa'")
    if audit is None:
        return engine
    return AuditedPolicyEngine(engine, audit, actor)


def _opa_engine(extra: Mapping[str, Any], folder: Path) -> PolicyEngine:
    # Imported here: the HTTP client loads only when the OPA server is the engine.
    from sde.adapters.opa_server import OpaServerEngine

    url = extra.get("opa_url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "policy_engine 'opa' needs the server's address as opa_url in config.yaml "
            "(e.g. http://127.0.0.1:8181)"
        )
    timeout_s = extra.get("opa_timeout_s", 2.0)
    retries = extra.get("opa_retries", 2)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise ConfigError("config setting 'opa_timeout_s' must be a number of seconds")
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ConfigError("config setting 'opa_retries' must be a whole number")
    return OpaServerEngine(
        url,
        expected_bundle_hash=policy_bundle_hash(folder),
        timeout_s=timeout_s,
        retries=retries,
    )


def release_service(
    home: Home, store: ControlPlane, engine: PolicyEngine, *, scan: bool = True
) -> ReleaseService:
    """The airlock with this environment's risk appetite (``sdc:``), file rules
    (``airlock:``) and egress budget (``egress_budget:``) from config.yaml, and the
    Presidio identifier scan of text-like files (``scan=False`` leaves it out, for the
    checker's read-only views)."""
    from sde.domain.sdc.appetite import RiskAppetite
    from sde.domain.sdc.files import FileRules
    from sde.services.release import EgressLimits

    settings = home.settings
    scanner = None
    if scan:
        from sde.services.output_scan import presidio_scanner

        scanner = presidio_scanner()
    return ReleaseService(
        store,
        engine,
        egress_dir=home.egress,
        min_cell_count=settings.min_cell_count,
        approvals_required=settings.approvals_required,
        appetite=RiskAppetite.from_settings(settings.min_cell_count, settings.extra),
        file_rules=FileRules.from_mapping(settings.extra.get("airlock")),
        budget=EgressLimits.from_mapping(settings.extra.get("egress_budget")),
        scan_text=scanner,
    )
