"""douplus tables

Revision ID: 819dbead00bf
Revises: 5e2b7c9d1a34
Create Date: 2026-12-06 17:03:03.830473
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tallyhub.core.db

revision: str = "819dbead00bf"
down_revision: str | None = "5e2b7c9d1a34"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "douplus_account_daily",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("create_date", sa.Date(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("stat_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("total_play", sa.BigInteger(), nullable=False),
        sa.Column("custom_like", sa.BigInteger(), nullable=False),
        sa.Column("dy_share", sa.BigInteger(), nullable=False),
        sa.Column("dy_comment", sa.BigInteger(), nullable=False),
        sa.Column("dp_target_convert_cnt", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "create_date", name=op.f("pk_douplus_account_daily")),
    )
    op.create_table(
        "douplus_order_stats",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stat_time", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("stat_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_play", sa.BigInteger(), nullable=False),
        sa.Column("custom_like", sa.BigInteger(), nullable=False),
        sa.Column("dy_share", sa.BigInteger(), nullable=False),
        sa.Column("dy_comment", sa.BigInteger(), nullable=False),
        sa.Column("dp_target_convert_cnt", sa.BigInteger(), nullable=False),
        sa.Column("custom_convert_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("play_duration_5s_rank", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douplus_order_stats")),
        sa.UniqueConstraint(
            "order_id", "stat_time", name=op.f("uq_douplus_order_stats_order_id_stat_time")
        ),
    )
    with op.batch_alter_table("douplus_order_stats", schema=None) as batch_op:
        batch_op.create_index(
            "ix_douplus_order_stats_item_time", ["item_id", "stat_time"], unique=False
        )

    op.create_table(
        "douplus_sync_state",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("last_success_at", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("last_window", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "stream", name=op.f("pk_douplus_sync_state")),
    )
    op.create_table(
        "douplus_video_stats_agg",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("stat_time", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("total_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("total_play", sa.BigInteger(), nullable=False),
        sa.Column("total_like", sa.BigInteger(), nullable=False),
        sa.Column("total_share", sa.BigInteger(), nullable=False),
        sa.Column("total_comment", sa.BigInteger(), nullable=False),
        sa.Column("total_convert", sa.BigInteger(), nullable=False),
        sa.Column("play_per_100_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("like_rate", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("share_rate", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("avg_convert_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("avg_5s_rank", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douplus_video_stats_agg")),
        sa.UniqueConstraint(
            "item_id", "stat_time", name=op.f("uq_douplus_video_stats_agg_item_id_stat_time")
        ),
    )
    with op.batch_alter_table("douplus_video_stats_agg", schema=None) as batch_op:
        batch_op.create_index(
            "ix_douplus_video_latest_cost", ["is_latest", "account_id", "total_cost"], unique=False
        )
        batch_op.create_index(
            "ix_douplus_video_latest_play", ["is_latest", "account_id", "total_play"], unique=False
        )

    op.create_table(
        "douyin_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aweme_sec_uid", sa.String(length=128), nullable=False),
        sa.Column("nickname", sa.String(length=200), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("refresh_expires_at", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("sync_requested", sa.String(length=16), nullable=True),
        sa.Column("sync_requested_at", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("created_at", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_douyin_account_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douyin_account")),
        sa.UniqueConstraint("aweme_sec_uid", name=op.f("uq_douyin_account_aweme_sec_uid")),
    )
    with op.batch_alter_table("douyin_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_douyin_account_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "douplus_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("budget", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("order_create_time", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("create_date", sa.Date(), nullable=False),
        sa.Column("sync_version", sa.Integer(), nullable=False),
        sa.Column("last_sync_time", tallyhub.core.columns.UTCDateTime(), nullable=False),
        sa.Column("stats_settled", sa.Boolean(), nullable=False),
        sa.Column("agg_pending", sa.Boolean(), nullable=False),
        sa.Column("stat_time", tallyhub.core.columns.UTCDateTime(), nullable=True),
        sa.Column("stat_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_play", sa.BigInteger(), nullable=False),
        sa.Column("custom_like", sa.BigInteger(), nullable=False),
        sa.Column("dy_share", sa.BigInteger(), nullable=False),
        sa.Column("dy_comment", sa.BigInteger(), nullable=False),
        sa.Column("dp_target_convert_cnt", sa.BigInteger(), nullable=False),
        sa.Column("custom_convert_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("play_duration_5s_rank", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["douyin_account.id"],
            name=op.f("fk_douplus_order_account_id_douyin_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douplus_order")),
        sa.UniqueConstraint("order_id", name=op.f("uq_douplus_order_order_id")),
    )
    with op.batch_alter_table("douplus_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_douplus_order_account_cost", ["account_id", "stat_cost"], unique=False
        )
        batch_op.create_index(
            "ix_douplus_order_account_created",
            ["account_id", "order_create_time", "id"],
            unique=False,
        )
        batch_op.create_index("ix_douplus_order_agg_pending", ["agg_pending"], unique=False)
        batch_op.create_index("ix_douplus_order_created", ["order_create_time", "id"], unique=False)
        batch_op.create_index("ix_douplus_order_cost", ["stat_cost", "id"], unique=False)
        batch_op.create_index("ix_douplus_order_item", ["item_id"], unique=False)
        batch_op.create_index(
            "ix_douplus_order_unsettled", ["account_id", "stats_settled"], unique=False
        )

    # ### end Alembic commands ###


def downgrade() -> None:
    # Tables only: a table takes its indexes with it, and on MySQL/MariaDB an index that
    # a foreign key uses cannot be dropped while the key stands.
    for table in (
        "douplus_order_stats",
        "douplus_video_stats_agg",
        "douplus_account_daily",
        "douplus_sync_state",
        "douplus_order",
        "douyin_account",
    ):
        op.drop_table(table)
