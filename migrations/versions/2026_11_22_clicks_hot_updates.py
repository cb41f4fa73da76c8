"""clicks: leave room in the pages of the rows every batch updates (PostgreSQL)

A row updated in place on a page with room for its new version is a HOT update:
no index entry is added. With the default fillfactor (100) the pages of click
summaries fill up, and half of a benchmark's summary updates added a new entry to
each of the table's three indexes. MariaDB and SQLite have no such setting.

Revision ID: 7c2e9d41a0b3
Revises: f36dfa8e3978
Create Date: 2026-11-22 19:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c2e9d41a0b3"
down_revision: str | None = "f36dfa8e3978"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Updated by every click batch: the per-user summaries, and the campaign and day rows.
TABLES = {"click_summaries": 80, "campaigns": 80, "campaign_daily_stats": 80}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, fillfactor in TABLES.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
