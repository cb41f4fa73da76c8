"""The dashboard's click figures on SQLite, PostgreSQL and MariaDB: the overview's summary
(today by each campaign's own zone, unique users today, an operator's own campaigns only),
today's clicks on the campaign list, the daily series as a complete range and the
breakdown of a range by tag, source and interaction type."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tallyhub.core.auth import Role
from tests.clicks.helpers import click
from tests.conftest import Harness
from tests.factories import make_campaign, make_user


async def get(h: Harness, auth: dict[str, str], path: str, **params: Any) -> Any:
    response = await h.client.get(path, params=params, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def today_in(zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


async def test_the_summary_counts_today_and_unique_users_over_what_you_may_see(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    alice = await make_user(harness, "alice", Role.operator)
    tokyo = await make_campaign(harness, admin, timezone="Asia/Tokyo")
    mine = await make_campaign(harness, alice, timezone="America/Los_Angeles")
    # U1's second click falls in the dedup window: counted once.
    for cid, uid in ((tokyo["id"], "U1"), (tokyo["id"], "U1"), (tokyo["id"], "U2")):
        assert (await click(harness, cid=cid, uid=uid)).status_code == 302
    for uid in ("U2", "U3", None):
        assert (await click(harness, cid=mine["id"], uid=uid)).status_code == 302

    everything = await get(harness, admin, "/api/clicks/summary")
    assert everything == {
        "campaigns": 2,
        "today_clicks": 5,
        "today_unique_users": 3,  # U1, U2 (in both), U3; a click without a uid is no user
        "total_clicks": 5,
    }
    own = await get(harness, alice, "/api/clicks/summary")
    assert own == {"campaigns": 1, "today_clicks": 3, "today_unique_users": 2, "total_clicks": 3}

    listed = await get(harness, admin, "/api/clicks/campaigns")
    today = {c["id"]: (c["today_clicks"], c["business_date"]) for c in listed["items"]}
    assert today[tokyo["id"]] == (2, today_in("Asia/Tokyo").isoformat())
    assert today[mine["id"]] == (3, today_in("America/Los_Angeles").isoformat())


async def test_the_daily_series_is_a_complete_range(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin, timezone="Asia/Shanghai")
    for uid in ("U1", "U2"):
        assert (await click(harness, cid=c["id"], uid=uid)).status_code == 302
    today = today_in("Asia/Shanghai")
    start = today - timedelta(days=6)
    path = f"/api/clicks/campaigns/{c['id']}/daily"
    week = await get(harness, admin, path, **{"from": start.isoformat(), "to": today.isoformat()})
    assert [d["business_date"] for d in week] == [
        (start + timedelta(days=n)).isoformat() for n in range(7)
    ]
    assert [d["clicks"] for d in week] == [0] * 6 + [2]
    assert await get(harness, admin, path) == [{"business_date": today.isoformat(), "clicks": 2}]

    backwards = await harness.client.get(
        path, params={"from": today.isoformat(), "to": start.isoformat()}, headers=admin
    )
    assert backwards.status_code == 400 and backwards.json()["error"]["code"] == "bad_day_range"
    too_long = await harness.client.get(path, params={"from": "2000-01-01"}, headers=admin)
    assert too_long.status_code == 400 and "at most 3660 days" in too_long.text


async def test_a_breakdown_counts_tags_sources_and_types(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin)
    clicks = [
        {"uid": "U1", "tag": "vip,new", "src": 7},
        {"uid": "U2", "tag": "vip", "src": 7, "type": "button_url"},
        {"uid": "U3", "tag": None, "src": None},
    ]
    for params in clicks:
        assert (await click(harness, cid=c["id"], **params)).status_code == 302

    answer = await get(harness, admin, f"/api/clicks/campaigns/{c['id']}/breakdown")
    assert answer["clicks"] == 3
    assert answer["tags"] == {
        "items": [{"key": "vip", "count": 2}, {"key": "new", "count": 1}],
        "others": 0,
        "distinct": 2,
    }
    assert answer["sources"]["items"] == [{"key": "7", "count": 2}, {"key": "0", "count": 1}]
    types = {i["key"]: i["count"] for i in answer["interaction_types"]["items"]}
    assert types == {"button_url": 1, "image_click": 2}

    yesterday = (date.fromisoformat(answer["start"]) - timedelta(days=1)).isoformat()
    empty = await get(
        harness,
        admin,
        f"/api/clicks/campaigns/{c['id']}/breakdown",
        **{"from": yesterday, "to": yesterday},
    )
    assert (empty["clicks"], empty["tags"]["items"]) == (0, [])
