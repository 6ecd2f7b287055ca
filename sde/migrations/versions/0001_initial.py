"""The control plane: people, projects, release requests, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen history: names, types and value lists are spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


SQLITE_APPEND_ONLY = [
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
    """,
]

POSTGRESQL_APPEND_ONLY = [
    """
    CREATE FUNCTION sde_audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION sde_audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION sde_audit_events_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("accredited_until", sa.Date, nullable=True),
        sa.Column("banned_until", TIMESTAMP, nullable=True),
        sa.Column("ban_reason", sa.Text, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("sponsor", sa.String(200), nullable=False),
        sa.Column("sponsor_type", sa.String(16), nullable=False),
        sa.Column("legal_basis", sa.String(200), nullable=True),
        sa.Column("national_opt_out_applies", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("start_date", sa.Date, nullable=True),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("approved_at", TIMESTAMP, nullable=True),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["people.id"], name="fk_projects_approved_by_people"
        ),
        _one_of("purpose", ["research", "planning"], "ck_projects_purpose"),
        _one_of(
            "sponsor_type", ["nhs", "academic", "charity", "commercial"], "ck_projects_sponsor_type"
        ),
        _one_of("status", ["draft", "approved", "suspended", "closed"], "ck_projects_status"),
    )
    op.create_table(
        "project_members",
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "person_id", name="pk_project_members"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_members_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_project_members_person_id_people"
        ),
        _one_of("role", ["researcher", "lead"], "ck_project_members_role"),
    )
    op.create_index("ix_project_members_person_id", "project_members", ["person_id"])
    op.create_table(
        "project_datasets",
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("justification", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("project_id", "dataset", name="pk_project_datasets"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_datasets_project_id_projects"
        ),
    )
    op.create_table(
        "release_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("released_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_release_requests"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_release_requests_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["author"], ["people.id"], name="fk_release_requests_author_people"
        ),
        _one_of(
            "status",
            [
                "draft",
                "submitted",
                "in_review",
                "approved",
                "released",
                "returned",
                "rejected",
                "withdrawn",
            ],
            "ck_release_requests_status",
        ),
    )
    op.create_index("ix_release_requests_project_id", "release_requests", ["project_id"])
    op.create_table(
        "release_files",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "name", name="pk_release_files"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["release_requests.id"],
            name="fk_release_files_request_id_release_requests",
        ),
    )
    op.create_table(
        "reviews",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "reviewer", name="pk_reviews"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name="fk_reviews_request_id_release_requests"
        ),
        sa.ForeignKeyConstraint(["reviewer"], ["people.id"], name="fk_reviews_reviewer_people"),
        _one_of("decision", ["approve", "reject", "return"], "ck_reviews_decision"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_events_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = SQLITE_APPEND_ONLY
    elif dialect == "postgresql":
        statements = POSTGRESQL_APPEND_ONLY
    else:
        raise RuntimeError(f"sde's control plane supports SQLite and PostgreSQL, not {dialect}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS sde_audit_events_append_only()")
    op.drop_table("audit_events")
    op.drop_table("reviews")
    op.drop_table("release_files")
    op.drop_index("ix_release_requests_project_id", table_name="release_requests")
    op.drop_table("release_requests")
    op.drop_table("project_datasets")
    op.drop_index("ix_project_members_person_id", table_name="project_members")
    op.drop_table("project_members")
    op.drop_table("projects")
    op.drop_table("people")
