"""Request and response models of the leads API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tallyhub.core.daywindow import MAX_ZONE_LENGTH, check_zone, parse_reset_time
from tallyhub.core.validation import Instant, Int32, RowId, Text

DedupScope = Literal["current", "global"]
PlatformType = Literal["line", "line_business"]
OnlineStatus = Literal["online", "offline"]


def _check_reset(value: str | None) -> str | None:
    if value is not None:
        parse_reset_time(value)
    return value


# ---------------------------------------------------------------- groups


MAX_DESCRIPTION_LENGTH = 2000


class GroupCreate(BaseModel):
    remark: Text = Field("", max_length=200)
    description: Text = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    is_active: bool = True
    dedup_scope: DedupScope = "current"
    reset_time: str = Field(
        "00:00", examples=["06:00"], description="Local HH:MM when today starts"
    )
    timezone: str | None = Field(
        None, max_length=MAX_ZONE_LENGTH, examples=["Asia/Tokyo"], description="IANA zone"
    )
    account_limit: Int32 | None = None
    owner_id: RowId | None = Field(None, description="Admins may create for another user")

    _reset = field_validator("reset_time")(_check_reset)
    _zone = field_validator("timezone")(check_zone)


class GroupUpdate(BaseModel):
    remark: Text | None = Field(None, max_length=200)
    description: Text | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)
    is_active: bool | None = None
    dedup_scope: DedupScope | None = None
    reset_time: str | None = None
    timezone: str | None = Field(None, max_length=MAX_ZONE_LENGTH)
    account_limit: Int32 | None = None

    _reset = field_validator("reset_time")(_check_reset)
    _zone = field_validator("timezone")(check_zone)


class Group(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    activation_code: str | None = Field(
        description="The desktop client's credential; null for read-only users (viewers)"
    )
    remark: str
    description: str
    is_active: bool
    dedup_scope: DedupScope
    reset_time: str
    timezone: str
    account_limit: int | None
    owner_id: int | None
    created_at: datetime
    last_login_at: datetime | None


class GroupWithStats(Group):
    total_accounts: int = 0
    online_accounts: int = 0
    line_accounts: int = 0
    line_business_accounts: int = 0
    today_incoming: int = 0
    total_incoming: int = 0
    duplicate_incoming: int = 0
    business_date: date


class LeadsSummary(BaseModel):
    """The overview's leads figures, over the groups the user may see."""

    groups: int
    today_incoming: int = Field(description="each group's own business day")
    yesterday_same_time: int = Field(
        description="the previous business day's leads up to the same time into that day"
    )
    today_duplicates: int
    total_accounts: int
    online_accounts: int


class GroupDaily(BaseModel):
    business_date: date
    incoming: int
    duplicate_incoming: int


# ---------------------------------------------------------------- accounts


class AccountWithStats(BaseModel):
    id: int
    group_id: int
    line_id: str
    display_name: str | None
    platform_type: PlatformType
    online_status: OnlineStatus
    last_online_time: datetime | None
    created_at: datetime
    today_incoming: int
    total_incoming: int
    duplicate_incoming: int


class AccountReport(BaseModel):
    line_id: Text = Field(min_length=1, max_length=128)
    display_name: Text | None = Field(None, max_length=200)
    platform_type: PlatformType = "line"
    online_status: OnlineStatus = "offline"


class AccountSync(BaseModel):
    accounts: list[AccountReport] = Field(max_length=1000)


class AccountSyncResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    total_accounts: int


class StatusChange(BaseModel):
    online_status: OnlineStatus


class StatusChangeResult(BaseModel):
    line_id: str
    online_status: OnlineStatus
    changed: bool
    online_accounts: int


# ---------------------------------------------------------------- incoming


class IncomingReport(BaseModel):
    account_line_id: Text = Field(min_length=1, max_length=128)
    incoming_line_id: Text = Field(min_length=1, max_length=128)
    event_id: Text | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="The client's id for this lead; a retry with the same id counts once "
        "(send one: a lead answered 503 may still have been counted)",
    )
    incoming_time: Instant | None = Field(
        None, description="When it happened (1970 to 2200, with its offset); default now"
    )


class IncomingBatch(BaseModel):
    events: list[IncomingReport] = Field(min_length=1, max_length=1000)


class IncomingResult(BaseModel):
    event_id: str
    is_duplicate: bool
    today_incoming: int
    total_incoming: int


class IncomingBatchItem(BaseModel):
    event_id: str | None
    ok: bool
    result: IncomingResult | None = None
    error: dict[str, str] | None = None


class IncomingBatchResult(BaseModel):
    results: list[IncomingBatchItem]


class IncomingLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    line_account_id: int
    incoming_line_id: str
    is_duplicate: bool
    incoming_time: datetime
    business_date: date


class ClientSummary(BaseModel):
    group_id: int
    remark: str
    dedup_scope: DedupScope
    reset_time: str
    timezone: str
    account_limit: int | None
    business_date: date
    total_accounts: int
    online_accounts: int
    today_incoming: int
    total_incoming: int
    duplicate_incoming: int
