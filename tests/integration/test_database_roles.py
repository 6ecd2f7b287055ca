"""Two roles on PostgreSQL: the owner migrates (``sde db upgrade --grant-to ROLE``), and
sde runs as a role that owns nothing. That role can do all sde does (the control-plane,
governance, CLI and decision-audit tests run as it too: ``RUNTIME_BACKENDS``) and cannot
edit, empty or unprotect the audit log, nor change the schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sde.adapters.sql import grant_runtime_role, open_control_plane
from sde.cli import main
from sde.errors import ConfigError
from tests import postgres

pytestmark = [pytest.mark.sql, pytest.mark.postgres]


@pytest.fixture
def runtime_url(postgres_admin_url: str) -> Iterator[str]:
    with postgres.runtime_role_database(postgres_admin_url, grant_runtime_role) as url:
        yield url


def owner_url(runtime_url: str) -> str:
    parsed = sa.engine.make_url(runtime_url)
    owner = str(parsed.username).replace("sde_app_", "sde_owner_")
    return parsed.set(username=owner).render_as_string(hide_password=False)


def grants(url: str, role: str) -> set[tuple[str, str]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = :role"
                ),
                {"role": role},
            )
            return {(r.table_name, r.privilege_type) for r in rows}
    finally:
        engine.dispose()


def as_runtime(runtime_url: str, statement: str) -> str:
    """Run ``statement`` as the runtime role; the database's refusal, or "" if it ran."""
    engine = sa.create_engine(runtime_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        return str(exc.orig)
    finally:
        engine.dispose()
    return ""


def test_the_runtime_role_appends_to_the_audit_log_and_nothing_more(runtime_url: str) -> None:
    with open_control_plane(runtime_url) as plane:
        for n in range(3):
            plane.audit.record("ops", "home.created", f"home:{n}", {"n": n})
        assert plane.audit.verify().intact
    refusals = {
        "UPDATE audit_events SET actor = 'someone-else'": "append-only",
        "DELETE FROM audit_events": "permission denied",  # not granted at all
        "TRUNCATE audit_events": "permission denied",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL": "must be owner",
        "DROP TRIGGER audit_events_no_change ON audit_events": "must be owner",
        "DROP TABLE people": "must be owner",
        "CREATE TABLE elsewhere (i int)": "permission denied for schema",
        "UPDATE alembic_version SET version_num = 'x'": "permission denied",
        "TRUNCATE people": "permission denied",
    }
    for statement, said in refusals.items():
        assert said in as_runtime(runtime_url, statement), statement
    with open_control_plane(runtime_url) as plane:
        events = plane.audit.events()
        assert [e.subject for e in events] == ["home:0", "home:1", "home:2"]
        assert plane.audit.verify().intact
    # The control: the same statement runs as the owner (the triggers still refuse it).
    assert "append-only" in as_runtime(owner_url(runtime_url), "DELETE FROM audit_events")
    assert as_runtime(owner_url(runtime_url), "CREATE TABLE elsewhere (i int)") == ""


def test_granting_again_gives_the_same_privileges(runtime_url: str) -> None:
    role = str(sa.engine.make_url(runtime_url).username)
    before = grants(runtime_url, role)
    assert ("audit_events", "INSERT") in before
    assert ("audit_events", "DELETE") not in before
    assert ("people", "DELETE") in before
    assert ("alembic_version", "SELECT") in before
    assert ("alembic_version", "INSERT") not in before
    assert not {p for _, p in before} & {"TRUNCATE", "TRIGGER", "REFERENCES"}
    result = CliRunner().invoke(
        main,
        ["db", "upgrade", "--database-url-env", "OWNER_URL", "--grant-to", role],
        env={"OWNER_URL": owner_url(runtime_url)},
    )
    assert result.exit_code == 0, result.output
    assert f"{role} may run sde there" in result.output
    assert grants(runtime_url, role) == before


def test_what_cannot_be_a_runtime_role_is_refused(
    runtime_url: str, postgres_admin_url: str
) -> None:
    owner = owner_url(runtime_url)
    superuser = str(sa.engine.make_url(postgres_admin_url).username)
    owner_role = str(sa.engine.make_url(owner).username)
    for role, said in (
        ("no_such_role", "there is no role no_such_role"),
        (superuser, "is a superuser"),
        (owner_role, "is the role migrating the database"),
        ("Robert'); DROP", "plain PostgreSQL role name"),
    ):
        with pytest.raises(ConfigError, match=said):
            grant_runtime_role(owner, role)
    with pytest.raises(ConfigError, match="SQLite has no roles"):
        grant_runtime_role("sqlite://", "sde_app")


def test_the_runtime_role_cannot_grant_to_itself(runtime_url: str) -> None:
    """Run by mistake with the runtime role's URL, `sde db upgrade --grant-to` finds the
    schema current (nothing to migrate) and refuses to grant a role to itself."""
    role = str(sa.engine.make_url(runtime_url).username)
    result = CliRunner().invoke(
        main,
        ["db", "upgrade", "--database-url-env", "APP_URL", "--grant-to", role],
        env={"APP_URL": runtime_url},
    )
    assert result.exit_code == 2
    assert "is the role migrating the database" in result.output
