"""What the task-rollup tests share: the video simulator and a callback receiver over real
HTTP, the settings that point at them, and the bot's inputs through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response

from tallyhub.core.auth import Role
from tallyhub.core.simulation import running
from tallyhub.taskstats import simulator
from tests.conftest import Harness, TestDatabase
from tests.factories import bearer, user_token

DAY = date(2024, 12, 9)
SHANGHAI = ZoneInfo("Asia/Shanghai")
FAST = {
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.02,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
}


@dataclass
class Partner:
    """The partner's receiver: what it got, and what it answers (in turn, then 200)."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@dataclass
class World:
    videos_url: str
    videos: Any  # the simulator's VideoWorld
    app: Any
    partner: Partner

    def overrides(self, **extra: Any) -> dict[str, Any]:
        return {
            "taskstats": {
                "site_name": "DramaRelayBot",
                "youtube_base_url": self.videos_url,
                "youtube_api_key": "sim-youtube-key",
                "tikhub_base_url": self.videos_url,
                "tikhub_api_key": "sim-tikhub-key",
                "douyin_short_link_base_url": self.videos_url,
                "upstream": FAST,
                **extra,
            }
        }

    def requests(self) -> int:
        total: int = self.app.state.requests.snapshot()["total"]
        return total


@contextmanager
def world() -> Iterator[World]:
    partner = Partner()
    receiver = FastAPI()

    @receiver.post("/callback")
    async def callback(request: Request) -> Response:
        partner.received.append((dict(request.headers), await request.body()))
        return Response(status_code=partner.statuses.pop(0) if partner.statuses else 200)

    app = simulator.create_app(seed=3, tikhub_qps=None)
    with running(app) as url, running(receiver) as partner_base:
        partner.url = f"{partner_base}/callback"
        yield World(url, app.state.videos, app, partner)


@asynccontextmanager
async def app_in_world(
    harness_factory: Any, db: TestDatabase
) -> AsyncIterator[tuple[World, Harness, dict[str, str]]]:
    """The video simulator and a partner's receiver (`world`), an app on `db` pointed at
    them, and an admin's Authorization header."""
    with world() as w:
        async with harness_factory(db, **w.overrides()) as h:
            yield w, h, bearer(await user_token(h.runtime, "admin", Role.admin))


def at(day: date, hour: int = 10) -> str:
    """An instant of `day` in the server's time zone (Asia/Shanghai), ISO with offset."""
    return datetime.combine(day, time(hour), SHANGHAI).isoformat()


async def promoters(h: Harness, headers: dict[str, str], count: int, agent: str = "A") -> list[int]:
    ids = []
    for n in range(count):
        made = await h.client.post(
            "/api/taskstats/users",
            json={"external_id": f"{agent}-{n}", "name": f"p{n}", "agent_node": agent},
            headers=headers,
        )
        assert made.status_code in (200, 201), made.text
        ids.append(made.json()["id"])
    return ids


async def task(h: Harness, headers: dict[str, str], callback_url: str | None, **kw: Any) -> int:
    made = await h.client.post(
        "/api/taskstats/tasks",
        json={
            "project_id": kw.pop("project_id", "550e8400-e29b-41d4-a716-446655440000"),
            "title": kw.pop("title", "task"),
            "duration": kw.pop("duration", 30),
            "callback_url": callback_url,
            **kw,
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    task_id: int = made.json()["id"]
    return task_id


async def complete(h: Harness, headers: dict[str, str], items: list[dict[str, Any]]) -> Any:
    done = await h.client.post("/api/taskstats/completions", json={"items": items}, headers=headers)
    assert done.status_code == 200, done.text
    return done.json()


def item(
    n: int | str,
    task_id: int,
    user_id: int,
    platform: str,
    link: str,
    details: dict[str, int] | None = None,
    day: date = DAY,
) -> dict[str, Any]:
    return {
        "external_id": f"c-{n}",
        "task_id": task_id,
        "user_id": user_id,
        "platform": platform,
        "submission_link": link,
        "verification_details": details,
        "completed_at": at(day),
    }


def youtube(n: int) -> str:
    return f"https://www.youtube.com/watch?v=vid{n:08d}"


def tiktok(n: int) -> str:
    return f"https://www.tiktok.com/@u/video/{7_300_000_000_000_000_000 + n}"


def douyin(n: int) -> str:
    return f"https://www.douyin.com/video/{7_400_000_000_000_000_000 + n}"
