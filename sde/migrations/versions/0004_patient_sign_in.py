"""Patients' sign-in attempts, for the lock-out of the patient's record page.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

One row per attempt: ``key`` is a keyed subject (``patient:`` + HMAC of pid, or
``client:`` + HMAC of the client's address; never an NHS number or an IP address), the
time and the outcome (``failure``, ``success``, ``locked``: refused while locked, not
counted).

Frozen history: names and types are spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('failure', 'success', 'locked')", name="ck_sign_in_attempts_outcome"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_attempts"),
    )
    op.create_index("ix_sign_in_attempts_key", "sign_in_attempts", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_attempts_key", table_name="sign_in_attempts")
    op.drop_table("sign_in_attempts")
