"""core: database_identity, one row with an id made with the schema

Local state that belongs to one database (the click spool, the campaign snapshot under
var/) records this id, so a process pointed at another database never applies it there.

Revision ID: 5e2b7c9d1a34
Revises: 9d4a7e1f2b60
Create Date: 2026-12-06 10:00:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tallyhub.core.db

revision: str = "5e2b7c9d1a34"
down_revision: str | None = "9d4a7e1f2b60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    identity = op.create_table(
        "database_identity",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("database_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", tallyhub.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_identity")),
    )
    op.bulk_insert(
        identity,
        [
            {
                "id": 1,
                "database_id": str(uuid.uuid4()),
                "created_at": datetime.now(UTC),  # the column type stores it as naive UTC
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("database_identity")
