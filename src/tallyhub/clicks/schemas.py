"""Request and response models of the clicks admin API."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tallyhub.clicks.service.tracking import MAX_TAG_LENGTH, MAX_TAGS
from tallyhub.core.daywindow import MAX_ZONE_LENGTH, check_zone
from tallyhub.core.validation import RowId, Text

InteractionType = Literal["image_click", "button_url", "carousel_click", "text_link", "rich_menu"]
Dimension = Literal["device", "os", "browser", "referrer", "bot"]

# A host name, or "*.example.com" for every subdomain of example.com.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(\*\.)?(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _check_hosts(hosts: list[str] | None) -> list[str] | None:
    if hosts is None:
        return None
    out: list[str] = []
    for raw in hosts:
        host = raw.strip().lower().rstrip(".")
        if not _HOST.match(host):
            raise ValueError(
                f"{raw!r} is not a host name (give 'example.com' or '*.example.com', "
                "without scheme, port or path)"
            )
        if host not in out:
            out.append(host)
    return out


# ---------------------------------------------------------------- campaigns

_FILTER_BOTS = (
    "Keep bots' clicks (link previews, crawlers, HTTP tools) out of clicked_count, the"
    " daily clicks, the per-user summaries, tags, members and unique users; they are"
    " logged and counted in bot_clicks instead. Off: every click counts, bots' too."
)


class CampaignCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        examples=[["shop.example.com", "*.example.org"]],
        description="Hosts /__track may redirect to without a signed link",
    )
    timezone: str | None = Field(
        None, max_length=MAX_ZONE_LENGTH, examples=["Asia/Tokyo"], description="For daily figures"
    )
    owner_id: RowId | None = Field(None, description="Admins may create for another user")
    filter_bots: bool = Field(True, description=_FILTER_BOTS)

    _hosts = field_validator("allowed_hosts")(_check_hosts)
    _zone = field_validator("timezone")(check_zone)


class CampaignUpdate(BaseModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    allowed_hosts: list[str] | None = Field(None, max_length=100)
    timezone: str | None = Field(None, max_length=MAX_ZONE_LENGTH)
    filter_bots: bool | None = Field(None, description=_FILTER_BOTS)

    _hosts = field_validator("allowed_hosts")(_check_hosts)
    _zone = field_validator("timezone")(check_zone)


class Campaign(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    allowed_hosts: list[str]
    timezone: str
    owner_id: int | None
    clicked_count: int = Field(
        description="clicks that count: people's (and bots' when not filtered)"
    )
    unique_users: int
    bot_clicks: int = Field(description="bots' clicks kept out of the counts")
    filter_bots: bool
    created_at: datetime
    updated_at: datetime


class CampaignWithToday(Campaign):
    today_clicks: int = Field(description="clicks of the campaign's today, in its time zone")
    business_date: date = Field(description="the campaign's today")


class ClicksSummary(BaseModel):
    """The overview's click figures, over the campaigns the user may see."""

    campaigns: int
    today_clicks: int = Field(description="each campaign's today, in its own time zone")
    today_unique_users: int = Field(
        description="distinct LINE users with at least one click today in any of them"
    )
    total_clicks: int


class Count(BaseModel):
    key: str
    count: int


class TopList(BaseModel):
    items: list[Count] = Field(description="the largest counts, at most 10, largest first")
    others: int = Field(description="the sum of the counts not listed")
    distinct: int = Field(description="how many different keys there were")


class Breakdown(BaseModel):
    """What a range's clicks were made of. A click with several tags counts for each;
    `sources` are the source campaign ids (`src`, 0 for none)."""

    start: date
    end: date
    clicks: int
    tags: TopList
    sources: TopList
    interaction_types: TopList


class CampaignDaily(BaseModel):
    business_date: date
    clicks: int


class DimensionBreakdown(BaseModel):
    """A range's clicks by one dimension, from the per-day breakdown rows and their deltas
    not folded yet. `device`, `os`,
    `browser` and `referrer` split the clicks that count (each sums to them, for the
    clicks recorded with classification on); `bot` splits the bots' clicks kept out of
    the counts, by bot name."""

    dimension: Dimension
    start: date
    end: date
    clicks: int = Field(description="the range's sum over every value")
    values: TopList = Field(description="the values' sums, largest first")
    days: list[CampaignDaily] = Field(description="each day's sum, every day of the range")


# ---------------------------------------------------------------- signed links

# Room for every tag a link may carry, comma-separated; the tags themselves are checked
# (count, length, characters) by the service.
_Tags = Annotated[str, Field(max_length=MAX_TAGS * (MAX_TAG_LENGTH + 1))]


class LinkCreate(BaseModel):
    cid: int = Field(ge=1, le=2**31 - 1, description="Campaign id")
    to: str = Field(min_length=1, max_length=2048, examples=["https://shop.example.com/sale"])
    src: int = Field(0, ge=0, le=2**31 - 1, description="Source campaign id")
    tag: _Tags | Annotated[list[_Tags], Field(max_length=MAX_TAGS)] | None = Field(
        None, examples=["spring,vip"]
    )
    type: InteractionType = "image_click"
    uid: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Bind the link to one LINE user; without it any uid may be appended",
    )


class Link(BaseModel):
    url: str
    sig: str


# ---------------------------------------------------------------- users, interactions


class ClickSummary(BaseModel):
    campaign_id: int
    line_id: str
    source_campaign_id: int
    display_name: str | None
    total_clicks: int
    tags: list[str]
    last_click_tag: str | None
    last_clicked_at: datetime


class Interaction(BaseModel):
    id: int
    event_id: str
    line_id: str | None
    campaign_id: int
    source_campaign_id: int
    interaction_type: str
    interaction_value: str
    tags: list[str]
    triggered_at: datetime
    user_agent: str | None
    counted: bool = Field(description="false: a bot's click kept out of the counts")
    agent_kind: Literal["person", "bot", "unknown"] | None = Field(
        description="what the User-Agent was classified as (unknown: none was sent); null"
        " when recorded without classification"
    )
    bot_kind: Literal["preview", "crawler", "tool"] | None
    bot_name: str | None
    device: str | None = Field(description="desktop, phone, tablet, bot or other")
    os_family: str | None
    browser_family: str | None
    referrer_host: str | None = Field(description="the Referer's host; direct without one")


class MemberUpdate(BaseModel):
    display_name: Text | None = Field(max_length=128)


class Member(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_uid: str
    display_name: str | None
    created_at: datetime
    updated_at: datetime
