"""The daily scan on the three databases: the seed's payloads exactly, accounts counted
once per platform, figures fetched once (short links too), one task's failure kept to
itself, an idempotent rescan, and rows that follow their callbacks' delivery."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from tallyhub.core.auth import Role
from tallyhub.core.webhooks import WebhookEndpoint, WebhookMessage, deliver_due
from tallyhub.taskstats.models import Task
from tests.conftest import Harness, TestDatabase
from tests.factories import bearer, user_token
from tests.taskstats.helpers import (
    DAY,
    app_in_world,
    complete,
    douyin,
    item,
    promoters,
    task,
    tiktok,
    world,
    youtube,
)

EXAMPLE_1 = {
    "site_name": "DramaRelayBot",
    "event": "task.daily_stats",
    "stats": [
        {
            "project_id": "550e8400-e29b-41d4-a716-446655440000",
            "task_id": 42,
            "duration": 30,
            "stats_date": "2024-12-09",
            "account_count": 15,
            "yt_account_count": 5,
            "yt_view_count": 1200,
            "yt_like_count": 80,
            "tt_account_count": 6,
            "tt_view_count": 3500,
            "tt_like_count": 150,
            "dy_account_count": 4,
            "dy_view_count": 8000,
            "dy_like_count": 320,
            "dy_comment_count": 45,
            "dy_share_count": 28,
            "dy_collect_count": 62,
        }
    ],
}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


async def _task_42(h: Harness, owner: int | None, url: str) -> None:
    async def make(session: AsyncSession) -> None:
        session.add(
            Task(
                id=42,
                project_id="550e8400-e29b-41d4-a716-446655440000",
                title="example",
                duration=30,
                callback_url=url,
                status="active",
                owner_id=owner,
            )
        )

    await h.runtime.db.run(make)


async def _scan(h: Harness, admin: dict[str, str], day: Any = DAY) -> dict[str, Any]:
    scanned = await h.client.post("/api/taskstats/scan", json={"date": str(day)}, headers=admin)
    assert scanned.status_code == 200, scanned.text
    return dict(scanned.json())


async def _messages(h: Harness) -> list[WebhookMessage]:
    async def read(session: AsyncSession) -> list[WebhookMessage]:
        return list(
            await session.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at))
        )

    return await h.runtime.db.run(read, readonly=True)


async def _secret(h: Harness) -> str:
    async def read(session: AsyncSession) -> str:
        endpoint = await session.scalar(select(WebhookEndpoint))
        assert endpoint is not None
        return h.runtime.secret_box().decrypt(endpoint.secret)

    return await h.runtime.db.run(read, readonly=True)


async def test_the_seeds_two_payloads_come_out_exactly(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with world() as w:
        async with harness_factory(test_db, **w.overrides()) as h:
            admin_user = await user_token(h.runtime, "admin", Role.admin)
            admin = bearer(admin_user)
            await _task_42(h, None, w.partner.url)  # an admin sees tasks of no owner
            users = await promoters(h, admin, 15)
            items = []
            plan = [
                ("youtube", youtube, users[:5], {"view_count": 1200, "like_count": 80}),
                ("tiktok", tiktok, users[5:11], {"view_count": 3500, "like_count": 150}),
                (
                    "douyin",
                    douyin,
                    users[11:],
                    {
                        "view_count": 8000,
                        "like_count": 320,
                        "comment_count": 45,
                        "share_count": 28,
                        "collect_count": 62,
                    },
                ),
            ]
            for platform, link, who, totals in plan:
                shares = {name: _split(total, len(who)) for name, total in totals.items()}
                for k, user in enumerate(who):
                    details = {name: parts[k] for name, parts in shares.items()}
                    items.append(item(f"{platform}-{k}", 42, user, platform, link(k), details))
            await complete(h, admin, items)
            result = await _scan(h, admin)
            assert (result["tasks"], result["ok"], result["callbacks"], result["fetched"]) == (
                1,
                1,
                1,
                0,
            )
            (message,) = await _messages(h)
            assert message.payload == EXAMPLE_1
            await deliver_due(h.runtime.db, h.runtime.secret_box())
            ((headers, body),) = w.partner.received
            assert Webhook(await _secret(h)).verify(body, headers) == EXAMPLE_1

            # Example 2: another day with YouTube only.
            day2 = DAY.replace(day=10)
            only_youtube = [
                item(
                    f"y2-{k}",
                    42,
                    users[k],
                    "youtube",
                    youtube(k),
                    {"view_count": v, "like_count": likes},
                    day2,
                )
                for k, (v, likes) in enumerate(zip(_split(1200, 5), _split(80, 5), strict=True))
            ]
            await complete(h, admin, only_youtube)
            await _scan(h, admin, day2)
            second = (await _messages(h))[-1]
            assert second.payload == {
                "site_name": "DramaRelayBot",
                "event": "task.daily_stats",
                "stats": [
                    {
                        "project_id": "550e8400-e29b-41d4-a716-446655440000",
                        "task_id": 42,
                        "duration": 30,
                        "stats_date": "2024-12-10",
                        "account_count": 5,
                        "yt_account_count": 5,
                        "yt_view_count": 1200,
                        "yt_like_count": 80,
                    }
                ],
            }


async def test_accounts_are_counted_once_overall_and_per_platform(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (_, h, admin):
        t = await task(h, admin, None)
        a, b = await promoters(h, admin, 2)
        views = {"view_count": 10}
        await complete(
            h,
            admin,
            [
                item(1, t, a, "youtube", youtube(1), views),
                item(2, t, a, "youtube", youtube(2), views),
                item(3, t, a, "tiktok", tiktok(3), views),
                item(4, t, b, "douyin", douyin(4), views),
                item(5, t, b, "douyin", douyin(5), views),
            ],
        )
        await _scan(h, admin)
        (row,) = (await h.client.get(f"/api/taskstats/tasks/{t}/daily", headers=admin)).json()
    assert (row["total_account_count"], row["completion_count"]) == (2, 5)
    assert (row["yt_account_count"], row["tt_account_count"], row["dy_account_count"]) == (1, 1, 1)
    assert (row["yt_view_count"], row["tt_view_count"], row["dy_view_count"]) == (20, 10, 20)


async def test_missing_figures_are_fetched_once_short_links_too(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (w, h, admin):
        t = await task(h, admin, w.partner.url)
        (a, b) = await promoters(h, admin, 2)
        short = w.videos.short_link("douyin", str(7_400_000_000_000_000_007))
        links = [("youtube", youtube(1)), ("tiktok", tiktok(2)), ("douyin", short)]
        await complete(
            h, admin, [item(n, t, a if n else b, p, link) for n, (p, link) in enumerate(links)]
        )
        first = await _scan(h, admin)
        asked = w.requests()
        row = (await h.client.get(f"/api/taskstats/tasks/{t}/daily", headers=admin)).json()[0]
        again = await _scan(h, admin)
        assert w.requests() == asked, "a rescan fetches nothing again"
        assert (await h.client.get(f"/api/taskstats/tasks/{t}/daily", headers=admin)).json()[
            0
        ] == row
        assert len(await _messages(h)) == 1, "unchanged figures send no second callback"
    truth = {p: w.videos.truth(link) for p, link in links}
    assert first["fetched"] == 3 and first["ok"] == 1
    assert (again["fetched"], again["unchanged"], again["callbacks"]) == (0, 1, 0)
    assert row["yt_view_count"] == truth["youtube"]["view"]
    assert row["tt_like_count"] == truth["tiktok"]["like"]
    assert row["dy_view_count"] == truth["douyin"]["view"]
    assert row["dy_collect_count"] == truth["douyin"]["collect"]
    assert truth["douyin"]["video_id"] == str(7_400_000_000_000_000_007)


async def test_one_tasks_failure_is_kept_to_itself(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (w, h, admin):
        good, bad = await task(h, admin, None), await task(h, admin, None)
        (a,) = await promoters(h, admin, 1)
        w.videos.remove(youtube(9))
        await complete(
            h,
            admin,
            [item(1, good, a, "youtube", youtube(1)), item(2, bad, a, "youtube", youtube(9))],
        )
        result = await _scan(h, admin)
        rows = (await h.client.get("/api/taskstats/daily", headers=admin)).json()["items"]
    assert (result["ok"], result["failed"]) == (1, 1)
    assert "not found" in result["errors"][str(bad)]
    assert [r["task_id"] for r in rows] == [good]


async def test_a_rescan_after_new_completions_updates_the_row_and_calls_back_again(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (w, h, admin):
        t = await task(h, admin, w.partner.url)
        a, b = await promoters(h, admin, 2)
        await complete(h, admin, [item(1, t, a, "tiktok", tiktok(1), {"view_count": 5})])
        await _scan(h, admin)
        w.partner.statuses = [500]
        await deliver_due(h.runtime.db, h.runtime.secret_box())
        row = (await h.client.get(f"/api/taskstats/tasks/{t}/daily", headers=admin)).json()[0]
        assert (row["webhook_sent"], row["retry_count"]) == (False, 0)
        assert row["webhook_response"].startswith("500")

        await complete(h, admin, [item(2, t, b, "tiktok", tiktok(2), {"view_count": 7})])
        result = await _scan(h, admin)
        await deliver_due(h.runtime.db, h.runtime.secret_box())
        row = (await h.client.get(f"/api/taskstats/tasks/{t}/daily", headers=admin)).json()[0]
        messages = await _messages(h)
    assert result["callbacks"] == 1 and len(messages) == 2
    assert (row["tt_account_count"], row["tt_view_count"]) == (2, 12)
    assert row["webhook_sent"] and row["webhook_message_id"] == messages[-1].id
    assert json.loads(w.partner.received[-1][1])["stats"][0]["tt_view_count"] == 12


async def test_agents_get_their_day(harness_factory: Any, test_db: TestDatabase) -> None:
    async with app_in_world(harness_factory, test_db) as (_, h, admin):
        t = await task(h, admin, None)
        east = await promoters(h, admin, 2, agent="east")
        west = await promoters(h, admin, 1, agent="west")
        await complete(
            h,
            admin,
            [
                item(1, t, east[0], "youtube", youtube(1), {"view_count": 100, "like_count": 1}),
                item(2, t, east[1], "douyin", douyin(2), {"view_count": 50, "like_count": 2}),
                item(3, t, west[0], "douyin", douyin(3), {"view_count": 7, "like_count": 3}),
            ],
        )
        await _scan(h, admin)
        agents = (
            await h.client.get(f"/api/taskstats/agents/daily?date={DAY}", headers=admin)
        ).json()

    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(Task)) or 0)

    by = {a["agent_node"]: a for a in agents}
    assert (by["east"]["user_count"], by["east"]["completion_count"]) == (2, 2)
    assert (by["east"]["yt_view_count"], by["east"]["dy_view_count"], by["east"]["like_count"]) == (
        100,
        50,
        3,
    )
    assert (by["west"]["dy_completion_count"], by["west"]["dy_view_count"]) == (1, 7)
