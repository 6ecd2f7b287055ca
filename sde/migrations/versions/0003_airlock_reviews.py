"""The airlock's exceptions and per-file reviews.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Adds to ``release_files`` the researcher's exception justification and description, and
to ``reviews`` each checker's decision and comment per file (a JSON object keyed by file
name). Adding nullable columns needs no table rebuild on SQLite.

Frozen history: names and types are spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("release_files", sa.Column("exception", sa.Text, nullable=True))
    op.add_column("release_files", sa.Column("description", sa.Text, nullable=True))
    op.add_column("reviews", sa.Column("files", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("files")
    with op.batch_alter_table("release_files") as batch:
        batch.drop_column("description")
        batch.drop_column("exception")
