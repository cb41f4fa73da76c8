"""The call-center vendor's ("Guanke") API as we know it, in one place: paths, limits, codes,
grades and statuses, the envelope, and the two item schemas that the client reads and the
simulator writes. The vendor publishes no contract; a real vendor's field names are mapped
here and nowhere else.

Every answer is `{"code": 0, "message": …, "data": {"items": […], "total", "page",
"page_size"}}`; `code != 0` is an error. Call times come as China local time without an
offset ("YYYY-MM-DD HH:MM:SS"); `parse_call_time` is the one place they become aware UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

CHINA = ZoneInfo("Asia/Shanghai")  # the vendor's dates and call times are local to it

TASK_STATS = "/api/v1/tasks/stats"
CALL_RECORDS = "/api/v1/call-records"
API_KEY_HEADER = "X-Api-Key"
MAX_RECORD_PAGE_SIZE = 1000
MAX_TASK_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20  # what the vendor answers with when page_size is absent

# Envelope codes. A bad or missing key is HTTP 401 (with UNAUTHORIZED in the body); a bad
# parameter is HTTP 400 with BAD_PARAMETER and a message naming the parameter.
OK = 0
BAD_PARAMETER = 40001
UNAUTHORIZED = 40101
TOO_FREQUENT = 42901  # worth another attempt, like HTTP 429
SYSTEM_BUSY = 50001  # worth another attempt, like HTTP 5xx
RETRYABLE_CODES = frozenset({TOO_FREQUENT, SYSTEM_BUSY})

# Statuses of a call. Only a connected call is graded; every other call has grade "0".
CONNECTED = "connected"
NO_ANSWER = "no_answer"
BUSY = "busy"
FAILED = "failed"
STATUSES = (CONNECTED, NO_ANSWER, BUSY, FAILED)

# Intention grades: "9" and "1" are the 9-yuan and 1-yuan offers taken (the successes),
# "A" > "B" > "C" a decreasing interest, "0" none (and every call that did not connect).
GRADE_9 = "9"
GRADE_1 = "1"
GRADE_A = "A"
GRADE_B = "B"
GRADE_C = "C"
GRADE_NONE = "0"
GRADES = (GRADE_9, GRADE_1, GRADE_A, GRADE_B, GRADE_C, GRADE_NONE)
SUCCESS_GRADES = frozenset({GRADE_9, GRADE_1})
INTENTION_GRADES = frozenset({GRADE_9, GRADE_1, GRADE_A, GRADE_B, GRADE_C})

CALL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CALL_TIME_LENGTH = 19  # len("2026-03-01 12:00:00")

ItemT = TypeVar("ItemT")
DataT = TypeVar("DataT")


def parse_call_time(value: Any) -> datetime:
    """The vendor's "YYYY-MM-DD HH:MM:SS" (China local time) as an aware UTC datetime; an
    aware datetime passes through as UTC. Anything else is refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a call time needs a time zone (naive datetimes are ambiguous)")
        return value.astimezone(UTC)
    if not isinstance(value, str) or len(value) != _CALL_TIME_LENGTH or value[10] != " ":
        raise ValueError(f"call_time must read YYYY-MM-DD HH:MM:SS, not {value!r}")
    local = datetime.fromisoformat(value)  # fast, and strict enough once the shape is known
    return local.replace(tzinfo=CHINA).astimezone(UTC)


def format_call_time(instant: datetime) -> str:
    """An aware instant as the vendor writes it: China local time, no offset."""
    return instant.astimezone(CHINA).strftime(CALL_TIME_FORMAT)


def china_date(instant: datetime) -> date:
    """The vendor's date of an instant (its `date` parameter is a China date)."""
    return instant.astimezone(CHINA).date()


def day_start(day: date) -> datetime:
    """The instant a China date starts, in UTC."""
    return datetime.combine(day, time(0), tzinfo=CHINA).astimezone(UTC)


CallTime = Annotated[
    datetime,
    BeforeValidator(parse_call_time),
    PlainSerializer(format_call_time, return_type=str, when_used="json"),
]


class TaskStatsItem(BaseModel):
    """One task's figures of a date (the task dimension). As the seed found,
    `intention_number` merely repeats `called_number`: grades come from the call records."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    task_name: str
    callout_number: int = Field(ge=0)  # calls made
    called_number: int = Field(ge=0)  # calls connected
    success_number: int = Field(ge=0)  # calls graded 9 or 1
    intention_number: int = Field(ge=0)
    intention_number2: int = Field(ge=0)  # connected calls with any interest (grade ≠ 0)


class CallRecord(BaseModel):
    """One call (the call-record dimension). `call_time` is aware UTC in Python and the
    vendor's China-local text in JSON, so `model_dump(mode="json")` is the vendor's row."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    task_id: str
    agent_id: str
    call_time: CallTime
    duration: int = Field(ge=0)  # seconds
    status: str  # one of STATUSES; kept as text so that a new vendor status is not fatal
    grade: str  # one of GRADES, same reason


class Page(BaseModel, Generic[ItemT]):
    """The `data` of a list answer: one page of items and the vendor's count of them all."""

    items: list[ItemT]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    page_size: int = Field(ge=1)

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.page_size)


class EnvelopeHead(BaseModel):
    """What every answer starts with; `code != OK` is an error. Reading only this skips
    `data` without building it."""

    code: int
    message: str = ""


class Envelope(EnvelopeHead, Generic[DataT]):
    """A whole answer; `data` is a `Page` when `code` is OK."""

    data: DataT


def envelope(
    data: dict[str, Any] | None, *, code: int = OK, message: str = "success"
) -> dict[str, Any]:
    """An answer as the vendor writes it."""
    return {"code": code, "message": message, "data": data}


def page_data(
    items: list[dict[str, Any]], *, total: int, page: int, page_size: int
) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "page_size": page_size}
