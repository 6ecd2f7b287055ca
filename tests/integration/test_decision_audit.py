"""Every decision in the audit chain, with the embedded engine and the SQL audit log (on
SQLite and PostgreSQL); the policy bundle hash; the wiring. The same through the OPA
server engine is in ``test_opa_server.py``."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sde.adapters.rego_embedded import (
    RegoEmbeddedEngine,
    bundle_hash_of,
    default_policy_dir,
    policy_bundle_hash,
)
from sde.adapters.sql import SqlAuditLog, audit_events, make_engine, upgrade
from sde.domain.policy import ACCESS, CANARIES, EGRESS, Decision
from sde.errors import ConfigError
from sde.services.decisions import AuditedPolicyEngine, input_digest
from sde.services.home import Home, Settings
from sde.services.wiring import policy_engine
from tests.integration.test_rego_opa import ACCESS_BASE, with_path
from tests.integration.test_sql_backends import RUNTIME_BACKENDS, fresh_database

pytestmark = pytest.mark.policy

POLICIES = default_policy_dir()
# an egress input the policy allows: the canary's, kept in step with the policy
EGRESS_ALLOWED = next(dict(c.input) for c in CANARIES if c.package == EGRESS and c.allow)
MARKER = "r-marker-2087"


@pytest.fixture(scope="module")
def embedded() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(POLICIES)


@pytest.fixture(params=RUNTIME_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database(request, tmp_path) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def stored_text(database: sa.Engine) -> str:
    """Everything in the audit table, as text."""
    with database.connect() as conn:
        rows = conn.execute(sa.select(audit_events)).fetchall()
    return json.dumps([[str(value) for value in row] for row in rows])


# --- the policy bundle hash -----------------------------------------------------------


def test_bundle_hash_of_is_defined_byte_for_byte() -> None:
    expected = hashlib.sha256(b"a.rego\x002\x00p1" + b"b.rego\x000\x00").hexdigest()
    assert bundle_hash_of({"b.rego": b"", "a.rego": b"p1"}) == expected
    # moving text from one file to the next changes the hash
    assert bundle_hash_of({"a.rego": b"p", "b.rego": b"1"}) != expected


def test_the_policy_bundle_hash_covers_the_policy_modules_only(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    original = policy_bundle_hash(folder)
    assert original == policy_bundle_hash(POLICIES)
    modules = {p.name: p.read_bytes() for p in POLICIES.glob("*.rego")}
    assert original == bundle_hash_of(
        {name: body for name, body in modules.items() if not name.endswith("_test.rego")}
    )
    # tests, data and notes are not policy
    (folder / "access_test.rego").write_text("package sde.access_test\n", encoding="utf-8")
    (folder / "README.md").write_text("notes\n", encoding="utf-8")
    assert policy_bundle_hash(folder) == original
    # an edit, a new module and a rename all change it
    access = folder / "access.rego"
    access.write_bytes(access.read_bytes() + b"\n")
    edited = policy_bundle_hash(folder)
    assert edited != original
    (folder / "extra.rego").write_text("package sde.extra\n", encoding="utf-8")
    added = policy_bundle_hash(folder)
    assert added not in (original, edited)
    (folder / "extra.rego").rename(folder / "other.rego")
    assert policy_bundle_hash(folder) not in (original, edited, added)


def test_the_policy_bundle_hash_of_a_missing_folder_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        policy_bundle_hash(tmp_path / "nowhere")


def test_the_embedded_engine_names_the_bundle_it_loaded(
    embedded: RegoEmbeddedEngine, tmp_path: Path
) -> None:
    assert embedded.bundle_hash == policy_bundle_hash(POLICIES)
    assert embedded.kind == "regopy"
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    access = folder / "access.rego"
    access.write_bytes(access.read_bytes() + b"\n# a comment changes the bundle\n")
    assert RegoEmbeddedEngine(folder).bundle_hash == policy_bundle_hash(folder)
    assert policy_bundle_hash(folder) != embedded.bundle_hash


# --- decisions in the SQL audit chain -------------------------------------------------


@pytest.mark.sql
def test_each_decision_appends_one_event_and_the_chain_verifies(
    embedded: RegoEmbeddedEngine, database: sa.Engine
) -> None:
    log = SqlAuditLog(database)
    engine = AuditedPolicyEngine(embedded, log)
    refused = with_path(ACCESS_BASE, "person/banned_until", "2030-01-01")
    decisions = [
        engine.decide(ACCESS, ACCESS_BASE),
        engine.decide(ACCESS, refused),
        engine.decide(EGRESS, EGRESS_ALLOWED),
    ]
    assert decisions == [
        Decision(allow=True),
        Decision(False, ("person r-ada is banned until 2030-01-01",)),
        Decision(allow=True),
    ]
    events = log.events()
    assert [e.seq for e in events] == [1, 2, 3]
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("system", "policy.decision", "policy:sde.access"),
        ("system", "policy.decision", "policy:sde.access"),
        ("system", "policy.decision", "policy:sde.egress"),
    ]
    assert events[1].details == {
        "package": "sde.access",
        "input_sha256": hashlib.sha256(
            json.dumps(refused, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
        "allow": False,
        "reasons": ["person r-ada is banned until 2030-01-01"],
        "engine": "regopy",
        "bundle_hash": policy_bundle_hash(POLICIES),
        "engine_error": False,
    }
    assert events[0].details["allow"] is True
    assert events[0].details["input_sha256"] == input_digest(ACCESS_BASE)
    assert events[2].details["input_sha256"] == input_digest(EGRESS_ALLOWED)
    assert len({e.details["input_sha256"] for e in events}) == 3
    verified = log.verify()
    assert verified.intact
    assert verified.events == 3


@pytest.mark.sql
def test_no_input_value_reaches_the_audit_log(
    embedded: RegoEmbeddedEngine, database: sa.Engine
) -> None:
    engine = AuditedPolicyEngine(embedded, SqlAuditLog(database))
    # allowed: the person's id is in the input only
    marked = with_path(
        with_path(ACCESS_BASE, "person/id", MARKER), "project/members", ["r-bob", MARKER]
    )
    assert engine.decide(ACCESS, marked).allow
    # refused: the marker is another member, which no reason names
    refused = with_path(ACCESS_BASE, "project/members", ["r-ada", MARKER])
    refused = with_path(refused, "project/status", "suspended")
    assert engine.decide(ACCESS, refused).reasons == (
        "project prj-1 has status suspended, not approved",
    )
    text = stored_text(database)
    assert "policy.decision" in text  # the guard below looks at the real rows
    assert MARKER not in text
    assert "2025-12-31" not in text  # nor an input date


@pytest.mark.sql
def test_an_audit_log_that_cannot_be_written_refuses_every_decision(
    embedded: RegoEmbeddedEngine, tmp_path: Path
) -> None:
    """A control database without its schema: the append fails, so the decision that the
    policy would allow is refused."""
    database = make_engine(f"sqlite:///{tmp_path / 'no-schema.db'}")
    try:
        engine = AuditedPolicyEngine(embedded, SqlAuditLog(database))
        assert embedded.decide(ACCESS, ACCESS_BASE).allow
        decision = engine.decide(ACCESS, ACCESS_BASE)
        assert decision == Decision.engine_error(
            "sde.access: the decision could not be recorded in the audit log (OperationalError)"
        )
    finally:
        database.dispose()


# --- wiring ---------------------------------------------------------------------------


@pytest.mark.sql
def test_wiring_records_decisions_when_given_an_audit_log(
    database: sa.Engine, tmp_path: Path
) -> None:
    home = Home(tmp_path, Settings())
    plain = policy_engine(home)
    assert isinstance(plain, RegoEmbeddedEngine)
    log = SqlAuditLog(database)
    audited = policy_engine(home, audit=log, actor="c-1")
    assert isinstance(audited, AuditedPolicyEngine)
    assert audited.kind == "regopy"
    assert audited.bundle_hash == policy_bundle_hash(POLICIES)
    assert audited.decide(EGRESS, EGRESS_ALLOWED).allow
    (event,) = log.events()
    assert event.actor == "c-1"
    assert event.details["engine"] == "regopy"


def test_wiring_refuses_an_unknown_engine(tmp_path: Path) -> None:
    home = Home(tmp_path, Settings(policy_engine="wasm"))
    with pytest.raises(ConfigError, match="use 'regopy' or 'opa'"):
        policy_engine(home)
