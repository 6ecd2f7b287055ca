"""The control database: backends for the SQL tests, and the migrations.

Every SQL test runs on SQLite in ``tmp_path`` and on PostgreSQL (ids ``sqlite`` and
``postgresql``). PostgreSQL is the session's throwaway server (``tests/conftest.py``,
``tests/postgres.py``), or ``SDE_TEST_POSTGRES_URL`` when set, naming a server where the
test user may create databases (e.g. ``postgresql+psycopg://sde@/postgres?host=/tmp/pg``):
each test gets a fresh database, dropped afterwards. Other SQL test modules import
``SQL_BACKENDS`` and ``fresh_database`` (or ``home_on_backend``) from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from sde.adapters.sql import (
    HEAD_REVISION,
    alembic_config,
    grant_runtime_role,
    make_engine,
    metadata,
    open_control_plane,
    people,
    schema_revision,
    upgrade,
)
from sde.errors import ConfigError
from sde.services.home import Home, Settings, init_home
from tests import postgres

pytestmark = pytest.mark.sql

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
RUNTIME_ROLE = "postgresql-runtime-role"
RUNTIME_BACKENDS = [*SQL_BACKENDS, pytest.param(RUNTIME_ROLE, marks=pytest.mark.postgres)]
"""For tests of what sde does at run time: also as a role that owns nothing, with only the
privileges ``sde db upgrade --grant-to`` gives (``grant_runtime_role``)."""
TABLES = {
    "people",
    "projects",
    "project_members",
    "project_datasets",
    "release_requests",
    "release_files",
    "reviews",
    "audit_events",
    "project_comments",
    "project_conflicts",
    "board_votes",
    "organisation_bans",
    "sign_in_attempts",
}


@contextmanager
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on the backend ``request.param`` names."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    if request.param == RUNTIME_ROLE:
        with postgres.runtime_role_database(admin_url, grant_runtime_role) as url:
            yield url
        return
    with postgres.fresh_database(admin_url) as url:
        yield url


@contextmanager
def home_on_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    """A new home whose control database is on the backend ``request.param`` names."""
    with fresh_database(request, tmp_path) as url:
        settings = (
            Settings() if request.param == "sqlite" else Settings(extra={"database_url": url})
        )
        yield init_home(tmp_path / "h", settings)


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_creates_every_table(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert table_names(engine) == TABLES | {"alembic_version"}
        assert schema_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_keeps_data(engine: sa.Engine, database_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(people).values(
                id="alice", display_name="Alice", roles=["researcher"], created_at=datetime.now(UTC)
            )
        )
    upgrade(database_url)
    upgrade(database_url)
    assert table_names(engine) == TABLES | {"alembic_version"}
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 1


def test_head_revision_constant_is_the_script_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD_REVISION]


def test_migrations_match_the_table_definitions(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_downgrade_to_base_and_back(engine: sa.Engine, database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    assert table_names(engine) <= {"alembic_version"}
    assert schema_revision(engine) is None
    upgrade(database_url)
    assert table_names(engine) == TABLES | {"alembic_version"}


def test_open_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ConfigError, match="no control database"):
        open_control_plane(f"sqlite:///{missing}")
    assert not missing.exists()


def test_open_refuses_an_unmigrated_database(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    engine.dispose()
    with pytest.raises(ConfigError, match=f"revision none, this sde needs {HEAD_REVISION}"):
        open_control_plane(database_url)


def test_open_accepts_a_migrated_database(engine: sa.Engine, database_url: str) -> None:
    with open_control_plane(database_url) as plane:
        assert plane.list_projects() == []


def test_only_sqlite_and_postgresql() -> None:
    with pytest.raises(ConfigError, match="SQLite or PostgreSQL, not 'mysql'"):
        make_engine("mysql://u@localhost/db")


def test_audit_table_is_append_only(engine: sa.Engine) -> None:
    with open_control_plane(str(engine.url)) as plane:
        plane.audit.record("system", "test.event", "thing:1", {"n": 1})
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT actor FROM audit_events")) == "system"


def test_foreign_keys_are_enforced(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO project_members (project_id, person_id, role, added_at) "
            "VALUES ('nope', 'nobody', 'researcher', '2025-01-01 00:00:00')"
        )


def test_check_constraints_are_enforced(engine: sa.Engine) -> None:
    with (
        pytest.raises(sa.exc.IntegrityError, match=r"(?i)check constraint"),
        engine.begin() as conn,
    ):
        conn.exec_driver_sql(
            "INSERT INTO projects (id, title, purpose, sponsor, sponsor_type, status, "
            "created_at) VALUES ('p-1', 't', 'marketing', 's', 'nhs', 'draft', "
            "'2025-01-01 00:00:00')"
        )


def test_datetimes_are_utc_and_naive_ones_refused(engine: sa.Engine) -> None:
    plus_five = timezone(timedelta(hours=5))
    moment = datetime(2025, 6, 1, 17, 30, tzinfo=plus_five)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(people).values(
                id="alice",
                display_name="A",
                roles=["researcher"],
                accredited_until=date(2026, 1, 1),
                created_at=moment,
            )
        )
    with engine.connect() as conn:
        row = conn.execute(sa.select(people)).one()
    assert row.created_at == moment
    assert row.created_at.tzinfo is UTC
    assert row.created_at.hour == 12
    assert row.accredited_until == date(2026, 1, 1)
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"), engine.begin() as conn:
        conn.execute(
            sa.insert(people).values(
                id="bob", display_name="B", roles=[], created_at=datetime(2025, 1, 1)
            )
        )


def test_sqlite_writes_begin_immediate_and_reads_do_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade(url)
    statements: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0] + (" IMMEDIATE" if "IMMEDIATE" in statement else ""))

    with open_control_plane(url) as plane:
        sa.event.listen(plane.engine, "before_cursor_execute", capture)
        plane.audit.record("system", "test.event", "thing:1", {})
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[1:] == ["SELECT", "INSERT"]  # the head is read under the lock
        statements.clear()
        plane.list_projects()
        assert statements == ["BEGIN", "SELECT"]


def test_sqlite_foreign_keys_are_on_for_every_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            engine.dispose()
    finally:
        engine.dispose()
