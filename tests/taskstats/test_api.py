"""The bot's side of the task-rollup API: promoters, tasks, completions one by one or in
batches of up to 1000, all or nothing, a repeated external_id told apart; and who may see
which tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness, TestDatabase
from tests.factories import bearer, user_token
from tests.taskstats.helpers import (
    DAY,
    app_in_world,
    at,
    douyin,
    item,
    promoters,
    task,
    tiktok,
    youtube,
)


async def test_completions_are_all_or_nothing_and_repeats_change_nothing(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (_, h, admin):
        t = await task(h, admin, None)
        (a,) = await promoters(h, admin, 1)
        one = item(1, t, a, "youtube", youtube(1), {"view_count": 3})
        single = await h.client.post("/api/taskstats/completions", json=one, headers=admin)
        assert single.status_code == 200
        assert single.json()["items"][0]["status"] == "created"

        batch = [one, item(2, t, a, "tiktok", tiktok(2)), item(2, t, a, "tiktok", tiktok(2))]
        done = await h.client.post(
            "/api/taskstats/completions", json={"items": batch}, headers=admin
        )
        assert [i["status"] for i in done.json()["items"]] == [
            "duplicate",
            "created",
            "duplicate",
        ]
        assert (done.json()["created"], done.json()["duplicates"]) == (1, 2)

        bad_cases = [
            (item(3, t, a, "douyin", douyin(3)) | {"task_id": 999}, "items[1].task_id"),
            (item(3, t, a, "douyin", douyin(3)) | {"user_id": 999}, "items[1].user_id"),
            (
                item(3, t, a, "douyin", "https://example.com/video/1"),
                "items[1].submission_link",
            ),
            (item(3, t, a, "youtube", douyin(3)), "items[1].submission_link"),
        ]
        for bad, field in bad_cases:
            refused = await h.client.post(
                "/api/taskstats/completions",
                json={"items": [item(4, t, a, "douyin", douyin(4)), bad]},
                headers=admin,
            )
            assert refused.status_code == 422, refused.text
            assert field in refused.text
        unknown = await h.client.post(
            "/api/taskstats/completions",
            json=item(5, t, a, "instagram", youtube(5)),
            headers=admin,
        )
        assert unknown.status_code == 422 and "platform" in unknown.text
        too_many = [item(n, t, a, "youtube", youtube(n)) for n in range(1001)]
        assert (
            await h.client.post(
                "/api/taskstats/completions", json={"items": too_many}, headers=admin
            )
        ).status_code == 422
        # Nothing of a refused batch was applied: c-4 is new now.
        again = await h.client.post(
            "/api/taskstats/completions", json=item(4, t, a, "douyin", douyin(4)), headers=admin
        )
        assert again.json()["items"][0]["status"] == "created"


async def test_the_same_completion_sent_at_once_is_created_once(
    harness_factory: Any, server_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, server_db) as (_, h, admin):
        t = await task(h, admin, None)
        (a,) = await promoters(h, admin, 1)
        same = {"items": [item(f"x{n}", t, a, "tiktok", tiktok(n)) for n in range(40)]}
        answers = await asyncio.gather(
            *(
                h.client.post("/api/taskstats/completions", json=same, headers=admin)
                for _ in range(8)
            )
        )
    assert all(r.status_code == 200 for r in answers), [
        r.text for r in answers if r.status_code != 200
    ]
    assert sum(r.json()["created"] for r in answers) == 40


async def test_tasks_belong_to_their_operator(harness: Harness) -> None:
    h = harness
    alice = bearer(await user_token(h.runtime, "alice", Role.operator))
    bob = bearer(await user_token(h.runtime, "bob", Role.operator))
    viewer = bearer(await user_token(h.runtime, "viewer", Role.viewer))
    t = await task(h, alice, "https://partner.example.com/hook", title="mine")
    assert (await h.client.get(f"/api/taskstats/tasks/{t}", headers=bob)).status_code == 404
    assert (await h.client.get("/api/taskstats/tasks", headers=bob)).json()["total"] == 0
    assert (await h.client.get("/api/taskstats/tasks", headers=viewer)).json()["total"] == 1
    changed = await h.client.patch(
        f"/api/taskstats/tasks/{t}", json={"status": "paused", "duration": 7}, headers=alice
    )
    assert (changed.json()["status"], changed.json()["duration"]) == ("paused", 7)
    assert (
        await h.client.patch(f"/api/taskstats/tasks/{t}", json={"title": "x"}, headers=bob)
    ).status_code == 404
    assert (
        await h.client.post(
            "/api/taskstats/tasks",
            json={"project_id": "not-a-uuid", "title": "t", "duration": 1},
            headers=alice,
        )
    ).status_code == 422
    (a,) = await promoters(h, alice, 1)
    refused = await h.client.post(
        "/api/taskstats/completions",
        json={"items": [item(1, t, a, "youtube", youtube(1))]},
        headers=bob,
    )
    assert refused.status_code == 422 and "items[0].task_id" in refused.text
    assert (await h.client.post("/api/taskstats/tasks", json={}, headers=viewer)).status_code == 403
    assert at(DAY).endswith("+08:00")


async def test_the_overview_tile_counts_the_latest_day(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with app_in_world(harness_factory, test_db) as (w, h, admin):
        t = await task(h, admin, w.partner.url)
        await task(h, admin, None, title="idle")
        a, b = await promoters(h, admin, 2)
        await h.client.post(
            "/api/taskstats/completions",
            json={
                "items": [
                    item(1, t, a, "youtube", youtube(1), {"view_count": 1}),
                    item(2, t, b, "youtube", youtube(2), {"view_count": 1}),
                ]
            },
            headers=admin,
        )
        await h.client.post("/api/taskstats/scan", json={"date": str(DAY)}, headers=admin)
        tile = (await h.client.get("/api/taskstats/summary", headers=admin)).json()
    assert tile == {
        "tasks": 2,
        "latest_date": str(DAY),
        "completions": 2,
        "accounts": 2,
        "callbacks_pending": 1,
        "callbacks_failed": 0,
    }
