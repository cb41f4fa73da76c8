"""Tables of the leads domain: groups, LINE accounts, the contact pool, the incoming log,
and the counters (all-time stats rows and per-business-day rows) that move with it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
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

DEDUP_SCOPES = ("current", "global")
PLATFORM_TYPES = ("line", "line_business")
ONLINE_STATUSES = ("online", "offline")


class Group(Base):
    """A group of LINE accounts run by one desktop client (分组)."""

    __tablename__ = "lead_groups"
    __table_args__ = (Index("ix_lead_groups_created", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activation_code: Mapped[str] = mapped_column(String(64), unique=True)
    remark: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    dedup_scope: Mapped[str] = mapped_column(String(16), default="current")
    reset_time: Mapped[str] = mapped_column(String(5), default="00:00")
    timezone: Mapped[str] = mapped_column(String(64))
    account_limit: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LineAccount(Base):
    """A LINE account in a group. `deletion_mark` is 0 while live and the row id once
    deleted, so (group_id, line_id, deletion_mark) is unique among live rows on every
    dialect (MySQL has no partial unique index)."""

    __tablename__ = "line_accounts"
    __table_args__ = (UniqueConstraint("group_id", "line_id", "deletion_mark"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"))
    line_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    platform_type: Mapped[str] = mapped_column(String(16))
    online_status: Mapped[str] = mapped_column(String(16))
    last_online_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deletion_mark: Mapped[int] = mapped_column(Integer, default=0)


class GroupStats(Base):
    __tablename__ = "group_stats"

    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"), primary_key=True)
    total_accounts: Mapped[int] = mapped_column(Integer, default=0)
    online_accounts: Mapped[int] = mapped_column(Integer, default=0)
    line_accounts: Mapped[int] = mapped_column(Integer, default=0)
    line_business_accounts: Mapped[int] = mapped_column(Integer, default=0)
    total_incoming: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_incoming: Mapped[int] = mapped_column(Integer, default=0)


class LineAccountStats(Base):
    __tablename__ = "line_account_stats"

    line_account_id: Mapped[int] = mapped_column(ForeignKey("line_accounts.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    total_incoming: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_incoming: Mapped[int] = mapped_column(Integer, default=0)


class GroupDailyStats(Base):
    __tablename__ = "group_daily_stats"

    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    incoming: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_incoming: Mapped[int] = mapped_column(Integer, default=0)


class LineAccountDailyStats(Base):
    __tablename__ = "line_account_daily_stats"
    __table_args__ = (Index("ix_line_account_daily_group", "group_id", "business_date"),)

    line_account_id: Mapped[int] = mapped_column(ForeignKey("line_accounts.id"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer)
    incoming: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_incoming: Mapped[int] = mapped_column(Integer, default=0)


class Contact(Base):
    """The contact pool of one group (底库): a row per contact ever seen in the group.
    `first_event_id` says which incoming event inserted it, so a batch can tell the
    contacts it added from those another transaction had added."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("group_id", "line_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"))
    line_id: Mapped[str] = mapped_column(String(128))
    first_event_id: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GlobalContact(Base):
    """The pool across all groups, for groups whose dedup scope is global."""

    __tablename__ = "global_contacts"

    line_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_event_id: Mapped[str] = mapped_column(String(64))
    first_group_id: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IncomingLog(Base):
    """One incoming lead (进线). Event ids are the client's, so unique per group.
    `total_after`/`today_after` keep the answer given to the client, so a retried event_id
    gets the first answer back."""

    __tablename__ = "incoming_logs"
    __table_args__ = (
        UniqueConstraint("group_id", "event_id"),
        Index("ix_incoming_logs_group_day", "group_id", "business_date", "is_duplicate"),
        Index("ix_incoming_logs_account_day", "line_account_id", "business_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"))
    line_account_id: Mapped[int] = mapped_column(ForeignKey("line_accounts.id"))
    incoming_line_id: Mapped[str] = mapped_column(String(128))
    is_duplicate: Mapped[bool] = mapped_column(Boolean)
    incoming_time: Mapped[datetime] = mapped_column(UTCDateTime)
    business_date: Mapped[date] = mapped_column(Date)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    total_after: Mapped[int] = mapped_column(Integer)
    today_after: Mapped[int] = mapped_column(Integer)
