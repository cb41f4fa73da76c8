"""Tables of the DOU+ domain (the seed's names): connected Douyin accounts with their
encrypted tokens, ad orders with their current figures, the per-order 5-minute windows,
the per-video rollup, per-account daily figures and the sync state of each stream.

An order's current figures live on its `douplus_order` row, written in the same
transaction as its newest `douplus_order_stats` window, so the order list is one indexed
read (not the seed's correlated `MAX(stat_time)` subquery per order).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.columns import Base, BigId, UTCDateTime, utcnow

Money = Numeric(12, 2)  # yuan; a decimal string in JSON
BigMoney = Numeric(14, 2)
Rate = Numeric(10, 4)

FINAL_STATUSES = frozenset({"DELIVERIED", "UNDELIVERIED", "OFFLINE_AUDIT"})
ORDER_STATUSES = (
    "UNPAID",
    "AUDITING",
    "OFFLINE_AUDIT",
    "TIME_NO_REACH",
    "DELIVERING",
    "UNDELIVERIED",
    "DELIVERIED",
    "AUDIT_PAUSE",
    "WAIT_TO_START",
)
ACCOUNT_STATUSES = ("active", "needs_reauth", "disabled")
STREAMS = ("orders_full", "orders_incremental", "stats", "videos", "requested")
# Figures that add up (an account's day sums its orders'), and all an order's figures.
SUMMED = (
    "stat_cost",
    "total_play",
    "custom_like",
    "dy_share",
    "dy_comment",
    "dp_target_convert_cnt",
)
FIGURES = (*SUMMED, "custom_convert_cost", "play_duration_5s_rank")
DECIMAL_FIGURES = frozenset({"stat_cost", "custom_convert_cost", "play_duration_5s_rank"})


def zeros(names: tuple[str, ...]) -> dict[str, int | Decimal]:
    """The figures `names` at zero, each of its column's Python type."""
    return {name: Decimal(0) if name in DECIMAL_FIGURES else 0 for name in names}


class DouyinAccount(Base):
    """A Douyin account whose DOU+ orders are synced. Tokens are stored encrypted."""

    __tablename__ = "douyin_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    aweme_sec_uid: Mapped[str] = mapped_column(String(128), unique=True)
    nickname: Mapped[str] = mapped_column(String(200), default="")
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    # A sync asked for by hand or by connecting ("full" | "incremental"), until done.
    sync_requested: Mapped[str | None] = mapped_column(String(16))
    sync_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DouplusOrder(Base):
    """One ad order and its current (newest window's) cumulative figures."""

    __tablename__ = "douplus_order"
    __table_args__ = (
        Index("ix_douplus_order_account_created", "account_id", "order_create_time", "id"),
        Index("ix_douplus_order_account_cost", "account_id", "stat_cost"),
        Index("ix_douplus_order_item", "item_id"),
        Index("ix_douplus_order_created", "order_create_time", "id"),
        Index("ix_douplus_order_cost", "stat_cost", "id"),
        Index("ix_douplus_order_unsettled", "account_id", "stats_settled"),
        Index("ix_douplus_order_agg_pending", "agg_pending"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("douyin_account.id"))
    item_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(32))
    budget: Mapped[Decimal] = mapped_column(Money)
    title: Mapped[str] = mapped_column(String(500), default="")
    order_create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    create_date: Mapped[date] = mapped_column(Date)  # business date (DOU+ time zone)
    sync_version: Mapped[int] = mapped_column(Integer, default=1)
    last_sync_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Final status and figures read after it: no more report calls for this order.
    stats_settled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Figures moved since the videos rollup last summed this order's video.
    agg_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    stat_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stat_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    total_play: Mapped[int] = mapped_column(BigInteger, default=0)
    custom_like: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_share: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_comment: Mapped[int] = mapped_column(BigInteger, default=0)
    dp_target_convert_cnt: Mapped[int] = mapped_column(BigInteger, default=0)
    custom_convert_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    play_duration_5s_rank: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0"))


class DouplusOrderStats(Base):
    """An order's cumulative figures as of a 5-minute window: written when they moved."""

    __tablename__ = "douplus_order_stats"
    __table_args__ = (
        UniqueConstraint("order_id", "stat_time"),
        Index("ix_douplus_order_stats_item_time", "item_id", "stat_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    item_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Integer)
    stat_time: Mapped[datetime] = mapped_column(UTCDateTime)
    stat_cost: Mapped[Decimal] = mapped_column(Money)
    total_play: Mapped[int] = mapped_column(BigInteger)
    custom_like: Mapped[int] = mapped_column(BigInteger)
    dy_share: Mapped[int] = mapped_column(BigInteger)
    dy_comment: Mapped[int] = mapped_column(BigInteger)
    dp_target_convert_cnt: Mapped[int] = mapped_column(BigInteger)
    custom_convert_cost: Mapped[Decimal] = mapped_column(Money)
    play_duration_5s_rank: Mapped[Decimal] = mapped_column(Rate)


class DouplusVideoStatsAgg(Base):
    """All orders of one video summed as of a window; `is_latest` marks each video's
    newest row, so the ranking is one indexed read."""

    __tablename__ = "douplus_video_stats_agg"
    __table_args__ = (
        UniqueConstraint("item_id", "stat_time"),
        Index("ix_douplus_video_latest_cost", "is_latest", "account_id", "total_cost"),
        Index("ix_douplus_video_latest_play", "is_latest", "account_id", "total_play"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500), default="")
    stat_time: Mapped[datetime] = mapped_column(UTCDateTime)
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True)
    order_count: Mapped[int] = mapped_column(Integer)
    total_cost: Mapped[Decimal] = mapped_column(BigMoney)
    total_play: Mapped[int] = mapped_column(BigInteger)
    total_like: Mapped[int] = mapped_column(BigInteger)
    total_share: Mapped[int] = mapped_column(BigInteger)
    total_comment: Mapped[int] = mapped_column(BigInteger)
    total_convert: Mapped[int] = mapped_column(BigInteger)
    play_per_100_cost: Mapped[Decimal] = mapped_column(BigMoney)
    like_rate: Mapped[Decimal] = mapped_column(Rate)
    share_rate: Mapped[Decimal] = mapped_column(Rate)
    avg_convert_cost: Mapped[Decimal] = mapped_column(Money)
    avg_5s_rank: Mapped[Decimal] = mapped_column(Rate)


class DouplusAccountDaily(Base):
    """Per account and order creation day: how many orders, and their figures so far.
    Moves by the difference whenever an order's current figures move."""

    __tablename__ = "douplus_account_daily"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    create_date: Mapped[date] = mapped_column(Date, primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    stat_cost: Mapped[Decimal] = mapped_column(BigMoney, default=Decimal("0"))
    total_play: Mapped[int] = mapped_column(BigInteger, default=0)
    custom_like: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_share: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_comment: Mapped[int] = mapped_column(BigInteger, default=0)
    dp_target_convert_cnt: Mapped[int] = mapped_column(BigInteger, default=0)


class DouplusSyncState(Base):
    """How each stream of each account last went; saved with the data it covers.
    `account_id` 0 is the videos rollup, which spans accounts."""

    __tablename__ = "douplus_sync_state"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_window: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_count: Mapped[int] = mapped_column(Integer, default=0)
