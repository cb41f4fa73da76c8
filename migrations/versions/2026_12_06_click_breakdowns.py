"""clicks: bots kept apart from people, and per-day breakdowns

A campaign counts its bots' clicks (`bot_clicks`) apart from the people's unless its
`filter_bots` is turned off. Each logged click records whether it counted and its
Referer's host (NULL for the clicks logged before: they all counted; what its User-Agent
says is read from `user_agent`, already logged), and
`campaign_daily_breakdowns` holds per-day counts by kind of visitor: whether the clicks
counted, device type, OS, browser, referrer host and bot name, into which the batches'
`campaign_breakdown_deltas` are folded.

Revision ID: b9d0e9ca44ea
Revises: 2a60c446253d
Create Date: 2026-12-06 20:44:30.384673
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b9d0e9ca44ea"
down_revision: str | None = "2a60c446253d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_COLUMNS = (("referrer_host", 255),)


def upgrade() -> None:
    op.create_table(
        "campaign_daily_breakdowns",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("device", sa.String(length=8), nullable=False),
        sa.Column("os_family", sa.String(length=64), nullable=False),
        sa.Column("browser_family", sa.String(length=64), nullable=False),
        sa.Column("referrer_host", sa.String(length=255), nullable=False),
        sa.Column("bot_name", sa.String(length=64), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id",
            "business_date",
            "counted",
            "device",
            "os_family",
            "browser_family",
            "referrer_host",
            "bot_name",
            name=op.f("pk_campaign_daily_breakdowns"),
        ),
    )
    op.create_table(
        "campaign_breakdown_deltas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("kinds", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_breakdown_deltas")),
    )
    op.create_index(
        "ix_breakdown_deltas_campaign_day",
        "campaign_breakdown_deltas",
        ["campaign_id", "business_date"],
        unique=False,
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bot_clicks", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("filter_bots", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("component_interaction_logs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        for name, length in LOG_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Updated by every click batch, like the day rows (2026_11_22_clicks_hot_updates).
        op.execute("ALTER TABLE campaign_daily_breakdowns SET (fillfactor = 80)")


def downgrade() -> None:
    with op.batch_alter_table("component_interaction_logs", schema=None) as batch_op:
        for name, _ in reversed(LOG_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column("counted")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("filter_bots")
        batch_op.drop_column("bot_clicks")
    op.drop_index("ix_breakdown_deltas_campaign_day", table_name="campaign_breakdown_deltas")
    op.drop_table("campaign_breakdown_deltas")
    op.drop_table("campaign_daily_breakdowns")
