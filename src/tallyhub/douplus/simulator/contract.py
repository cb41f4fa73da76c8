"""What the Ocean Engine open API v3.0 fixes for DOU+ and the simulator keeps: paths,
statuses, business codes, limits, the business error, and the upstream's units (dates and
times local to Shanghai, money in fen or yuan)."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the upstream's dates and times are local to it
LIST_PATH = "/open_api/v3.0/douplus/order/list/"
REPORT_PATH = "/open_api/v3.0/douplus/order/report/"
ACCESS_TOKEN_PATH = "/open_api/oauth2/access_token/"
REFRESH_TOKEN_PATH = "/open_api/oauth2/refresh_token/"

STATUSES = (
    "UNPAID",
    "AUDITING",
    "OFFLINE_AUDIT",
    "TIME_NO_REACH",
    "DELIVERING",
    "UNDELIVERIED",
    "DELIVERIED",
    "AUDIT_PAUSE",
    "WAIT_TO_START",
)
FINAL_STATUSES = frozenset({"DELIVERIED", "UNDELIVERIED", "OFFLINE_AUDIT"})

# Business codes (HTTP 200, `code != 0`).
TOO_FREQUENT = 40100
ACCESS_TOKEN_EXPIRED = 40102
REFRESH_TOKEN_EXPIRED = 40103
EMPTY_ACCESS_TOKEN = 40104
INVALID_ACCESS_TOKEN = 40105
INVALID_REFRESH_TOKEN = 40107
INVALID_GRANT_TYPE = 40108
BAD_PARAMETER = 40001
SYSTEM_ERROR = 50000

MAX_PAGE_SIZE = 100
MAX_FILTER_IDS = 100
MAX_SPAN_DAYS = 180  # end_time - begin_time, in days


class ApiError(Exception):
    """A business error: HTTP 200 with the envelope's `code` and `message`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def bad_parameter(parameter: str, problem: str) -> ApiError:
    return ApiError(BAD_PARAMETER, f"{parameter}: {problem}")


def local_time(instant: float) -> str:
    return datetime.fromtimestamp(instant, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def midnight(day: date) -> float:
    """The instant a Shanghai day starts, in epoch seconds."""
    return datetime.combine(day, time(0), tzinfo=SHANGHAI).timestamp()


def yuan(fen: int) -> float:
    """Fen as yuan: n / 100 is the double nearest to the 2-decimal number, and JSON writes a
    float by its shortest round-tripping repr, so the text reads exactly e.g. 123.45."""
    return fen / 100


def yuan_text(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"
