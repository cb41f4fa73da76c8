"""Settings of the task-rollup domain: `TALLYHUB_TASKSTATS__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tallyhub.core.config import CoreSettings, section
from tallyhub.core.upstream import UpstreamSettings

NAME = "taskstats"


def _video_upstream() -> UpstreamSettings:
    # TikHub answers 429 above ~10 requests a second; YouTube counts quota, not rate.
    return UpstreamSettings(rate_per_second=8.0, rate_burst=8, page_concurrency=4)


class TaskstatsSettings(BaseModel):
    # The name the partner knows this site by (the callbacks' `site_name`).
    site_name: str = "TallyHub"
    youtube_base_url: str = "https://www.googleapis.com"
    youtube_api_key: str = ""
    tikhub_base_url: str = "https://api.tikhub.io"
    tikhub_api_key: str = ""
    # Where Douyin short links (https://v.douyin.com/<code>/) are resolved: their 302 names
    # the video. A simulator stands in for it in tests and `make run`.
    douyin_short_link_base_url: str = "https://v.douyin.com"
    upstream: UpstreamSettings = Field(default_factory=_video_upstream)
    # Video statistics fetched at once by a scan.
    fetch_concurrency: int = Field(default=4, ge=1)
    # `make run`: start the video simulator and a callback receiver in-process, seed tasks
    # and completions for yesterday and scan them, so the callbacks' log fills by itself.
    simulator: bool = False


def taskstats_settings(settings: CoreSettings) -> TaskstatsSettings:
    return section(settings, NAME, TaskstatsSettings)
