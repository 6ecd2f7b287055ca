"""The SQL control plane (SQLAlchemy 2 Core + Alembic): people, projects, release requests
and the hash-chained audit log.

SQLite file by default; PostgreSQL in a deployment. Nothing here decides anything: the
rules live in ``sde.domain`` and the use cases in ``sde.services``. This module persists.

Two guarantees:

- **A write and its audit event are one transaction.** Every public write method of
  :class:`ControlPlane` takes an :class:`~sde.domain.audit.AuditEntry` and appends it in
  the same transaction as the change: both happen or neither does. A meta-test over the
  class enforces it for every public method, found by introspection.
- **The chain cannot fork.** Appends are serialised: SQLite write transactions start with
  ``BEGIN IMMEDIATE`` (the database's write lock, taken before the chain head is read);
  PostgreSQL write transactions take ``LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE
  MODE`` (one writer at a time, readers unaffected). ``seq`` is the primary key and
  ``prev_hash`` is unique, so even a broken lock could not record two successors of one event.

The ``audit_events`` table is append-only at the database level too (triggers refuse
UPDATE and DELETE), and :meth:`SqlAuditLog.verify` detects what happens behind their back.

Release files are held in the control plane as bytes (``release_files.content``) until
release: the file, its checksum, its reviews and the audit row change together in one
transaction, and nothing in the lake or a workspace can alter a file under review.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import IntegrityError

from sde.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    VerifyResult,
    check_entry,
    next_event,
    verify_chain,
)
from sde.domain.governance import (
    BoardVote,
    BoardVoteDecision,
    ConflictOfInterest,
    OrganisationBan,
    PublicComment,
    organisation_key,
)
from sde.domain.patient_sign_in import FAILURE, SIGN_IN_OUTCOMES, SUCCESS
from sde.domain.projects import (
    ApprovedDataset,
    BoardKind,
    FileVote,
    LegalBasis,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    ReleaseFile,
    ReleaseRequest,
    Review,
    SponsorType,
)
from sde.domain.releases import Status, Vote
from sde.errors import ConfigError, NotFound, StateError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD_REVISION = "0004"
SUPPORTED_BACKENDS = frozenset({"sqlite", "postgresql"})
WRITE_OPTION = "sde_write"
_PG_MIGRATION_LOCK = 0x5DE0_0001

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    Refuses naive datetimes. PostgreSQL stores ``timestamptz``; SQLite has no time zones,
    so the UTC wall time is stored and UTC is attached again on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the control plane stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("organisation", sa.String(200), nullable=True),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("accredited_until", sa.Date, nullable=True),
    sa.Column("banned_until", UtcDateTime, nullable=True),
    sa.Column("ban_reason", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("board_kind", sa.String(16), nullable=True),
    _one_of("board_kind", [k.value for k in BoardKind], "ck_people_board_kind"),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("sponsor", sa.String(200), nullable=False),
    sa.Column("sponsor_type", sa.String(16), nullable=False),
    sa.Column("legal_basis", sa.String(200), nullable=True),
    sa.Column("national_opt_out_applies", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
    sa.Column("start_date", sa.Date, nullable=True),
    sa.Column("end_date", sa.Date, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("approved_at", UtcDateTime, nullable=True),
    sa.Column("approved_by", sa.String(64), sa.ForeignKey("people.id"), nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("legal_basis_type", sa.String(32), nullable=True),
    sa.Column("public_benefit", sa.Text, nullable=True),
    sa.Column("benefit_sharing", sa.Text, nullable=True),
    sa.Column("exclusive_access", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("uses", sa.JSON, nullable=True),
    sa.Column("cohort", sa.Text, nullable=True),
    sa.Column("ai_ml_use", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("ai_ml_description", sa.Text, nullable=True),
    sa.Column("processors", sa.JSON, nullable=True),
    sa.Column("published_at", UtcDateTime, nullable=True),
    sa.Column("comment_period_ends", UtcDateTime, nullable=True),
    sa.Column("decided_at", UtcDateTime, nullable=True),
    sa.Column("decided_by", sa.String(64), sa.ForeignKey("people.id"), nullable=True),
    sa.Column("decision_reasons", sa.JSON, nullable=True),
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("status_changed_at", UtcDateTime, nullable=True),
    _one_of("purpose", [p.value for p in Purpose], "ck_projects_purpose"),
    _one_of("sponsor_type", [s.value for s in SponsorType], "ck_projects_sponsor_type"),
    _one_of("status", [s.value for s in ProjectStatus], "ck_projects_status"),
    _one_of("legal_basis_type", [b.value for b in LegalBasis], "ck_projects_legal_basis_type"),
)

project_members = sa.Table(
    "project_members",
    metadata,
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("person_id", sa.String(64), sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Index("ix_project_members_person_id", "person_id"),
    _one_of("role", [r.value for r in MemberRole], "ck_project_members_role"),
)

project_datasets = sa.Table(
    "project_datasets",
    metadata,
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("dataset", sa.String(63), primary_key=True),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("justification", sa.Text, nullable=True),
    sa.Column("column_justifications", sa.JSON, nullable=True),
)

project_comments = sa.Table(
    "project_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("author", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_project_comments_project_id", "project_id"),
)

project_conflicts = sa.Table(
    "project_conflicts",
    metadata,
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("person_id", sa.String(64), sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("interest", sa.Text, nullable=False),
    sa.Column("declared_at", UtcDateTime, nullable=False),
)

board_votes = sa.Table(
    "board_votes",
    metadata,
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("voter", sa.String(64), sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("cast_at", UtcDateTime, nullable=False),
    _one_of("decision", [d.value for d in BoardVoteDecision], "ck_board_votes_decision"),
)

organisation_bans = sa.Table(
    "organisation_bans",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("organisation", sa.String(200), nullable=False),
    sa.Column("banned_until", UtcDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("banned_at", UtcDateTime, nullable=False),
    sa.Column("banned_by", sa.String(64), nullable=False),
)

release_requests = sa.Table(
    "release_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("author", sa.String(64), sa.ForeignKey("people.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("released_at", UtcDateTime, nullable=True),
    sa.Index("ix_release_requests_project_id", "project_id"),
    _one_of("status", [s.value for s in Status], "ck_release_requests_status"),
)

release_files = sa.Table(
    "release_files",
    metadata,
    sa.Column("request_id", sa.String(32), sa.ForeignKey("release_requests.id"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("exception", sa.Text, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("request_id", sa.String(32), sa.ForeignKey("release_requests.id"), primary_key=True),
    sa.Column("reviewer", sa.String(64), sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("files", sa.JSON, nullable=True),
    _one_of("decision", [v.value for v in Vote], "ck_reviews_decision"),
)

sign_in_attempts = sa.Table(
    "sign_in_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    _one_of("outcome", list(SIGN_IN_OUTCOMES), "ck_sign_in_attempts_outcome"),
    sa.Index("ix_sign_in_attempts_key", "key", "at"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
)


# --- engines and migrations --------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin); the driver's own implicit
    # transactions would start too late to take the write lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    writing = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for the control database at ``url`` (SQLite or PostgreSQL)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(f"the control database must be SQLite or PostgreSQL, not {backend!r}")
    if backend == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


def alembic_config(url: str | None = None) -> Config:
    """Alembic configuration built in code (no alembic.ini). With a URL, Alembic's own
    commands work too, e.g. ``command.revision(alembic_config(url), autogenerate=True)``."""
    from alembic.config import Config  # Alembic loads only when migrating (CLI start-up)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the control database at ``url`` to the newest schema. Idempotent."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite rebuilds a table to change a constraint; with foreign keys enforced,
                # dropping the old copy would count as deleting every referenced row. They
                # are switched off (outside the transaction, where the pragma works) and
                # every reference is checked before the migration commits.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": _PG_MIGRATION_LOCK},
                    )
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ConfigError(
                            f"the migration would leave {len(broken)} broken references; "
                            "nothing was changed"
                        )
    finally:
        engine.dispose()


_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
AUDIT_TABLE_GRANTS = ("SELECT", "INSERT", "UPDATE")
"""What the runtime role may do to ``audit_events``: read and append. ``UPDATE`` only
because PostgreSQL lets a role take the writers' ``SHARE ROW EXCLUSIVE`` lock only with
``UPDATE``, ``DELETE`` or ``TRUNCATE``; the table's triggers refuse every update, and
only the owner could drop or disable them."""
TABLE_GRANTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def grant_runtime_role(url: str, role: str) -> list[str]:
    """Let ``role`` run sde on the PostgreSQL database at ``url`` without owning its
    tables (call as the owner, after :func:`upgrade`). The role gets what sde's services
    need and nothing more: rows of every table, ``audit_events`` read and append only,
    the schema's sequences, ``alembic_version`` read only; no ``TRUNCATE``, no DDL, so it
    cannot drop or disable the audit log's triggers. Earlier grants on the schema's
    tables are revoked first, so running it again gives the same privileges.

    Returns the statements run (names only, no secret)."""
    if not _ROLE_NAME.match(role):
        raise ConfigError(
            "the runtime role must be a plain PostgreSQL role name (lower-case letters, "
            "digits and _, at most 63)"
        )
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            raise ConfigError("a runtime role is for PostgreSQL: SQLite has no roles")
        with engine.connect() as conn, conn.begin():
            found = conn.execute(
                sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
            ).first()
            if found is None:
                raise ConfigError(
                    f"there is no role {role} on the database server; create it first "
                    f"(CREATE ROLE {role} LOGIN PASSWORD '...')"
                )
            if found.rolsuper:
                raise ConfigError(f"the runtime role {role} is a superuser: it must not be")
            if conn.scalar(sa.text("SELECT current_user")) == role:
                raise ConfigError(
                    f"the runtime role {role} is the role migrating the database: run sde "
                    "as another role, which owns nothing"
                )
            schema = str(conn.scalar(sa.text("SELECT current_schema()")))
            owned = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = :schema "
                    "AND tableowner = :role"
                ),
                {"schema": schema, "role": role},
            )
            if owned:
                raise ConfigError(f"the runtime role {role} owns tables here: it must not")
            quote = conn.dialect.identifier_preparer.quote
            who, where = quote(role), quote(schema)
            statements = [
                f"REVOKE ALL ON ALL TABLES IN SCHEMA {where} FROM {who}",
                f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {where} FROM {who}",
                f"GRANT USAGE ON SCHEMA {where} TO {who}",
                f"GRANT SELECT ON {where}.alembic_version TO {who}",
            ]
            for table in metadata.sorted_tables:
                grants = AUDIT_TABLE_GRANTS if table is audit_events else TABLE_GRANTS
                statements.append(
                    f"GRANT {', '.join(grants)} ON {where}.{quote(table.name)} TO {who}"
                )
            statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}")
            for statement in statements:
                conn.exec_driver_sql(statement)
            return statements
    finally:
        engine.dispose()


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None: no schema yet)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        revision = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        return str(revision) if revision is not None else None


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def open_control_plane(url: str, clock: Clock = utc_now) -> ControlPlane:
    """Open an existing control database, refusing one whose schema is missing or out of
    date (fail closed: never write through an unknown schema)."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise ConfigError(f"no control database at {path}; run `sde init`")
    engine = make_engine(url)
    try:
        revision = schema_revision(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise ConfigError(f"cannot open the control database ({type(exc.orig).__name__})") from None
    if revision != HEAD_REVISION:
        engine.dispose()
        raise ConfigError(
            f"the control database schema is at revision {revision or 'none'}, this sde "
            f"needs {HEAD_REVISION}; upgrade it with sde.adapters.sql.upgrade"
        )
    return ControlPlane(engine, clock)


# --- transactions and the audit append -------------------------------------------------------


def _lock_for_write(conn: Connection) -> None:
    """Serialise writers. SQLite already holds its write lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            _lock_for_write(conn)
            yield conn


def _append_event(conn: Connection, entry: AuditEntry, at: datetime) -> AuditEvent:
    """Append ``entry`` after the current head of the chain. Call inside a write
    transaction only (the lock is what keeps the head from moving under us)."""
    head = conn.execute(
        sa.select(audit_events.c.seq, audit_events.c.hash)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (head.seq + 1, head.hash) if head is not None else (1, GENESIS_HASH)
    event = next_event(entry, seq=seq, prev_hash=prev_hash, at=at)
    conn.execute(
        sa.insert(audit_events).values(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=event.details,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )
    )
    return event


_UNREADABLE_DETAILS: dict[str, Any] = {"<unreadable details>": True}


def _event_from_row(row: sa.Row[Any]) -> AuditEvent:
    # ``details`` is read as text and parsed here, so a tampered, unparseable value
    # shows up as a broken link instead of an exception.
    try:
        details = json.loads(row.details_text)
    except (TypeError, ValueError):
        details = _UNREADABLE_DETAILS
    if not isinstance(details, dict):
        details = _UNREADABLE_DETAILS
    return AuditEvent(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _event_select() -> sa.Select[Any]:
    c = audit_events.c
    return sa.select(
        c.seq,
        c.at,
        c.actor,
        c.action,
        c.subject,
        sa.cast(c.details, sa.Text).label("details_text"),
        c.prev_hash,
        c.hash,
    )


class SqlAuditLog:
    """The audit log in the control database. Implements ``sde.services.ports.AuditSink``.

    ``record`` appends an event on its own (for actions with no control-plane change, such
    as an ingest or an extract); changes to the control plane append theirs through
    :class:`ControlPlane`, in the change's own transaction.
    """

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def record(self, actor: str, action: str, subject: str, details: Mapping[str, object]) -> None:
        self.append(AuditEntry(actor, action, subject, dict(details)))

    def append(self, entry: AuditEntry) -> AuditEvent:
        check_entry(entry)
        with _write_transaction(self._engine) as conn:
            return _append_event(conn, entry, self._clock())

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(audit_events)) or 0)

    def events(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEvent]:
        """Events with ``seq > after_seq``, oldest first."""
        stmt = (
            _event_select()
            .where(audit_events.c.seq > after_seq)
            .order_by(audit_events.c.seq)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_event_from_row(r) for r in conn.execute(stmt)]

    def event(self, seq: int) -> AuditEvent | None:
        """The event stored at ``seq``, or None when there is none (for checking a
        published checkpoint)."""
        stmt = _event_select().where(audit_events.c.seq == seq)
        with self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _event_from_row(row) if row is not None else None

    def tail(self, limit: int) -> list[AuditEvent]:
        """The newest ``limit`` events, oldest first."""
        stmt = _event_select().order_by(audit_events.c.seq.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = [_event_from_row(r) for r in conn.execute(stmt)]
        return rows[::-1]

    def verify(self) -> VerifyResult:
        """Check the whole chain in one read transaction, streaming the events."""
        stmt = _event_select().order_by(audit_events.c.seq)
        with self._engine.connect() as conn, conn.begin():
            result = conn.execution_options(yield_per=1000).execute(stmt)
            try:
                return verify_chain(_event_from_row(r) for r in result)
            finally:
                result.close()  # verify stops at the first break: release the cursor


# --- row conversions ---------------------------------------------------------------------------


def _person(row: sa.Row[Any]) -> Person:
    return Person(
        id=row.id,
        display_name=row.display_name,
        organisation=row.organisation,
        roles=tuple(PersonRole(r) for r in row.roles),
        accredited_until=row.accredited_until,
        created_at=row.created_at,
        banned_until=row.banned_until,
        ban_reason=row.ban_reason,
        board_kind=BoardKind(row.board_kind) if row.board_kind else None,
    )


def _person_values(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "display_name": person.display_name,
        "organisation": person.organisation,
        "roles": [r.value for r in person.roles],
        "accredited_until": person.accredited_until,
        "banned_until": person.banned_until,
        "ban_reason": person.ban_reason,
        "created_at": person.created_at,
        "board_kind": person.board_kind.value if person.board_kind else None,
    }


def _project(row: sa.Row[Any]) -> Project:
    return Project(
        id=row.id,
        title=row.title,
        purpose=Purpose(row.purpose),
        sponsor=row.sponsor,
        sponsor_type=SponsorType(row.sponsor_type),
        legal_basis=row.legal_basis,
        national_opt_out_applies=bool(row.national_opt_out_applies),
        status=ProjectStatus(row.status),
        start_date=row.start_date,
        end_date=row.end_date,
        created_at=row.created_at,
        approved_at=row.approved_at,
        approved_by=row.approved_by,
        summary=row.summary,
        legal_basis_type=LegalBasis(row.legal_basis_type) if row.legal_basis_type else None,
        public_benefit=row.public_benefit,
        benefit_sharing=row.benefit_sharing,
        exclusive_access=bool(row.exclusive_access),
        uses=tuple(row.uses or ()),
        cohort=row.cohort,
        ai_ml_use=bool(row.ai_ml_use),
        ai_ml_description=row.ai_ml_description,
        processors=tuple(row.processors or ()),
        published_at=row.published_at,
        comment_period_ends=row.comment_period_ends,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_reasons=tuple(row.decision_reasons or ()),
        status_reason=row.status_reason,
        status_changed_at=row.status_changed_at,
    )


def _project_values(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "title": project.title,
        "purpose": project.purpose.value,
        "sponsor": project.sponsor,
        "sponsor_type": project.sponsor_type.value,
        "legal_basis": project.legal_basis,
        "national_opt_out_applies": project.national_opt_out_applies,
        "status": project.status.value,
        "start_date": project.start_date,
        "end_date": project.end_date,
        "created_at": project.created_at,
        "approved_at": project.approved_at,
        "approved_by": project.approved_by,
        "summary": project.summary,
        "legal_basis_type": project.legal_basis_type.value if project.legal_basis_type else None,
        "public_benefit": project.public_benefit,
        "benefit_sharing": project.benefit_sharing,
        "exclusive_access": project.exclusive_access,
        "uses": list(project.uses),
        "cohort": project.cohort,
        "ai_ml_use": project.ai_ml_use,
        "ai_ml_description": project.ai_ml_description,
        "processors": list(project.processors),
        "published_at": project.published_at,
        "comment_period_ends": project.comment_period_ends,
        "decided_at": project.decided_at,
        "decided_by": project.decided_by,
        "decision_reasons": list(project.decision_reasons),
        "status_reason": project.status_reason,
        "status_changed_at": project.status_changed_at,
    }


def _member(row: sa.Row[Any]) -> Member:
    return Member(row.project_id, row.person_id, MemberRole(row.role), row.added_at)


def _dataset(row: sa.Row[Any]) -> ApprovedDataset:
    return ApprovedDataset(
        row.project_id,
        row.dataset,
        tuple(row.columns),
        row.justification,
        dict(row.column_justifications or {}),
    )


def _comment(row: sa.Row[Any]) -> PublicComment:
    return PublicComment(row.project_id, row.id, row.author, row.text, row.created_at)


def _conflict(row: sa.Row[Any]) -> ConflictOfInterest:
    return ConflictOfInterest(row.project_id, row.person_id, row.interest, row.declared_at)


def _vote(row: sa.Row[Any]) -> BoardVote:
    return BoardVote(
        row.project_id, row.voter, BoardVoteDecision(row.decision), row.reason, row.cast_at
    )


def _organisation_ban(row: sa.Row[Any]) -> OrganisationBan:
    return OrganisationBan(
        row.key, row.organisation, row.banned_until, row.reason, row.banned_at, row.banned_by
    )


def _release_request(row: sa.Row[Any]) -> ReleaseRequest:
    return ReleaseRequest(
        id=row.id,
        project_id=row.project_id,
        author=row.author,
        status=Status(row.status),
        title=row.title,
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
        released_at=row.released_at,
    )


def _release_file(row: sa.Row[Any]) -> ReleaseFile:
    return ReleaseFile(
        request_id=row.request_id,
        name=row.name,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        kind=row.kind,
        checks=list(row.checks),
        metadata=dict(row.metadata),
        exception=row.exception,
        description=row.description,
    )


def _review(row: sa.Row[Any]) -> Review:
    files = {
        str(name): FileVote(Vote(vote["decision"]), vote.get("comment"))
        for name, vote in (row.files or {}).items()
    }
    return Review(
        row.request_id, row.reviewer, Vote(row.decision), row.comment, row.created_at, files
    )


_FILE_COLUMNS = [c for c in release_files.c if c.name != "content"]


class ControlPlane:
    """People, projects, release requests: reads, and writes that each carry their audit
    event into the same transaction.

    Every public method that changes anything takes ``audit`` (keyword-only) and appends
    exactly that event, atomically with the change; methods without ``audit`` change
    nothing. Integrity conflicts (a duplicate id, a second vote, an unknown person) raise
    :class:`~sde.errors.StateError` and leave no trace, audit row included.
    """

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock
        self.audit = SqlAuditLog(engine, clock)

    @property
    def engine(self) -> Engine:
        return self._engine

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # --- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _writing(self, audit: AuditEntry, conflict: str) -> Iterator[Connection]:
        check_entry(audit)
        with _write_transaction(self._engine) as conn:
            try:
                yield conn
            except IntegrityError:
                raise StateError(conflict) from None
            _append_event(conn, audit, self._clock())

    def _read(self, stmt: sa.Executable) -> list[sa.Row[Any]]:
        with self._engine.connect() as conn:
            return list(conn.execute(stmt))

    @staticmethod
    def _must_change(result: sa.CursorResult[Any], what: str) -> None:
        if result.rowcount != 1:
            raise NotFound(f"no {what}")

    # --- people -----------------------------------------------------------------------------

    def get_person(self, person_id: str) -> Person:
        rows = self._read(sa.select(people).where(people.c.id == person_id))
        if not rows:
            raise NotFound(f"no person {person_id!r}")
        return _person(rows[0])

    def list_people(self) -> list[Person]:
        return [_person(r) for r in self._read(sa.select(people).order_by(people.c.id))]

    def add_person(self, person: Person, *, audit: AuditEntry) -> None:
        with self._writing(audit, f"person {person.id!r} already exists") as conn:
            conn.execute(sa.insert(people).values(**_person_values(person)))

    def update_person(self, person: Person, *, audit: AuditEntry) -> None:
        """Replace everything recorded about a person except ``id`` and ``created_at``."""
        values = _person_values(person)
        del values["id"], values["created_at"]
        with self._writing(audit, f"person {person.id!r} cannot be updated") as conn:
            result = conn.execute(sa.update(people).where(people.c.id == person.id).values(values))
            self._must_change(result, f"person {person.id!r}")

    # --- projects ---------------------------------------------------------------------------

    def get_project(self, project_id: str) -> Project:
        rows = self._read(sa.select(projects).where(projects.c.id == project_id))
        if not rows:
            raise NotFound(f"no project {project_id!r}")
        return _project(rows[0])

    def list_projects(self) -> list[Project]:
        return [_project(r) for r in self._read(sa.select(projects).order_by(projects.c.id))]

    def create_project(
        self, project: Project, datasets: Sequence[ApprovedDataset] = (), *, audit: AuditEntry
    ) -> None:
        """A project and its approved datasets, in one transaction."""
        if any(d.project_id != project.id for d in datasets):
            raise ValueError("every approved dataset must belong to the project being created")
        with self._writing(audit, f"project {project.id!r} already exists") as conn:
            conn.execute(sa.insert(projects).values(**_project_values(project)))
            for dataset in datasets:
                conn.execute(sa.insert(project_datasets).values(**_dataset_values(dataset)))

    def set_project_status(
        self,
        project_id: str,
        status: ProjectStatus,
        *,
        audit: AuditEntry,
        reason: str | None = None,
        expected: ProjectStatus | None = None,
    ) -> None:
        """Persist a new status (the domain decides whether the move is allowed), with
        why. With ``expected``, only a project still in that status changes: a
        concurrent change makes this a :class:`~sde.errors.StateError`."""
        values: dict[str, Any] = {"status": status.value, "status_changed_at": self._clock()}
        if reason is not None:
            values["status_reason"] = reason
        with self._writing(audit, f"project {project_id!r} cannot change status") as conn:
            self._change_project(conn, project_id, values, expected)

    def _change_project(
        self,
        conn: Connection,
        project_id: str,
        values: Mapping[str, Any],
        expected: ProjectStatus | None,
    ) -> None:
        stmt = sa.update(projects).where(projects.c.id == project_id)
        if expected is not None:
            stmt = stmt.where(projects.c.status == expected.value)
        result = conn.execute(stmt.values(dict(values)))
        if result.rowcount == 1:
            return
        if expected is not None and conn.scalar(
            sa.select(projects.c.status).where(projects.c.id == project_id)
        ):
            raise StateError(f"project {project_id!r} is no longer {expected.value}")
        raise NotFound(f"no project {project_id!r}")

    def update_application(
        self, project: Project, datasets: Sequence[ApprovedDataset], *, audit: AuditEntry
    ) -> None:
        """Replace a draft application's fields and requested datasets."""
        if any(d.project_id != project.id for d in datasets):
            raise ValueError("every requested dataset must belong to the project")
        values = _project_values(project)
        for fixed in ("id", "status", "created_at", "approved_at", "approved_by"):
            del values[fixed]
        with self._writing(audit, f"project {project.id!r} cannot be updated") as conn:
            self._change_project(conn, project.id, values, ProjectStatus.DRAFT)
            conn.execute(
                sa.delete(project_datasets).where(project_datasets.c.project_id == project.id)
            )
            for dataset in datasets:
                conn.execute(sa.insert(project_datasets).values(**_dataset_values(dataset)))

    def publish_project(
        self,
        project_id: str,
        *,
        published_at: datetime,
        comment_period_ends: datetime,
        audit: AuditEntry,
    ) -> None:
        """A draft becomes ``published``, open for public comment until the given end."""
        values = {
            "status": ProjectStatus.PUBLISHED.value,
            "published_at": published_at,
            "comment_period_ends": comment_period_ends,
            "status_changed_at": published_at,
        }
        with self._writing(audit, f"project {project_id!r} cannot be published") as conn:
            self._change_project(conn, project_id, values, ProjectStatus.DRAFT)

    def record_project_decision(
        self,
        project_id: str,
        status: ProjectStatus,
        *,
        decided_by: str,
        decided_at: datetime,
        reasons: Sequence[str] = (),
        audit: AuditEntry,
    ) -> None:
        """The board's decision on a published application: ``approved`` (who recorded it
        is also ``approved_by``) or ``rejected`` with its reasons."""
        if status not in (ProjectStatus.APPROVED, ProjectStatus.REJECTED):
            raise ValueError("a board decision approves or rejects")
        values: dict[str, Any] = {
            "status": status.value,
            "decided_by": decided_by,
            "decided_at": decided_at,
            "decision_reasons": list(reasons),
            "status_changed_at": decided_at,
        }
        if status is ProjectStatus.APPROVED:
            values.update(approved_by=decided_by, approved_at=decided_at)
        with self._writing(audit, f"{decided_by!r} is not a known person") as conn:
            self._change_project(conn, project_id, values, ProjectStatus.PUBLISHED)

    # --- public comment and the board ---------------------------------------------------------

    def list_public_comments(self, project_id: str) -> list[PublicComment]:
        stmt = (
            sa.select(project_comments)
            .where(project_comments.c.project_id == project_id)
            .order_by(project_comments.c.id)
        )
        return [_comment(r) for r in self._read(stmt)]

    def add_public_comment(self, comment: PublicComment, *, audit: AuditEntry) -> int:
        """Keep a public comment with its application; returns the comment's number."""
        with self._writing(audit, f"project {comment.project_id!r} does not exist") as conn:
            result = conn.execute(
                sa.insert(project_comments).values(
                    project_id=comment.project_id,
                    author=comment.author,
                    text=comment.text,
                    created_at=comment.created_at,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def list_conflicts(self, project_id: str) -> list[ConflictOfInterest]:
        stmt = (
            sa.select(project_conflicts)
            .where(project_conflicts.c.project_id == project_id)
            .order_by(project_conflicts.c.person_id)
        )
        return [_conflict(r) for r in self._read(stmt)]

    def declare_conflict(self, conflict: ConflictOfInterest, *, audit: AuditEntry) -> None:
        """One declaration per member per application (a second is refused)."""
        problem = (
            f"{conflict.person_id!r} has already declared a conflict on project "
            f"{conflict.project_id!r}, or one of them does not exist"
        )
        with self._writing(audit, problem) as conn:
            conn.execute(
                sa.insert(project_conflicts).values(
                    project_id=conflict.project_id,
                    person_id=conflict.person_id,
                    interest=conflict.interest,
                    declared_at=conflict.declared_at,
                )
            )

    def list_board_votes(self, project_id: str) -> list[BoardVote]:
        stmt = (
            sa.select(board_votes)
            .where(board_votes.c.project_id == project_id)
            .order_by(board_votes.c.cast_at, board_votes.c.voter)
        )
        return [_vote(r) for r in self._read(stmt)]

    def cast_board_vote(self, vote: BoardVote, *, audit: AuditEntry) -> None:
        """One vote per member per application: a second vote is refused."""
        problem = (
            f"{vote.voter!r} has already voted on project {vote.project_id!r}, "
            "or one of them does not exist"
        )
        with self._writing(audit, problem) as conn:
            conn.execute(
                sa.insert(board_votes).values(
                    project_id=vote.project_id,
                    voter=vote.voter,
                    decision=vote.decision.value,
                    reason=vote.reason,
                    cast_at=vote.cast_at,
                )
            )

    # --- organisation bans ------------------------------------------------------------------

    def list_organisation_bans(self) -> list[OrganisationBan]:
        stmt = sa.select(organisation_bans).order_by(organisation_bans.c.key)
        return [_organisation_ban(r) for r in self._read(stmt)]

    def get_organisation_ban(self, organisation: str | None) -> OrganisationBan | None:
        """The ban on ``organisation`` (compared as ``organisation_key``), if any, whether
        or not it has ended."""
        if organisation is None or not organisation.strip():
            return None
        key = organisation_key(organisation)
        rows = self._read(sa.select(organisation_bans).where(organisation_bans.c.key == key))
        return _organisation_ban(rows[0]) if rows else None

    def ban_organisation(self, ban: OrganisationBan, *, audit: AuditEntry) -> None:
        """Ban an organisation, replacing an earlier ban of it."""
        with self._writing(audit, f"organisation {ban.organisation!r} cannot be banned") as conn:
            conn.execute(sa.delete(organisation_bans).where(organisation_bans.c.key == ban.key))
            conn.execute(
                sa.insert(organisation_bans).values(
                    key=ban.key,
                    organisation=ban.organisation,
                    banned_until=ban.banned_until,
                    reason=ban.reason,
                    banned_at=ban.banned_at,
                    banned_by=ban.banned_by,
                )
            )

    def lift_organisation_ban(self, key: str, *, audit: AuditEntry) -> None:
        with self._writing(audit, f"the ban on {key!r} cannot be lifted") as conn:
            result = conn.execute(
                sa.delete(organisation_bans).where(organisation_bans.c.key == key)
            )
            self._must_change(result, f"ban on organisation {key!r}")

    def record_project_approval(
        self, project_id: str, *, approved_by: str, approved_at: datetime, audit: AuditEntry
    ) -> None:
        """Status ``approved``, with who approved it and when."""
        with self._writing(audit, f"{approved_by!r} is not a known person") as conn:
            result = conn.execute(
                sa.update(projects)
                .where(projects.c.id == project_id)
                .values(
                    status=ProjectStatus.APPROVED.value,
                    approved_by=approved_by,
                    approved_at=approved_at,
                )
            )
            self._must_change(result, f"project {project_id!r}")

    def list_members(self, project_id: str) -> list[Member]:
        stmt = (
            sa.select(project_members)
            .where(project_members.c.project_id == project_id)
            .order_by(project_members.c.person_id)
        )
        return [_member(r) for r in self._read(stmt)]

    def list_memberships(self, person_id: str) -> list[Member]:
        stmt = (
            sa.select(project_members)
            .where(project_members.c.person_id == person_id)
            .order_by(project_members.c.project_id)
        )
        return [_member(r) for r in self._read(stmt)]

    def add_member(self, member: Member, *, audit: AuditEntry) -> None:
        conflict = (
            f"{member.person_id!r} is already a member of project {member.project_id!r}, "
            "or one of them does not exist"
        )
        with self._writing(audit, conflict) as conn:
            conn.execute(
                sa.insert(project_members).values(
                    project_id=member.project_id,
                    person_id=member.person_id,
                    role=member.role.value,
                    added_at=member.added_at,
                )
            )

    def remove_member(self, project_id: str, person_id: str, *, audit: AuditEntry) -> None:
        with self._writing(audit, f"{person_id!r} cannot be removed") as conn:
            result = conn.execute(
                sa.delete(project_members).where(
                    project_members.c.project_id == project_id,
                    project_members.c.person_id == person_id,
                )
            )
            self._must_change(result, f"member {person_id!r} of project {project_id!r}")

    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]:
        stmt = (
            sa.select(project_datasets)
            .where(project_datasets.c.project_id == project_id)
            .order_by(project_datasets.c.dataset)
        )
        return [_dataset(r) for r in self._read(stmt)]

    def set_project_dataset(self, dataset: ApprovedDataset, *, audit: AuditEntry) -> None:
        """Approve a dataset and its columns for a project, replacing an earlier approval."""
        key = (
            project_datasets.c.project_id == dataset.project_id,
            project_datasets.c.dataset == dataset.dataset,
        )
        with self._writing(audit, f"project {dataset.project_id!r} does not exist") as conn:
            conn.execute(sa.delete(project_datasets).where(*key))
            conn.execute(sa.insert(project_datasets).values(**_dataset_values(dataset)))

    def remove_project_dataset(self, project_id: str, dataset: str, *, audit: AuditEntry) -> None:
        with self._writing(audit, f"dataset {dataset!r} cannot be removed") as conn:
            result = conn.execute(
                sa.delete(project_datasets).where(
                    project_datasets.c.project_id == project_id,
                    project_datasets.c.dataset == dataset,
                )
            )
            self._must_change(result, f"dataset {dataset!r} approved for project {project_id!r}")

    # --- patients' sign-in attempts ---------------------------------------------------------

    def record_sign_in_attempt(
        self, keys: Sequence[str], outcome: str, at: datetime, *, audit: AuditEntry
    ) -> None:
        """One attempt, counted against each of ``keys`` (keyed subjects), with its audit
        event in the same transaction."""
        if outcome not in SIGN_IN_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(SIGN_IN_OUTCOMES)}")
        with self._writing(audit, "sign-in attempt not recorded") as conn:
            for key in keys:
                conn.execute(sa.insert(sign_in_attempts).values(key=key, at=at, outcome=outcome))

    def sign_in_failures(self, key: str, since: datetime) -> list[datetime]:
        """The failures of ``key`` at or after ``since`` and after its last success."""
        last_success = (
            sa.select(sa.func.max(sign_in_attempts.c.at))
            .where(sign_in_attempts.c.key == key, sign_in_attempts.c.outcome == SUCCESS)
            .scalar_subquery()
        )
        rows = self._read(
            sa.select(sign_in_attempts.c.at)
            .where(
                sign_in_attempts.c.key == key,
                sign_in_attempts.c.outcome == FAILURE,
                sign_in_attempts.c.at >= since,
                sa.or_(last_success.is_(None), sign_in_attempts.c.at > last_success),
            )
            .order_by(sign_in_attempts.c.at, sign_in_attempts.c.id)
        )
        return [r.at for r in rows]

    # --- release requests --------------------------------------------------------------------

    def get_release_request(self, request_id: str) -> ReleaseRequest:
        rows = self._read(sa.select(release_requests).where(release_requests.c.id == request_id))
        if not rows:
            raise NotFound(f"no release request {request_id!r}")
        return _release_request(rows[0])

    def list_release_requests(
        self, project_id: str | None = None, status: Status | None = None
    ) -> list[ReleaseRequest]:
        stmt = sa.select(release_requests).order_by(
            release_requests.c.created_at, release_requests.c.id
        )
        if project_id is not None:
            stmt = stmt.where(release_requests.c.project_id == project_id)
        if status is not None:
            stmt = stmt.where(release_requests.c.status == status.value)
        return [_release_request(r) for r in self._read(stmt)]

    def create_release_request(self, request: ReleaseRequest, *, audit: AuditEntry) -> None:
        conflict = (
            f"release request {request.id!r} already exists, or its project or author "
            "does not exist"
        )
        with self._writing(audit, conflict) as conn:
            conn.execute(
                sa.insert(release_requests).values(
                    id=request.id,
                    project_id=request.project_id,
                    author=request.author,
                    status=request.status.value,
                    title=request.title,
                    comment=request.comment,
                    created_at=request.created_at,
                    updated_at=request.updated_at,
                    released_at=request.released_at,
                )
            )

    def set_release_status(
        self,
        request_id: str,
        status: Status,
        *,
        audit: AuditEntry,
        released_at: datetime | None = None,
        comment: str | None = None,
    ) -> None:
        """Persist a new status (the domain decides whether the move is allowed), and with
        ``comment`` the author's new comment for the checkers (e.g. on resubmission)."""
        values: dict[str, Any] = {"status": status.value, "updated_at": self._clock()}
        if released_at is not None:
            values["released_at"] = released_at
        if comment is not None:
            values["comment"] = comment
        with self._writing(audit, f"release request {request_id!r} cannot change") as conn:
            result = conn.execute(
                sa.update(release_requests)
                .where(release_requests.c.id == request_id)
                .values(values)
            )
            self._must_change(result, f"release request {request_id!r}")

    def list_release_files(self, request_id: str) -> list[ReleaseFile]:
        stmt = (
            sa.select(*_FILE_COLUMNS)
            .where(release_files.c.request_id == request_id)
            .order_by(release_files.c.name)
        )
        return [_release_file(r) for r in self._read(stmt)]

    def get_release_file_content(self, request_id: str, name: str) -> bytes:
        """The file's bytes, checked against the SHA-256 recorded with it."""
        stmt = sa.select(release_files.c.content, release_files.c.sha256).where(
            release_files.c.request_id == request_id, release_files.c.name == name
        )
        rows = self._read(stmt)
        if not rows:
            raise NotFound(f"no file {name!r} in release request {request_id!r}")
        content = bytes(rows[0].content)
        if sha256(content).hexdigest() != rows[0].sha256:
            raise StateError(
                f"file {name!r} of release request {request_id!r} does not match its checksum"
            )
        return content

    def put_release_file(
        self,
        request_id: str,
        name: str,
        content: bytes,
        *,
        kind: str,
        checks: Sequence[Mapping[str, Any]] = (),
        metadata: Mapping[str, Any] | None = None,
        exception: str | None = None,
        description: str | None = None,
        audit: AuditEntry,
    ) -> ReleaseFile:
        """Add a file to a request or replace one. The checksum and size are computed
        here from the bytes. Any change to a request's files deletes its reviews."""
        record = ReleaseFile(
            request_id=request_id,
            name=name,
            sha256=sha256(content).hexdigest(),
            size_bytes=len(content),
            kind=kind,
            checks=[dict(c) for c in checks],
            metadata=dict(metadata or {}),
            exception=exception,
            description=description,
        )
        with self._writing(audit, f"release request {request_id!r} does not exist") as conn:
            key = (release_files.c.request_id == request_id, release_files.c.name == name)
            conn.execute(sa.delete(release_files).where(*key))
            conn.execute(
                sa.insert(release_files).values(
                    request_id=request_id,
                    name=name,
                    sha256=record.sha256,
                    size_bytes=record.size_bytes,
                    kind=kind,
                    checks=record.checks,
                    metadata=record.metadata,
                    content=content,
                    exception=exception,
                    description=description,
                )
            )
            self._files_changed(conn, request_id)
        return record

    def delete_release_file(self, request_id: str, name: str, *, audit: AuditEntry) -> None:
        """Remove a file from a request; deletes the request's reviews."""
        with self._writing(audit, f"file {name!r} cannot be removed") as conn:
            result = conn.execute(
                sa.delete(release_files).where(
                    release_files.c.request_id == request_id, release_files.c.name == name
                )
            )
            self._must_change(result, f"file {name!r} in release request {request_id!r}")
            self._files_changed(conn, request_id)

    def _files_changed(self, conn: Connection, request_id: str) -> None:
        conn.execute(sa.delete(reviews).where(reviews.c.request_id == request_id))
        result = conn.execute(
            sa.update(release_requests)
            .where(release_requests.c.id == request_id)
            .values(updated_at=self._clock())
        )
        self._must_change(result, f"release request {request_id!r}")

    def list_reviews(self, request_id: str) -> list[Review]:
        stmt = (
            sa.select(reviews)
            .where(reviews.c.request_id == request_id)
            .order_by(reviews.c.created_at, reviews.c.reviewer)
        )
        return [_review(r) for r in self._read(stmt)]

    def add_review(self, review: Review, *, audit: AuditEntry) -> None:
        """One vote per reviewer per request: a second vote is refused."""
        conflict = (
            f"{review.reviewer!r} has already reviewed release request {review.request_id!r}, "
            "or the request or reviewer does not exist"
        )
        with self._writing(audit, conflict) as conn:
            conn.execute(
                sa.insert(reviews).values(
                    request_id=review.request_id,
                    reviewer=review.reviewer,
                    decision=review.decision.value,
                    comment=review.comment,
                    created_at=review.created_at,
                    files={
                        name: {"decision": vote.decision.value, "comment": vote.comment}
                        for name, vote in review.files.items()
                    }
                    or None,
                )
            )

    def clear_reviews(self, request_id: str, *, audit: AuditEntry) -> None:
        """Delete every review of a request (e.g. when it is resubmitted)."""
        with self._writing(audit, f"release request {request_id!r} cannot change") as conn:
            conn.execute(sa.delete(reviews).where(reviews.c.request_id == request_id))


def _dataset_values(dataset: ApprovedDataset) -> dict[str, Any]:
    return {
        "project_id": dataset.project_id,
        "dataset": dataset.dataset,
        "columns": list(dataset.columns),
        "justification": dataset.justification,
        "column_justifications": dict(dataset.column_justifications),
    }
