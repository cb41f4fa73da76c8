"""jobs: indexes for the run history, newest first, of every job or of one

Interval jobs add a run every 10 or 30 s: ~11,500 rows a day, ~160,000 over the kept
14 days. Listing the history newest first sorted them all (77 ms on SQLite at that size);
with (started_at) and (job_name, started_at) a page is read off an index (0.1 ms). The
second replaces the index on job_name alone, of which it is a prefix.

Revision ID: 9d4a7e1f2b60
Revises: 3b8f5d2c6e71
Create Date: 2026-11-22 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d4a7e1f2b60"
down_revision: str | None = "3b8f5d2c6e71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_started_at", ["started_at"])
        batch_op.create_index("ix_job_runs_job_name_started_at", ["job_name", "started_at"])
        batch_op.drop_index("ix_job_runs_job_name")


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_job_name", ["job_name"])
        batch_op.drop_index("ix_job_runs_job_name_started_at")
        batch_op.drop_index("ix_job_runs_started_at")
