"""YouTube Data API v3 `videos.list` with `part=statistics`: counts as strings, unknown or
removed ids simply absent, at most 50 ids, the key, and the daily quota (one unit a call).

Where the public contract is silent the simulator chooses: more than 50 ids is a 400
`invalidFilters`; a part other than `id` and `statistics` is a 400 `unknownPart`."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse

from tallyhub.taskstats.simulator.contract import (
    MAX_YOUTUBE_IDS,
    YOUTUBE_PARTS,
    YOUTUBE_PATH,
    bad_request,
    key_invalid,
    key_missing,
    quota_exceeded,
)
from tallyhub.taskstats.simulator.world import Video, VideoWorld


def _etag(content: Any) -> str:
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest[:20]).decode().rstrip("=")


def _statistics(video: Video, days: float) -> dict[str, str]:
    counts = video.counts(days)
    statistics = {"viewCount": str(counts["view"])}
    if not video.likes_hidden:
        statistics["likeCount"] = str(counts["like"])
    statistics["favoriteCount"] = "0"
    if not video.comments_off:
        statistics["commentCount"] = str(counts["comment"])
    return statistics


def _item(video: Video, days: float, parts: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"kind": "youtube#video", "id": video.video_id}
    if "statistics" in parts:
        item["statistics"] = _statistics(video, days)
    item["etag"] = _etag(item)
    return item


def _refusal(
    world: VideoWorld, api_key: str, part: str | None, id_: str | None, key: str | None
) -> JSONResponse | None:
    """The error YouTube answers before looking at any video, if any."""
    if not key:
        return key_missing()
    if key != api_key:
        return key_invalid()
    if not world.spend_quota():
        return quota_exceeded()
    if not part:
        return bad_request("required", "Required parameter: part")
    unknown = set(part.split(",")) - YOUTUBE_PARTS
    if unknown:
        return bad_request("unknownPart", ",".join(sorted(unknown)))
    if not id_:
        return bad_request(
            "missingRequiredParameter", "No filter selected. Expected one of: myRating, chart, id"
        )
    if len(id_.split(",")) > MAX_YOUTUBE_IDS:
        return bad_request(
            "invalidFilters", f"The request specifies more than {MAX_YOUTUBE_IDS} video ids."
        )
    return None


def youtube_routes(app: FastAPI, world: VideoWorld, api_key: str) -> None:
    @app.get(YOUTUBE_PATH, summary="YouTube videos.list (statistics)", tags=["upstream"])
    async def videos(
        part: str | None = None, id: str | None = None, key: str | None = None
    ) -> JSONResponse:
        refusal = _refusal(world, api_key, part, id, key)
        if refusal is not None:
            return refusal
        parts = set((part or "").split(","))
        days = world.days()
        items = []
        for video_id in dict.fromkeys((id or "").split(",")):
            video = world.video("youtube", video_id.strip())
            if video is not None:
                items.append(_item(video, days, parts))
        body = {
            "kind": "youtube#videoListResponse",
            "etag": _etag(items),
            "items": items,
            "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
        }
        return JSONResponse(body)
