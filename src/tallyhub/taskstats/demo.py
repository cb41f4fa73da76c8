"""`make run`'s task rollups: the video simulator and a partner's callback receiver,
started inside `serve`; three tasks of the demo admin with promoters of two agents and
completions of the last three days (some with their figures, some to be fetched, a
Douyin short link among them); then the days are scanned, so the task page shows rows and
the webhook log shows delivered callbacks. Idempotent: ids are fixed, and a rescan of
unchanged figures sends nothing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role, User
from tallyhub.core.daywindow import zone
from tallyhub.core.runtime import Runtime
from tallyhub.core.simulation import running
from tallyhub.taskstats import jobs, schemas, service, simulator
from tallyhub.taskstats.config import TaskstatsSettings
from tallyhub.taskstats.models import Task

log = structlog.get_logger(__name__)

PROJECTS = (
    ("6f1c2d3e-0000-4000-8000-000000000001", "短剧《逆袭》推广", 30),
    ("6f1c2d3e-0000-4000-8000-000000000002", "春季新品种草", 14),
    ("6f1c2d3e-0000-4000-8000-000000000003", "Brand film relay", 7),
)
AGENTS = ("agent-east", "agent-west")
DAYS = 3


def _receiver() -> FastAPI:
    """The partner's side: takes every callback (a real one verifies the signature)."""
    app = FastAPI()

    @app.post("/x2c/callback")
    async def callback(request: Request) -> Response:
        log.info("demo.callback_received", webhook_id=request.headers.get("webhook-id"))
        return Response(status_code=204)

    return app


@asynccontextmanager
async def simulated(
    runtime: Runtime, settings: TaskstatsSettings
) -> AsyncIterator[TaskstatsSettings]:
    """The video simulator and the receiver, served while the block runs; the settings
    pointed at them."""
    videos = simulator.create_app(seed=2)
    with running(videos) as url, running(_receiver()) as receiver:
        log.info("taskstats.simulator_started", url=url, receiver=receiver)
        pointed = settings.model_copy(
            update={
                "youtube_base_url": url,
                "youtube_api_key": "sim-youtube-key",
                "tikhub_base_url": url,
                "tikhub_api_key": "sim-tikhub-key",
                "douyin_short_link_base_url": url,
                "site_name": settings.site_name or "TallyHub demo",
            }
        )
        await _seed(runtime, f"{receiver}/x2c/callback", videos.state.videos)
        yield pointed


async def _owner(session: AsyncSession) -> Principal | None:
    user = await session.scalar(select(User).where(User.username == "demo"))
    if user is None:
        user = await session.scalar(select(User).where(User.role == Role.admin).order_by(User.id))
    return None if user is None else Principal(user.id, user.username, user.role)


async def _seed(runtime: Runtime, callback_url: str, videos: Any) -> None:
    async def seed(session: AsyncSession) -> int:
        owner = await _owner(session)
        if owner is None:
            log.warning("taskstats.demo_no_owner", hint="run `tallyhub demo seed` first")
            return 0
        tasks = [await _task(session, owner, p, callback_url) for p in PROJECTS]
        promoters = [(await service.save_promoter(session, _promoter(n)))[0].id for n in range(12)]
        items = _completions(runtime, [t.id for t in tasks], promoters, videos)
        result = await service.record_completions(session, owner, items, runtime.settings.timezone)
        return result.created

    created = await runtime.db.run(seed)
    log.info("taskstats.demo_seeded", completions=created)


async def _task(
    session: AsyncSession, owner: Principal, project: tuple[str, str, int], url: str
) -> Task:
    project_id, title, duration = project
    task = await session.scalar(select(Task).where(Task.project_id == project_id))
    data = schemas.TaskCreate(project_id=project_id, title=title, duration=duration)
    if task is None:
        task = await service.create_task(session, owner, data)
    task.callback_url = url  # the receiver's address changes with each start
    return task


def _promoter(n: int) -> schemas.PromoterCreate:
    return schemas.PromoterCreate(
        external_id=f"demo-user-{n:02d}", name=f"推广员 {n:02d}", agent_node=AGENTS[n % 2]
    )


def _link(rng: random.Random, platform: str, videos: Any) -> str:
    if platform == "youtube":
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
        return "https://www.youtube.com/watch?v=" + "".join(rng.choice(alphabet) for _ in range(11))
    video_id = str(rng.randrange(7_000_000_000_000_000_000, 7_999_999_999_999_999_999))
    if platform == "tiktok":
        return f"https://www.tiktok.com/@demo/video/{video_id}"
    if rng.random() < 0.3:
        return str(videos.short_link("douyin", video_id))
    return f"https://www.douyin.com/video/{video_id}"


def _completions(
    runtime: Runtime, tasks: list[int], promoters: list[int], videos: Any
) -> list[schemas.CompletionCreate]:
    rng = random.Random(20261206)
    today = datetime.now(zone(runtime.settings.timezone)).replace(hour=12, minute=0, second=0)
    items = []
    for n in range(90):
        platform = rng.choice(["youtube", "tiktok", "douyin"])
        details = None
        if rng.random() < 0.5:
            details = schemas.VerificationDetails(
                view_count=rng.randrange(200, 20_000), like_count=rng.randrange(5, 900)
            )
        day = today - timedelta(days=1 + n % DAYS)
        items.append(
            schemas.CompletionCreate(
                external_id=f"demo-completion-{n:03d}",
                task_id=rng.choice(tasks),
                user_id=rng.choice(promoters),
                platform=platform,
                submission_link=_link(rng, platform, videos),
                verification_details=details,
                completed_at=day.astimezone(UTC) + timedelta(minutes=n),
            )
        )
    return items


async def scan_yesterday(runtime: Runtime) -> None:
    """Scan the demo's days (oldest first); their callbacks go out at once."""
    latest = jobs.yesterday(runtime)
    for back in range(DAYS - 1, -1, -1):
        outcome = await jobs.scan_day(runtime, latest - timedelta(days=back))
        log.info(
            "taskstats.demo_scanned", **{k: v for k, v in outcome.counts().items() if k != "errors"}
        )
