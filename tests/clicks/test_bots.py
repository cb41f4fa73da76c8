"""Bots' clicks apart from people's, on SQLite, PostgreSQL and MariaDB: a link-preview fetch,
a crawler or an HTTP tool is redirected and logged with its kind, but moves only the
campaign's `bot_clicks` and its day's `bot` breakdown; a campaign with filtering off
counts it as today; the per-day breakdowns by device, OS, browser, referrer and bot
through `GET /api/clicks/campaigns/{id}/breakdown?dimension=`; recalibration rebuilds
them from the log."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update

from tallyhub.clicks import service
from tallyhub.clicks.models import Campaign, CampaignDailyBreakdown, Member, Message
from tallyhub.clicks.service.breakdowns import KEYS
from tallyhub.core.auth import Role
from tests.clicks.helpers import LINE_PREVIEW, TARGET, campaign, click, summary_of, users
from tests.conftest import Harness
from tests.factories import make_campaign, make_user

DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
TELEGRAM = "TelegramBot (like TwitterBot)"
CURL = "curl/8.5.0"


async def breakdown(h: Harness, auth: dict[str, str], cid: int, **params: Any) -> Any:
    response = await h.client.get(
        f"/api/clicks/campaigns/{cid}/breakdown", params=params, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()


async def by_value(h: Harness, auth: dict[str, str], cid: int, dimension: str) -> dict[str, int]:
    """The last week's breakdown (a test running over midnight has its clicks in it)."""
    week = str(date.today() - timedelta(days=7))
    answer = await breakdown(h, auth, cid, dimension=dimension, **{"from": week})
    assert answer["clicks"] == sum(d["clicks"] for d in answer["days"])
    return {item["key"]: item["count"] for item in answer["values"]["items"]}


