"""Request and response models of the task-rollup API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from tallyhub.core.validation import INT64_MAX, Instant, NoNul, RowId, ShortText

Platform = Literal["youtube", "tiktok", "douyin"]
TaskStatus = Literal["active", "paused", "finished"]
ExternalId = Annotated[str, Field(min_length=1, max_length=100), NoNul()]
Url = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
MAX_BATCH = 1000
UUID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
ProjectId = Annotated[str, Field(pattern=UUID_PATTERN, description="A UUID")]


class PromoterCreate(BaseModel):
    external_id: ExternalId
    name: ShortText = ""
    agent_node: Annotated[str, Field(max_length=255), NoNul()] | None = None


class Promoter(PromoterCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime


class TaskCreate(BaseModel):
    project_id: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ),
    ] = Field(examples=["550e8400-e29b-41d4-a716-446655440000"])
    title: Annotated[str, Field(min_length=1, max_length=200), NoNul()]
    duration: int = Field(ge=1, le=3650, description="Days")
    callback_url: Url | None = Field(None, description="Where the daily rollup is sent")
    status: TaskStatus = "active"


class TaskUpdate(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200), NoNul()] | None = None
    duration: int | None = Field(None, ge=1, le=3650)
    callback_url: Url | None = None
    status: TaskStatus | None = None


class Task(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: str
    title: str
    duration: int
    callback_url: str | None
    status: TaskStatus
    owner_id: int | None
    created_at: datetime


class VerificationDetails(BaseModel):
    """What the bot verified; any count may be absent."""

    model_config = ConfigDict(extra="allow")

    view_count: Count | None = None
    like_count: Count | None = None
    comment_count: Count | None = None
    share_count: Count | None = None
    collect_count: Count | None = None


class CompletionCreate(BaseModel):
    external_id: ExternalId = Field(description="Idempotency key: sent again, nothing changes")
    task_id: RowId
    user_id: RowId
    platform: Platform
    submission_link: Annotated[str, Field(min_length=1, max_length=2000), NoNul()]
    verification_details: VerificationDetails | None = None
    completed_at: Instant


class CompletionBatch(BaseModel):
    items: list[CompletionCreate] = Field(min_length=1, max_length=MAX_BATCH)


class CompletionResult(BaseModel):
    external_id: str
    id: int
    status: Literal["created", "duplicate"] = Field(
        description="duplicate: this external_id was taken before; nothing changed"
    )


class CompletionResults(BaseModel):
    items: list[CompletionResult]
    created: int
    duplicates: int


class ScanRequest(BaseModel):
    date: date


class ScanResult(BaseModel):
    date: date
    tasks: int
    ok: int
    failed: int
    unchanged: int = Field(description="Rows that were already what the scan found")
    callbacks: int = Field(description="Callbacks put in the outbox")
    fetched: int = Field(description="Completions whose figures were fetched now")
    errors: dict[str, str] = Field(description="task id → why it failed")


class DailyStats(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task_id: int
    stats_date: date
    total_account_count: int
    completion_count: int
    yt_account_count: int
    yt_view_count: int
    yt_like_count: int
    yt_comment_count: int
    tt_account_count: int
    tt_view_count: int
    tt_like_count: int
    tt_comment_count: int
    dy_account_count: int
    dy_view_count: int
    dy_like_count: int
    dy_comment_count: int
    dy_share_count: int
    dy_collect_count: int
    webhook_sent: bool
    webhook_sent_at: datetime | None
    webhook_response: str | None
    retry_count: int
    webhook_message_id: str | None
    scanned_at: datetime


class AgentDaily(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agent_node: str = Field(description='"" for promoters without an agent')
    stats_date: date
    user_count: int
    completion_count: int
    yt_completion_count: int
    yt_view_count: int
    tt_completion_count: int
    tt_view_count: int
    dy_completion_count: int
    dy_view_count: int
    like_count: int


class Summary(BaseModel):
    """The overview tile: the latest scanned day over the tasks the user sees."""

    tasks: int
    latest_date: date | None
    completions: int
    accounts: int
    callbacks_pending: int
    callbacks_failed: int


def details_counts(details: VerificationDetails | None) -> dict[str, Any] | None:
    """The counts a completion brought, or None when it brought none (then fetched)."""
    if details is None:
        return None
    counts = {
        name: getattr(details, name)
        for name in ("view_count", "like_count", "comment_count", "share_count", "collect_count")
    }
    if all(value is None for value in counts.values()):
        return None
    return {name: value or 0 for name, value in counts.items()}
