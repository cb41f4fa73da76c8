"""TikHub's `fetch_one_video_by_share_url` for Douyin and TikTok: its envelope with the app
API's `aweme_detail`, the Bearer key (401), a rate limit answered 429 with `Retry-After`,
share URLs long or short.

Where the public contract is silent the simulator chooses: a removed video is HTTP 200 with
`aweme_detail: null` and a `filter_detail` (as the app API answers); a link that names no
video of the endpoint's platform is a 400."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from fastapi import FastAPI, Header, Request
from starlette.responses import JSONResponse

from tallyhub.core.simulation import Faults
from tallyhub.taskstats.simulator.contract import PACIFIC, TIKHUB_PATHS, tikhub_error
from tallyhub.taskstats.simulator.world import Video, VideoWorld


class Tikhub:
    """The two endpoints' shared answer: key, rate limit, link, envelope."""

    def __init__(self, world: VideoWorld, api_key: str, qps: float | None) -> None:
        self.world, self.api_key = world, api_key
        # The kit's rate limit, on TikHub's paths only (YouTube counts quota, not rate).
        self.limit = Faults(rate_limit_per_second=qps)
        self._serial = itertools.count(1)

    def answer(
        self, platform: str, router: str, share_url: str | None, auth: str | None
    ) -> JSONResponse:
        params = {"share_url": share_url}

        def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
            now = self.world.clock.now()
            return tikhub_error(
                status, message, router=router, params=params, now=now, headers=headers
            )

        scheme, _, token = (auth or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            return error(401, "Invalid or missing API key (Authorization: Bearer <token>)")
        verdict = self.limit.decide(router, lambda code, message: {})
        if verdict.response is not None:
            retry_after = verdict.response.headers.get("retry-after", "1")
            return error(429, "Too many requests", {"Retry-After": retry_after})
        if not share_url:
            return error(422, "share_url: field required")
        try:
            found, video_id = self.world.locate(share_url)
        except LookupError as failure:
            return error(400, f"Failed to resolve share_url: {failure}")
        if found != platform:
            return error(400, f"Not a {platform} share_url: {share_url[:200]}")
        return JSONResponse(self._envelope(router, params, platform, video_id))

    def _envelope(
        self, router: str, params: dict[str, Any], platform: str, video_id: str
    ) -> dict[str, Any]:
        now = self.world.clock.now()
        video = self.world.video(platform, video_id)
        serial = next(self._serial)
        return {
            "code": 200,
            "request_id": str(uuid.UUID(int=(self.world.seed << 64 | serial) % 2**128)),
            "message": "Request successful. This request will incur a charge.",
            "message_zh": "请求成功，本次请求将被计费。",
            "support": "Discord: https://discord.gg/aMEAS8Xsvz",
            "time": now.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S"),
            "time_stamp": int(now.timestamp()),
            "time_zone": "America/Los_Angeles",
            "router": router,
            "params": params,
            "data": _data(video, video_id, self.world.days()),
        }


def _data(video: Video | None, video_id: str, days: float) -> dict[str, Any]:
    if video is None:
        return {
            "status_code": 0,
            "aweme_detail": None,
            "filter_detail": {
                "aweme_id": video_id,
                "filter_reason": "status_deleted",
                "detail_msg": "作品已删除或不可见",
            },
        }
    return {"status_code": 0, "aweme_detail": _aweme_detail(video, days)}


def _aweme_detail(video: Video, days: float) -> dict[str, Any]:
    counts = video.counts(days)
    statistics = {
        "aweme_id": video.video_id,
        "play_count": counts["view"],
        "digg_count": counts["like"],
        "comment_count": counts["comment"],
        "share_count": counts["share"],
        "collect_count": counts["collect"],
        "download_count": counts["share"] // 3,
    }
    if video.platform == "douyin":
        share_url = f"https://www.iesdouyin.com/share/video/{video.video_id}/"
    else:
        share_url = f"https://www.tiktok.com/@{video.author}/video/{video.video_id}"
    return {
        "aweme_id": video.video_id,
        "desc": f"#{video.platform} video {video.video_id}",
        "author": {"uid": video.author_uid, "unique_id": video.author},
        "statistics": statistics,
        "share_url": share_url,
    }


def tikhub_routes(app: FastAPI, tikhub: Tikhub) -> None:
    for platform, path in TIKHUB_PATHS.items():
        _route(app, tikhub, platform, path)


def _route(app: FastAPI, tikhub: Tikhub, platform: str, path: str) -> None:
    summary = f"TikHub: one {platform} video by its share URL"

    @app.get(path, summary=summary, tags=["upstream"], name=f"{platform}_video")
    async def video(
        request: Request,
        share_url: str | None = None,
        authorization: str | None = Header(None),
    ) -> JSONResponse:
        return tikhub.answer(platform, request.url.path, share_url, authorization)
