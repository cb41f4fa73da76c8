"""The simulator's own routes, the short-link redirects (the v.douyin.com and vm.tiktok.com
stand-in) and the `/__sim/` controls of the video world, and `create_app`, which puts them
with YouTube's and TikHub's routes on the shared simulator kit's app."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse

from tallyhub.core.simulation import Faults, SimClock, simulator_app
from tallyhub.taskstats.simulator.tikhub import Tikhub, tikhub_routes
from tallyhub.taskstats.simulator.world import VideoWorld
from tallyhub.taskstats.simulator.youtube import youtube_routes


class LinkRequest(BaseModel):
    link: str


class ShortLinkRequest(BaseModel):
    platform: Literal["youtube", "tiktok", "douyin"]
    video_id: str


class QuotaRequest(BaseModel):
    """videos.list calls YouTube answers before `quotaExceeded` (null: no limit)."""

    remaining: int | None = Field(..., ge=0)


class RateRequest(BaseModel):
    """Requests a second TikHub answers before 429 (null: no limit)."""

    qps: float | None = Field(..., gt=0)


def _located(world: VideoWorld, link: str) -> Any:
    try:
        return world.truth(link)
    except LookupError as error:
        raise HTTPException(404, str(error)) from error


def _video_controls(app: FastAPI, world: VideoWorld) -> None:
    tags: list[str | Enum] = ["simulator control"]

    @app.get("/__sim/video", summary="What the upstream shows for a link's video", tags=tags)
    async def video(link: str) -> dict[str, Any]:
        truth: dict[str, Any] = _located(world, link)
        return truth

    @app.post("/__sim/videos/removed", summary="Delete a link's video", tags=tags)
    async def remove(body: LinkRequest) -> dict[str, Any]:
        _located(world, body.link)
        world.remove(body.link)
        truth: dict[str, Any] = world.truth(body.link)
        return truth

    @app.post("/__sim/short-links", summary="A short link resolving to a video", tags=tags)
    async def short_link(body: ShortLinkRequest) -> dict[str, str]:
        try:
            return {"short_link": world.short_link(body.platform, body.video_id)}
        except ValueError as error:
            raise HTTPException(422, str(error)) from error


def _limit_controls(app: FastAPI, world: VideoWorld, tikhub: Tikhub) -> None:
    tags: list[str | Enum] = ["simulator control"]

    @app.get("/__sim/youtube/quota", summary="YouTube calls left today", tags=tags)
    async def quota() -> dict[str, Any]:
        return world.quota_view()

    @app.post("/__sim/youtube/quota", summary="Set the YouTube calls left today", tags=tags)
    async def set_quota(body: QuotaRequest) -> dict[str, Any]:
        return world.set_quota(body.remaining)

    @app.get("/__sim/tikhub/rate", summary="TikHub's rate limit", tags=tags)
    async def rate() -> dict[str, float | None]:
        return {"qps": tikhub.limit.rate_limit_per_second}

    @app.post("/__sim/tikhub/rate", summary="Set TikHub's rate limit", tags=tags)
    async def set_rate(body: RateRequest) -> dict[str, float | None]:
        tikhub.limit.rate_limit_per_second = body.qps
        return {"qps": tikhub.limit.rate_limit_per_second}


def _short_link_route(app: FastAPI, world: VideoWorld) -> None:
    @app.get("/{code}/", summary="A short link's redirect to its video", tags=["upstream"])
    async def short_link(code: str) -> RedirectResponse:
        try:
            return RedirectResponse(world.redirect(code), status_code=302)
        except LookupError as error:
            raise HTTPException(404, str(error)) from error


def create_app(
    *,
    seed: int = 1,
    clock: SimClock | None = None,
    youtube_key: str = "sim-youtube-key",
    tikhub_key: str = "sim-tikhub-key",
    tikhub_qps: float | None = 10.0,
) -> FastAPI:
    """The video-statistics simulator: YouTube, TikHub and short links on one app. Its
    world is `app.state.videos`, its clock `app.state.clock`, its faults `app.state.faults`
    (every path), TikHub's own rate limit `app.state.tikhub.limit`."""
    clock = clock or SimClock()
    world = VideoWorld(seed=seed, clock=clock)
    tikhub = Tikhub(world, tikhub_key, tikhub_qps)
    app = simulator_app(
        "YouTube and TikHub video statistics simulator", clock=clock, faults=Faults()
    )
    app.state.videos, app.state.tikhub = world, tikhub
    youtube_routes(app, world, youtube_key)
    tikhub_routes(app, tikhub)
    _video_controls(app, world)
    _limit_controls(app, world, tikhub)
    _short_link_route(app, world)
    return app
