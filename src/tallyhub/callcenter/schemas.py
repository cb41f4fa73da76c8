"""Request and response models of the call-center statistics API. Its answers keep the
seed's envelope (`{"success": true, "data": …}`, `{"success": false, "error": "…"}`), which
the call-center page of the seed reads."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


class Failure(BaseModel):
    success: Literal[False] = False
    error: str


class DayRequest(BaseModel):
    date: date


class GradeRefresh(BaseModel):
    date: date
    accept_fewer: bool = Field(
        False, description="Replace the cache even if fewer records were read than it holds"
    )


class GradeStats(BaseModel):
    date: date
    grade_9: int
    grade_1: int
    total_success: int
    total_records: int
    connected: int
    grades: dict[str, int] = Field(description="Every grade's count")
    upstream_total: int = Field(description="The largest total the vendor gave while read")
    from_cache: bool
    elapsed_time: float = Field(description="Seconds the computation took")
    calculated_at: datetime
    sync_type: str


class TaskStats(BaseModel):
    date: date
    total_tasks: int
    callout_number: int
    called_number: int
    success_number: int
    connected_rate: Decimal
    from_cache: bool
    elapsed_time: float
    calculated_at: datetime
    sync_type: str


class Day(BaseModel):
    date: date
    total_tasks: int | None
    callout_number: int | None
    called_number: int | None
    success_number: int | None
    connected_rate: Decimal | None
    grade_9: int | None
    grade_1: int | None
    total_success: int | None
    total_records: int | None
    tasks_calculated_at: datetime | None
    grades_calculated_at: datetime | None


class Agent(BaseModel):
    agent_id: str
    calls: int
    connected: int
    grade_9: int
    grade_1: int


class Hour(BaseModel):
    hour: int = Field(description="Hour of day, server time zone")
    calls: int
    connected: int
    grade_9: int
    grade_1: int


def shown(row: Any, model: type[BaseModel], from_cache: bool) -> Any:
    values = {name: getattr(row, name) for name in model.model_fields if name != "from_cache"}
    return model(**values, from_cache=from_cache)
