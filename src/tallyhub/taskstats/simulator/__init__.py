"""A faithful local fake of the upstreams that give video statistics: the YouTube Data API
v3 (`videos.list`, statistics as strings, 50 ids a call, key, daily quota), TikHub's
Douyin and TikTok `fetch_one_video_by_share_url` (envelope, Bearer key, 429 above its rate)
and the short-link redirects of v.douyin.com and vm.tiktok.com.

Counts are drawn per (platform, video id) from the seed and grow with the simulated clock,
so any id a test names is a video with plausible figures, and `GET /__sim/video?link=`
(or `app.state.videos.truth(link)`) says what a correct client must read.

The package, by topic: `contract` (paths, formats, error bodies), `world` (videos, short
links, removals, quota), `youtube` and `tikhub` (the upstreams' routes) and `app` (short
links, controls and `create_app`).
"""

from __future__ import annotations

from tallyhub.taskstats.simulator.app import (
    LinkRequest,
    QuotaRequest,
    RateRequest,
    ShortLinkRequest,
    create_app,
)
from tallyhub.taskstats.simulator.contract import (
    MAX_YOUTUBE_IDS,
    TIKHUB_PATHS,
    YOUTUBE_PATH,
)
from tallyhub.taskstats.simulator.tikhub import Tikhub
from tallyhub.taskstats.simulator.world import COUNTS, SHAPES, Video, VideoWorld, draw

__all__ = [
    "COUNTS",
    "MAX_YOUTUBE_IDS",
    "SHAPES",
    "TIKHUB_PATHS",
    "YOUTUBE_PATH",
    "LinkRequest",
    "QuotaRequest",
    "RateRequest",
    "ShortLinkRequest",
    "Tikhub",
    "Video",
    "VideoWorld",
    "create_app",
    "draw",
]
