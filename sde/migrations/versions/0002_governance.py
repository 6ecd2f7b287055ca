"""Governance: project applications, public comments, the board, bans.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Adds the application's fields to ``projects`` (and the statuses ``published`` and
``rejected``), board member kinds to ``people``, per-column justifications to
``project_datasets``, and the tables ``project_comments``, ``project_conflicts``,
``board_votes`` and ``organisation_bans``.

SQLite cannot alter a CHECK constraint: ``projects`` and ``people`` are rebuilt in batch
mode. Other tables point at both, so ``sde.adapters.sql.upgrade`` runs migrations on SQLite
with foreign-key enforcement off and checks every reference before committing (run
Alembic's own commands on a SQLite file the same way: ``PRAGMA foreign_keys = OFF``).

Frozen history: names, types and value lists are spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
OLD_STATUSES = ["draft", "approved", "suspended", "closed"]
NEW_STATUSES = ["draft", "published", "approved", "rejected", "suspended", "closed"]
BOARD_KINDS = ["lay", "clinical", "data_protection"]
LEGAL_BASES = ["consent", "s251_support", "legal_requirement", "public_task"]


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("people", recreate="auto") as batch:
        batch.add_column(sa.Column("board_kind", sa.String(16), nullable=True))
        batch.create_check_constraint("ck_people_board_kind", _in("board_kind", BOARD_KINDS))
    with op.batch_alter_table("projects", recreate="auto") as batch:
        batch.drop_constraint("ck_projects_status", type_="check")
        batch.create_check_constraint("ck_projects_status", _in("status", NEW_STATUSES))
        batch.add_column(sa.Column("summary", sa.Text, nullable=True))
        batch.add_column(sa.Column("legal_basis_type", sa.String(32), nullable=True))
        batch.add_column(sa.Column("public_benefit", sa.Text, nullable=True))
        batch.add_column(sa.Column("benefit_sharing", sa.Text, nullable=True))
        batch.add_column(
            sa.Column("exclusive_access", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("uses", sa.JSON, nullable=True))
        batch.add_column(sa.Column("cohort", sa.Text, nullable=True))
        batch.add_column(
            sa.Column("ai_ml_use", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("ai_ml_description", sa.Text, nullable=True))
        batch.add_column(sa.Column("processors", sa.JSON, nullable=True))
        batch.add_column(sa.Column("published_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("comment_period_ends", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("decided_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decision_reasons", sa.JSON, nullable=True))
        batch.add_column(sa.Column("status_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("status_changed_at", TIMESTAMP, nullable=True))
        batch.create_foreign_key("fk_projects_decided_by_people", "people", ["decided_by"], ["id"])
        batch.create_check_constraint(
            "ck_projects_legal_basis_type", _in("legal_basis_type", LEGAL_BASES)
        )
    with op.batch_alter_table("project_datasets") as batch:
        batch.add_column(sa.Column("column_justifications", sa.JSON, nullable=True))
    op.create_table(
        "project_comments",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project_comments"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_comments_project_id_projects"
        ),
    )
    op.create_index("ix_project_comments_project_id", "project_comments", ["project_id"])
    op.create_table(
        "project_conflicts",
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("interest", sa.Text, nullable=False),
        sa.Column("declared_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "person_id", name="pk_project_conflicts"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_conflicts_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_project_conflicts_person_id_people"
        ),
    )
    op.create_table(
        "board_votes",
        sa.Column("project_id", sa.String(63), nullable=False),
        sa.Column("voter", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("cast_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "voter", name="pk_board_votes"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_board_votes_project_id_projects"
        ),
        sa.ForeignKeyConstraint(["voter"], ["people.id"], name="fk_board_votes_voter_people"),
        sa.CheckConstraint(_in("decision", ["approve", "reject"]), name="ck_board_votes_decision"),
    )
    op.create_table(
        "organisation_bans",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("banned_until", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("banned_at", TIMESTAMP, nullable=False),
        sa.Column("banned_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_organisation_bans"),
    )


def downgrade() -> None:
    op.drop_table("organisation_bans")
    op.drop_table("board_votes")
    op.drop_table("project_conflicts")
    op.drop_index("ix_project_comments_project_id", table_name="project_comments")
    op.drop_table("project_comments")
    with op.batch_alter_table("project_datasets") as batch:
        batch.drop_column("column_justifications")
    with op.batch_alter_table("projects", recreate="auto") as batch:
        batch.drop_constraint("ck_projects_legal_basis_type", type_="check")
        batch.drop_constraint("fk_projects_decided_by_people", type_="foreignkey")
        for column in (
            "status_changed_at",
            "status_reason",
            "decision_reasons",
            "decided_by",
            "decided_at",
            "comment_period_ends",
            "published_at",
            "processors",
            "ai_ml_description",
            "ai_ml_use",
            "cohort",
            "uses",
            "exclusive_access",
            "benefit_sharing",
            "public_benefit",
            "legal_basis_type",
            "summary",
        ):
            batch.drop_column(column)
        batch.drop_constraint("ck_projects_status", type_="check")
        batch.create_check_constraint("ck_projects_status", _in("status", OLD_STATUSES))
    with op.batch_alter_table("people", recreate="auto") as batch:
        batch.drop_constraint("ck_people_board_kind", type_="check")
        batch.drop_column("board_kind")
