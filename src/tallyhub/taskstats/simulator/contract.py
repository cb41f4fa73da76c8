"""What the upstreams fix and the simulator keeps: paths, id formats, limits, and the error
bodies of Google APIs (`{"error": {"code", "message", "errors": [{"reason", "domain"}]}}`)
and of TikHub (`{"detail": {"code", "message", …}}`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import JSONResponse

YOUTUBE_PATH = "/youtube/v3/videos"
TIKHUB_PATHS = {
    "douyin": "/api/v1/douyin/app/v3/fetch_one_video_by_share_url",
    "tiktok": "/api/v1/tiktok/app/v3/fetch_one_video_by_share_url",
}
PLATFORMS = ("youtube", "tiktok", "douyin")
MAX_YOUTUBE_IDS = 50  # ids per videos.list call
YOUTUBE_PARTS = frozenset({"id", "statistics"})  # the parts this simulator answers
PACIFIC = ZoneInfo("America/Los_Angeles")  # YouTube's quota day ends at midnight Pacific

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
AWEME_ID = re.compile(r"[0-9]{6,20}")
SHORT_HOSTS = {"v.douyin.com": "douyin", "vm.tiktok.com": "tiktok", "vt.tiktok.com": "tiktok"}


def google_error(
    code: int, reason: str, domain: str, message: str, *, status: str | None = None
) -> JSONResponse:
    """A Google API error as YouTube answers it."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
    }
    if status is not None:
        error["status"] = status
    return JSONResponse({"error": error}, status_code=code)


def quota_exceeded() -> JSONResponse:
    message = (
        "The request cannot be completed because you have exceeded your "
        '<a href="/youtube/v3/getting-started#quota">quota</a>.'
    )
    return google_error(403, "quotaExceeded", "youtube.quota", message)


def key_invalid() -> JSONResponse:
    message = "API key not valid. Please pass a valid API key."
    return google_error(400, "keyInvalid", "usageLimits", message, status="INVALID_ARGUMENT")


def key_missing() -> JSONResponse:
    message = (
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."
    )
    return google_error(403, "forbidden", "global", message, status="PERMISSION_DENIED")


def bad_request(reason: str, message: str) -> JSONResponse:
    return google_error(400, reason, "youtube.parameter", message, status="INVALID_ARGUMENT")


def tikhub_error(
    status: int,
    message: str,
    *,
    router: str,
    params: dict[str, Any],
    now: datetime,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A TikHub error: FastAPI's `detail`, holding TikHub's own fields."""
    detail = {
        "code": status,
        "message": message,
        "support": "Discord: https://discord.gg/aMEAS8Xsvz",
        "time": now.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S"),
        "router": router,
        "params": params,
    }
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