async def test_a_bots_click_redirects_and_moves_only_the_bot_counters(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    cid = (await make_campaign(harness, admin))["id"]
    # U1 clicks in LINE's browser; LINE fetched the same link for its preview just then
    # (a key of its own: the person's click is not taken for a double click). Telegram
    # fetches U2's link, curl an anonymous one; someone opens it on a desktop.
    answers = [
        await click(harness, cid=cid, uid="U1", tag="A", referer="https://line.me/R/ti?x=1"),
        await click(harness, cid=cid, uid="U1", tag="B", user_agent=LINE_PREVIEW),
        await click(harness, cid=cid, uid="U2", tag="T", user_agent=TELEGRAM),
        await click(harness, cid=cid, user_agent=CURL),
        await click(harness, cid=cid, user_agent=DESKTOP),
    ]
    assert [(a.status_code, a.headers["location"]) for a in answers] == [(302, TARGET)] * 5

    figures = await campaign(harness, admin, cid)
    assert (figures["clicked_count"], figures["unique_users"], figures["bot_clicks"]) == (2, 1, 3)
    assert figures["today_clicks"] == 2 and figures["filter_bots"] is True
    [summary] = await users(harness, admin, cid)
    assert (summary["line_id"], summary["total_clicks"], summary["tags"]) == ("U1", 1, ["A"])
    async with harness.runtime.db.transaction(readonly=True) as session:
        members = list(await session.scalars(select(Member.line_uid)))
        messages = await session.scalar(select(func.count()).select_from(Message))
    assert (members, messages) == (["U1"], 1)

    log = await harness.client.get(f"/api/clicks/campaigns/{cid}/interactions", headers=admin)
    assert log.json()["total"] == 5
    seen = [
        (i["line_id"], i["counted"], i["agent_kind"], i["bot_kind"], i["bot_name"], i["device"])
        for i in reversed(log.json()["items"])
    ]
    assert seen == [
        ("U1", True, "person", None, None, "phone"),
        ("U1", False, "bot", "preview", "LINE", "bot"),
        ("U2", False, "bot", "preview", "Telegram", "bot"),
        (None, False, "bot", "tool", "curl", "bot"),
        (None, True, "person", None, None, "desktop"),
    ]

    assert await by_value(harness, admin, cid, "bot") == {"LINE": 1, "Telegram": 1, "curl": 1}
    assert await by_value(harness, admin, cid, "device") == {"phone": 1, "desktop": 1}
    assert await by_value(harness, admin, cid, "os") == {"iOS": 1, "Windows": 1}
    assert await by_value(harness, admin, cid, "browser") == {"LINE": 1, "Chrome": 1}
    assert await by_value(harness, admin, cid, "referrer") == {"line.me": 1, "direct": 1}
    composition = await breakdown(harness, admin, cid, **{"from": str(date.today() - timedelta(7))})
    assert composition["clicks"] == 2 and composition["tags"]["items"] == [{"key": "A", "count": 1}]
    assert (await service.recalibrate(harness.runtime.db)).drift_count == 0

    await _tamper(harness, cid)
    run = await service.recalibrate(harness.runtime.db)
    assert sorted((d["entity"], d["field"], d["stored"], d["actual"]) for d in run.drifts) == [
        ("campaign", "bot_clicks", 0, 3),
        ("campaign_breakdown", "bot:LINE:bot/Other/FacebookBot/direct", 0, 1),
        ("campaign_breakdown", "counted:phone/iOS/LINE/line.me", 7, 1),
        ("campaign_breakdown", "counted:tablet/BeOS/NetPositive/direct", 4, 0),
    ]
    assert await by_value(harness, admin, cid, "device") == {"phone": 1, "desktop": 1}
    assert await by_value(harness, admin, cid, "bot") == {"LINE": 1, "Telegram": 1, "curl": 1}
    assert (await campaign(harness, admin, cid))["bot_clicks"] == 3
    assert (await service.recalibrate(harness.runtime.db)).drift_count == 0


async def _tamper(h: Harness, cid: int) -> None:
    """A breakdown row changed, one deleted and one no click supports; bot_clicks lost."""
    B = CampaignDailyBreakdown
    await service.fold_breakdowns(h.runtime.db)

    async def work(session: Any) -> None:
        today = await session.scalar(select(B.business_date).where(B.campaign_id == cid))
        mine = B.campaign_id == cid
        await session.execute(update(B).where(mine, B.device == "phone").values(clicks=7))
        await session.execute(delete(B).where(mine, B.bot_name == "LINE"))
        stray = ("tablet", "BeOS", "NetPositive", "direct", "")
        await session.execute(
            insert(B).values(dict(zip(KEYS, (cid, today, True, *stray), strict=True), clicks=4))
        )
        await session.execute(update(Campaign).where(Campaign.id == cid).values(bot_clicks=0))

    await h.runtime.db.run(work)


async def test_with_filtering_off_a_bots_click_counts_as_before(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    cid = (await make_campaign(harness, admin, filter_bots=False))["id"]
    assert (await click(harness, cid=cid, uid="U9", tag="X", user_agent=LINE_PREVIEW)).is_redirect

    figures = await campaign(harness, admin, cid)
    assert (figures["clicked_count"], figures["unique_users"], figures["bot_clicks"]) == (1, 1, 0)
    assert summary_of(await users(harness, admin, cid), "U9")["tags"] == ["X"]
    assert await by_value(harness, admin, cid, "device") == {"bot": 1}
    assert await by_value(harness, admin, cid, "bot") == {}

    # Turned on, the next bot's click is kept out at once; the first stays counted.
    changed = await harness.client.patch(
        f"/api/clicks/campaigns/{cid}", json={"filter_bots": True}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["filter_bots"] is True
    assert (await click(harness, cid=cid, uid="U8", user_agent=LINE_PREVIEW)).is_redirect
    figures = await campaign(harness, admin, cid)
    assert (figures["clicked_count"], figures["unique_users"], figures["bot_clicks"]) == (1, 1, 1)
    assert (await service.recalibrate(harness.runtime.db)).drift_count == 0


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)  # the API's own checks
async def test_a_breakdown_covers_its_range_and_refuses_what_it_cannot_answer(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    cid = (await make_campaign(harness, admin, timezone="UTC"))["id"]
    today = datetime.now(UTC).date()
    for days_ago, uid, agent in ((3, "U1", DESKTOP), (3, "U2", TELEGRAM), (1, "U1", DESKTOP)):
        at = datetime.now(UTC) - timedelta(days=days_ago)
        event = service.ClickEvent(
            f"e-{days_ago}-{uid}", cid, uid, 0, "image_click", TARGET, (), at, user_agent=agent
        )
        recorded = await harness.runtime.db.run(lambda s, e=event: service.apply_clicks(s, [e]))
        assert recorded == [service.RECORDED]

    span = {"from": str(today - timedelta(days=3)), "to": str(today - timedelta(days=2))}
    answer = await breakdown(harness, admin, cid, dimension="device", **span)
    assert (answer["dimension"], answer["start"], answer["end"]) == ("device", *span.values())
    assert answer["clicks"] == 1 and [d["clicks"] for d in answer["days"]] == [1, 0]
    assert answer["values"] == {
        "items": [{"key": "desktop", "count": 1}],
        "others": 0,
        "distinct": 1,
    }
    whole = await breakdown(harness, admin, cid, dimension="bot", **{"from": span["from"]})
    assert [d["clicks"] for d in whole["days"]] == [1, 0, 0, 0]  # `to`: the campaign's today
    assert whole["values"]["items"] == [{"key": "Telegram", "count": 1}]

    path = f"/api/clicks/campaigns/{cid}/breakdown"
    refused = {
        "dimension=country": "dimension",
        f"dimension=os&from={today}&to={today - timedelta(days=1)}": "is after to",
        f"dimension=os&from={today - timedelta(days=3660)}": "at most 3660 days",
    }
    for query, words in refused.items():
        response = await harness.client.get(f"{path}?{query}", headers=admin)
        assert (response.status_code, words in response.text) == (422, True), response.text
    alice = await make_user(harness, "alice", Role.operator)
    for auth, status in ((alice, 404), ({}, 401)):
        response = await harness.client.get(f"{path}?dimension=os", headers=auth)
        assert response.status_code == status
    unknown = await harness.client.get(
        "/api/clicks/campaigns/999999/breakdown?dimension=os", headers=admin
    )
    assert unknown.status_code == 404
