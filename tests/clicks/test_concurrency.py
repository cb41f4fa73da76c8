"""The seed's concurrency tests on PostgreSQL and MariaDB, with real parallel connections.

Clicks race in two shapes: two apps on one database, each with its own engine and
BatchWriter (as two server processes would), and two apps with batching off, so every
click is its own transaction racing all the others (the seed's design). SQLite serializes
writers and would hide every race here, so it is not in the matrix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date, timedelta
from typing import Any

import pytest

from tallyhub.clicks import service, wiring
from tallyhub.core.auth import Role
from tests.clicks.helpers import LINE_PREVIEW, campaign, click, summary_of, users
from tests.conftest import Harness
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.concurrency

SMALL_POOL = {"size": 8, "max_overflow": 24}
MODES = ["two_writers", "unbatched"]


@asynccontextmanager
async def racing_apps(mode: str, main: Harness, factory: Any) -> AsyncIterator[list[Harness]]:
    # The seed's tests repeat one link: no dedup window. A generous commit timeout: on a
    # busy test machine a click waiting longer than usual must not go to the spool, so that
    # an empty spool below proves every click committed.
    # Both apps fold the breakdown deltas all the time, racing each other and the batches.
    clicks: dict[str, Any] = {
        "dedup_window_ms": 0,
        "commit_timeout_ms": 60_000,
        "breakdown_fold_seconds": 0.02,
    }
    if mode == "unbatched":
        clicks["batching"] = {"enabled": False}
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(factory(main.db, pool=SMALL_POOL, clicks=clicks))
            for _ in range(2)
        ]
        yield apps
        spooled = [wiring.parts(app.runtime).spool.stats().events for app in apps]
    # Every click was committed directly: none had to fall back to the spool.
    assert spooled == [0, 0]


@pytest.mark.parametrize("mode", MODES)
async def test_ten_concurrent_clicks_with_new_tags_keep_all_ten(
    server_harness: Harness, harness_factory: Any, mode: str
) -> None:
    h = server_harness
    admin = await make_user(h, "admin", Role.admin)
    c = await make_campaign(h, admin)
    tags = list("ABCDEFGHIJ")
    async with racing_apps(mode, h, harness_factory) as apps:
        responses = await asyncio.gather(
            *(
                click(apps[n % 2], cid=c["id"], uid="U_TAG_CONCURRENT", src=777, tag=tag)
                for n, tag in enumerate(tags)
            )
        )
    assert [r.status_code for r in responses] == [302] * 10
    summary = summary_of(await users(h, admin, c["id"]), "U_TAG_CONCURRENT", 777)
    assert summary["total_clicks"] == 10
    assert sorted(summary["tags"]) == tags
    assert sorted(summary["last_click_tag"].split(",")) == tags
    assert summary["last_click_tag"] == ",".join(summary["tags"])  # first-seen order


@pytest.mark.parametrize("mode", MODES)
async def test_fifty_workers_times_ten_requests_and_bots_no_deadlock_exact_counts(
    server_harness: Harness, harness_factory: Any, mode: str
) -> None:
    h = server_harness
    admin = await make_user(h, "admin", Role.admin)
    hot = await make_campaign(h, admin, "hot")
    other = await make_campaign(h, admin, "other")

    async with racing_apps(mode, h, harness_factory) as apps:

        async def worker(n: int) -> list[int]:
            statuses = []
            for i in range(10):
                # Every worker hits the hot campaign; odd requests also touch a second
                # campaign, so batches lock several rows in some order.
                cid = other["id"] if i % 4 == 3 else hot["id"]
                response = await click(
                    apps[n % 2], cid=cid, uid=f"U_WORKER_{n}", src=456, tag=f"T{i % 3}"
                )
                statuses.append(response.status_code)
                if i % 4 == 1:  # LINE fetches the hot link's preview, between the clicks
                    preview = await click(
                        apps[(n + 1) % 2], cid=hot["id"], uid=f"U_WORKER_{n}", src=456,
                        tag="BOT", user_agent=LINE_PREVIEW,
                    )  # fmt: skip
                    statuses.append(preview.status_code)
            return statuses

        results = await asyncio.wait_for(
            asyncio.gather(*(worker(n) for n in range(50))), timeout=120
        )
    assert all(statuses == [302] * 13 for statuses in results)

    hot_figures = await campaign(h, admin, hot["id"])
    other_figures = await campaign(h, admin, other["id"])
    assert (hot_figures["clicked_count"], other_figures["clicked_count"]) == (400, 100)
    assert (hot_figures["unique_users"], other_figures["unique_users"]) == (50, 50)
    assert (hot_figures["bot_clicks"], other_figures["bot_clicks"]) == (150, 0)
    week = {"dimension": "bot", "from": str(date.today() - timedelta(days=7))}
    bots = await h.client.get(
        f"/api/clicks/campaigns/{hot['id']}/breakdown", params=week, headers=admin
    )
    assert bots.json()["values"]["items"] == [{"key": "LINE", "count": 150}]
    devices = await h.client.get(
        f"/api/clicks/campaigns/{hot['id']}/breakdown",
        params={**week, "dimension": "device"},
        headers=admin,
    )
    assert devices.json()["clicks"] == 400
    summaries = await users(h, admin, hot["id"], src=456)
    assert len(summaries) == 50
    assert {s["total_clicks"] for s in summaries} == {8}
    assert {s["last_click_tag"] for s in summaries} == {"T0,T1,T2"}

    run = await service.recalibrate(h.runtime.db)
    assert run.drift_count == 0, run.drifts[:5]
