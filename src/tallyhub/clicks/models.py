"""Tables of the clicks domain: campaigns and their counters, LINE members, the per-user
click summaries with their tag sets, the messages and interaction logs each click writes,


The tables a click batch writes carry no foreign key to `campaigns`: on MySQL/MariaDB a
foreign-key check takes a shared lock on the parent row, and two batches that both hold it
and then increment `clicked_count` deadlock (shared-to-exclusive upgrade). The batch
checks that its campaigns exist, and campaigns are never deleted.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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

INTERACTION_TYPES = ("image_click", "button_url", "carousel_click", "text_link", "rich_menu")


class Campaign(Base):
    """A tracked campaign. `clicked_count` and `unique_users` move with every click batch."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_created", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    clicked_count: Mapped[int] = mapped_column(BigInteger, default=0)
    unique_users: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignDailyStats(Base):
    """Clicks per campaign and local day (campaign time zone, day starting 00:00)."""

    __tablename__ = "campaign_daily_stats"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class CampaignUser(Base):
    """One row per (campaign, LINE user) that ever clicked: insert-or-nothing decides who
    is new, and the campaign's `unique_users` moves by the rows a batch really inserted."""

    __tablename__ = "campaign_users"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_event_id: Mapped[str] = mapped_column(String(64))
    first_clicked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    """A LINE user known by uid, created by their first click."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_uid: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """The member's message log; a click writes an incoming `campaign_click` event."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_member", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16))
    message_type: Mapped[str] = mapped_column(String(32))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClickSummary(Base):
    """Per user, campaign and source campaign (the seed's `ryan_click_demo`): total clicks,
    last click, and `last_click_tag`, the tag set as a comma string in first-seen order,
    written by whichever transaction adds a tag row (while it holds this row).
    `tags_seen_until` is the latest first-seen time among the tags: a tag first seen after
    it is simply appended to the string; an older one (a replayed click) re-sorts it."""

    __tablename__ = "click_summaries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "line_id", "source_campaign_id"),
        Index("ix_click_summaries_line", "line_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(64))
    source_campaign_id: Mapped[int] = mapped_column(Integer, default=0)
    total_clicks: Mapped[int] = mapped_column(Integer, default=0)
    last_clicked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_click_tag: Mapped[str | None] = mapped_column(Text)
    tags_seen_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClickSummaryTag(Base):
    """One row per tag of a summary, under a unique key: a tag set can only grow, and no
    tag is ever lost. Rows are added only by a transaction holding the summary's row.
    First-seen order is (first_seen_at, position, id): the time of the click that brought
    the tag, its place in that click's list, then the order rows were added in."""

    __tablename__ = "click_summary_tags"
    # Named here: the conventional name would pass PostgreSQL's 63-character limit.
    __table_args__ = (
        UniqueConstraint(
            "campaign_id", "line_id", "source_campaign_id", "tag", name="uq_click_summary_tags_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(64))
    source_campaign_id: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    position: Mapped[int] = mapped_column(Integer, default=0)
    first_event_id: Mapped[str] = mapped_column(String(64))


class InteractionLog(Base):
    """Every accepted click (the seed's `component_interaction_logs`), the log that every
    counter is recalibrated from. `event_id` makes replay idempotent."""

    __tablename__ = "component_interaction_logs"
    __table_args__ = (
        Index("ix_interaction_logs_campaign", "campaign_id", "id"),
        Index("ix_interaction_logs_line", "line_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    line_id: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(Integer)
    source_campaign_id: Mapped[int] = mapped_column(Integer, default=0)
    interaction_type: Mapped[str] = mapped_column(String(32))
    interaction_value: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(String(1400), default="")
    triggered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    business_date: Mapped[date] = mapped_column(Date)
    user_agent: Mapped[str | None] = mapped_column(Text)
