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
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.columns import Base, BigId, UTCDateTime, utcnow

INTERACTION_TYPES = ("image_click", "button_url", "carousel_click", "text_link", "rich_menu")


class Campaign(Base):
    """A tracked campaign. `clicked_count` and `unique_users` move with every click batch
    by the clicks that count; `bot_clicks` by the bots' clicks kept out of them (while
    `filter_bots` is on), so every logged click moves exactly one of the two counters."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_created", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    clicked_count: Mapped[int] = mapped_column(BigInteger, default=0)
    unique_users: Mapped[int] = mapped_column(BigInteger, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    filter_bots: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignDailyStats(Base):
    """Clicks that count per campaign and local day (campaign time zone, from 00:00)."""

    __tablename__ = "campaign_daily_stats"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class CampaignDailyBreakdown(Base):
    """Clicks per campaign, local day and kind of visitor, folded from the click batches'
    deltas (`CampaignBreakdownDelta`): one row per (whether the clicks counted, device
    type, OS family, browser family, referrer host, bot name) met that day. A breakdown
    by one of them sums the range's rows (and deltas) by it: the clicks that count by
    `device`, `os_family`, `browser_family` or `referrer_host`, the bots' clicks kept out
    of the counts by `bot_name` (empty for people). One row per combination rather than
    one per dimension and value: a click then adds to one, not four."""

    __tablename__ = "campaign_daily_breakdowns"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    counted: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    device: Mapped[str] = mapped_column(String(8), primary_key=True)
    os_family: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_family: Mapped[str] = mapped_column(String(64), primary_key=True)
    referrer_host: Mapped[str] = mapped_column(String(255), primary_key=True)
    bot_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class CampaignBreakdownDelta(Base):
    """What one click batch adds to one campaign's day of `campaign_daily_breakdowns`,
    inserted with the batch and folded into those rows within seconds (`fold_deltas`).

    `kinds` is a JSON list of `[counted (1/0), device, os, browser, bot name, referrer,
    clicks]`. Breakdowns are read from the rows and the deltas not folded yet, so they are
    exact as soon as the batch commits. Why not increment the rows in the batch: nearly
    every click of a busy batch is a new combination of campaign and kind of visitor, so
    an upsert a click cost a tenth of the click path; one plain insert per campaign and
    day of the batch costs a fraction of that, and the fold coalesces thousands at once."""

    __tablename__ = "campaign_breakdown_deltas"
    __table_args__ = (Index("ix_breakdown_deltas_campaign_day", "campaign_id", "business_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    business_date: Mapped[date] = mapped_column(Date)
    kinds: Mapped[str] = mapped_column(Text)


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
    counter is recalibrated from. `event_id` makes replay idempotent.

    `counted` says whether the click moved the people's counters (false: a bot's click
    kept out of them). `referrer_host` is its Referer's host (`direct` without one) when
    it was classified, NULL for clicks recorded before classification existed or while it
    was turned off. What its agent is (person or bot, device, OS, browser) is read from
    `user_agent` by `agents.classify` whenever it is needed (the log shown, a
    recalibration): the log keeps what the click said, and six more columns a row cost the
    click path more than reading them back costs a page of the log."""

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
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    referrer_host: Mapped[str | None] = mapped_column(String(255))
