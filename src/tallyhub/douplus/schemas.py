"""Request and response models of the DOU+ API. Money is yuan as a decimal string
("123.45"), never a float; tokens never leave the server."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tallyhub.core.validation import INT32_MAX, NoNul, RowId, ShortText

Mode = Literal["full", "incremental"]
Period = Literal["today", "7d", "30d", "all"]
OrderSort = Literal[
    "-order_create_time", "order_create_time", "-stat_cost", "-total_play", "-custom_like"
]
VideoSort = Literal["total_cost", "total_play", "play_per_100_cost"]
SecUid = Annotated[
    str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True), NoNul()
]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=2000), NoNul()]
Money = Annotated[Decimal, Field(description="Yuan, a decimal string", examples=["123.45"])]


# ---------------------------------------------------------------- accounts


class AccountCreate(BaseModel):
    aweme_sec_uid: SecUid
    nickname: ShortText | None = None
    access_token: Secret
    refresh_token: Secret
    expires_in: int = Field(gt=0, le=INT32_MAX, description="Seconds the access token lives")
    refresh_token_expires_in: int | None = Field(None, gt=0, le=INT32_MAX)


class StreamState(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stream: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    last_count: int


class Account(BaseModel):
    id: int
    aweme_sec_uid: str
    nickname: str
    status: Literal["active", "needs_reauth", "disabled"]
    status_reason: str | None
    owner_id: int | None
    order_count: int
    expires_at: datetime = Field(description="When the stored access token expires")
    sync_requested: Mode | None
    created_at: datetime
    streams: list[StreamState] = Field(description="Each sync stream's last success and try")


class AuthorizeUrl(BaseModel):
    url: str
    state: str = Field(description="Signed; valid 15 minutes, for the user who asked")


class OAuthCallback(BaseModel):
    auth_code: Annotated[str, StringConstraints(min_length=1, max_length=500), NoNul()]
    state: Annotated[str, StringConstraints(min_length=1, max_length=4000), NoNul()]


# ---------------------------------------------------------------- sync


class SyncRequest(BaseModel):
    account_id: RowId | None = Field(None, description="One account; all you see if omitted")
    mode: Mode = "incremental"


class SyncStarted(BaseModel):
    run_id: int | None = Field(
        description="The `douplus.sync_requested` run started for it (follow it at "
        "GET /api/jobs/runs/{id}); null when a run had just started, which takes it up"
    )
    mode: Mode
    account_ids: list[int]


class SyncStatus(BaseModel):
    accounts: list[Account]
    running: list[str] = Field(description="DOU+ jobs running or queued now")


# ---------------------------------------------------------------- orders and videos


class Figures(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stat_cost: Money
    total_play: int
    custom_like: int
    dy_share: int
    dy_comment: int
    dp_target_convert_cnt: int
    custom_convert_cost: Money
    play_duration_5s_rank: Decimal


class Order(Figures):
    order_id: str
    account_id: int
    item_id: str
    task_id: str
    title: str
    status: str
    budget: Money
    order_create_time: datetime
    stat_time: datetime | None = Field(description="The window its figures are from")
    sync_version: int
    last_sync_time: datetime


class Window(Figures):
    stat_time: datetime


class OrderDetail(Order):
    windows: list[Window] = Field(description="Its figures per 5-minute window, oldest first")


class Video(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_id: str
    account_id: int
    title: str
    stat_time: datetime
    order_count: int
    total_cost: Money
    total_play: int
    total_like: int
    total_share: int
    total_comment: int
    total_convert: int
    play_per_100_cost: Decimal
    like_rate: Decimal
    share_rate: Decimal
    avg_convert_cost: Money
    avg_5s_rank: Decimal


class VideoWindow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stat_time: datetime
    order_count: int
    total_cost: Money
    total_play: int


class AccountStats(BaseModel):
    """The orders placed in the period (by their creation day, China time) and their
    figures so far."""

    account_id: int
    period: Period
    start: date | None = Field(description="First day of the period; null for all")
    end: date
    order_count: int
    stat_cost: Money
    total_play: int
    custom_like: int
    dy_share: int
    dy_comment: int
    dp_target_convert_cnt: int


class Summary(BaseModel):
    """The DOU+ overview tile: accounts and today's orders over what the user sees."""

    accounts: int
    needs_reauth: int
    orders_today: int
    cost_today: Money
    plays_today: int
    last_sync_at: datetime | None
