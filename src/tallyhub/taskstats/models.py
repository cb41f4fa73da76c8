"""Tables of the task-rollup domain: promoters (the seed's users), promotion tasks, their
completions with the video figures each one brought, the per-task daily rows (the seed's
`task_daily_stats`, with how its callback went) and the per-agent daily rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.columns import Base, BigId, UTCDateTime, utcnow

PLATFORMS = ("youtube", "tiktok", "douyin")
TASK_STATUSES = ("active", "paused", "finished")
# The figures a completion brings, from its verification details or fetched.
COUNTS = ("view_count", "like_count", "comment_count", "share_count", "collect_count")
# The seed's per-platform fields: YouTube and TikTok four, Douyin six.
PLATFORM_FIELDS = {
    "youtube": ("yt", ("view", "like", "comment")),
    "tiktok": ("tt", ("view", "like", "comment")),
    "douyin": ("dy", ("view", "like", "comment", "share", "collect")),
}
DAILY_FIGURES = (
    "total_account_count",
    "completion_count",
    *(
        f"{prefix}_{name}_count"
        for prefix, names in PLATFORM_FIELDS.values()
        for name in ("account", *names)
    ),
)


class Promoter(Base):
    """Someone who completes tasks (the seed's `users`); `agent_node` is who they belong
    to for settlement."""

    __tablename__ = "task_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    agent_node: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))
    duration: Mapped[int] = mapped_column(Integer)  # days
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="active")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Completion(Base):
    """One completed task. Its counts come from its verification details when it brought
    them, else from the platform (fetched once by a scan and kept: a rescan does not
    fetch again)."""

    __tablename__ = "task_completions"
    __table_args__ = (Index("ix_task_completions_day_task", "completed_date", "task_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("task_users.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    submission_link: Mapped[str] = mapped_column(String(2000))
    verification_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_date: Mapped[date] = mapped_column(Date)  # in the server's time zone
    # None until known; then from "details" or "fetched".
    stats_source: Mapped[str | None] = mapped_column(String(16))
    fetch_error: Mapped[str | None] = mapped_column(Text)
    view_count: Mapped[int | None] = mapped_column(BigInteger)
    like_count: Mapped[int | None] = mapped_column(BigInteger)
    comment_count: Mapped[int | None] = mapped_column(BigInteger)
    share_count: Mapped[int | None] = mapped_column(BigInteger)
    collect_count: Mapped[int | None] = mapped_column(BigInteger)
    # The request that inserted it: tells a new completion from a repeated external_id.
    batch_token: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskDailyStats(Base):
    """One task's day (the seed's table and fields), and how its callback went."""

    __tablename__ = "task_daily_stats"
    __table_args__ = (
        UniqueConstraint("task_id", "stats_date"),
        Index("ix_task_daily_stats_date", "stats_date", "task_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(Integer)
    stats_date: Mapped[date] = mapped_column(Date)
    total_account_count: Mapped[int] = mapped_column(Integer, default=0)
    completion_count: Mapped[int] = mapped_column(Integer, default=0)
    yt_account_count: Mapped[int] = mapped_column(Integer, default=0)
    yt_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    yt_like_count: Mapped[int] = mapped_column(BigInteger, default=0)
    yt_comment_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tt_account_count: Mapped[int] = mapped_column(Integer, default=0)
    tt_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tt_like_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tt_comment_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_account_count: Mapped[int] = mapped_column(Integer, default=0)
    dy_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_like_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_comment_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_share_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_collect_count: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    webhook_response: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    webhook_message_id: Mapped[str | None] = mapped_column(String(40))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentDailyStats(Base):
    """One agent's day, for settlement: its promoters who completed tasks, their
    completions and figures (rows of promoters without an agent have agent_node "")."""

    __tablename__ = "task_agent_daily_stats"

    agent_node: Mapped[str] = mapped_column(String(255), primary_key=True)
    stats_date: Mapped[date] = mapped_column(Date, primary_key=True)
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    completion_count: Mapped[int] = mapped_column(Integer, default=0)
    yt_completion_count: Mapped[int] = mapped_column(Integer, default=0)
    yt_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tt_completion_count: Mapped[int] = mapped_column(Integer, default=0)
    tt_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    dy_completion_count: Mapped[int] = mapped_column(Integer, default=0)
    dy_view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    like_count: Mapped[int] = mapped_column(BigInteger, default=0)
