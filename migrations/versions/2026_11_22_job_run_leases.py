"""jobs: a lease on each running slot (heartbeat_at, attempt)

A runner renews `heartbeat_at` while its job runs. A `running` row whose lease has
lapsed was left by a process that stopped: its slot is run again (attempt + 1) or, once
a newer slot has come, marked `abandoned`.

Revision ID: 3b8f5d2c6e71
Revises: 7c2e9d41a0b3
Create Date: 2026-11-22 22:15:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tallyhub.core.db

revision: str = "3b8f5d2c6e71"
down_revision: str | None = "7c2e9d41a0b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("heartbeat_at", tallyhub.core.db.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
    op.execute("UPDATE job_runs SET heartbeat_at = COALESCE(finished_at, started_at)")
    # A run in flight while this migrates (an older process) counts as alive from now:
    # its lease lapses, and it is run again, only if it does not finish.
    op.execute(
        sa.text("UPDATE job_runs SET heartbeat_at = :now WHERE status = 'running'").bindparams(
            now=datetime.now(UTC).replace(tzinfo=None)
        )
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "heartbeat_at", existing_type=tallyhub.core.db.UTCDateTime(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("heartbeat_at")
