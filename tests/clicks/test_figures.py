"""The dashboard's click figures on SQLite, PostgreSQL and MariaDB: the overview's summary
(today by each campaign's own zone, unique users today, an operator's own campaigns only),
today's clicks on the campaign list, the daily series as a complete range and the
breakdown of a range by tag, source and interaction type."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tallyhub.clicks import service
from tallyhub.core.auth import Role
from tallyhub.core.daywindow import day_start
from tests.clicks.helpers import TARGET, click
from tests.conftest import Harness
from tests.factories import make_campaign, make_user


async def get(h: Harness, auth: dict[str, str], path: str, **params: Any) -> Any:
    response = await h.client.get(path, params=params, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def today_in(zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


async def replayed_click(h: Harness, cid: int, uid: str, at: datetime, **fields: Any) -> None:
    """A click made at `at` that reaches the database only now, as the spool's replay
    brings it (the HTTP edge always stamps the present)."""
    event = service.ClickEvent(
        event_id=f"replayed-{cid}-{uid}-{at.timestamp()}",
        campaign_id=cid,
        line_id=uid,
        source_campaign_id=fields.get("src", 0),
        interaction_type=fields.get("type", "image_click"),
        target=TARGET,
        tags=tuple(fields.get("tags", ())),
        triggered_at=at,
    )
    results = await h.runtime.db.run(lambda session: service.apply_clicks(session, [event]))
    assert results == [service.RECORDED]


def yesterday_late(zone: str) -> datetime:
    """One second before the zone's today began: the last moment of its yesterday."""
    return day_start(today_in(zone), zone, time(0, 0)) - timedelta(seconds=1)


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
    # U9 clicked just before Tokyo's midnight: yesterday's click, and no user of today.
    await replayed_click(harness, tokyo["id"], "U9", yesterday_late("Asia/Tokyo"))

    everything = await get(harness, admin, "/api/clicks/summary")
    assert everything == {
        "campaigns": 2,
        "today_clicks": 5,
        "today_unique_users": 3,  # U1, U2 (in both), U3; a click without a uid is no user
        "total_clicks": 6,
    }
    own = await get(harness, alice, "/api/clicks/summary")
    assert own == {"campaigns": 1, "today_clicks": 3, "today_unique_users": 2, "total_clicks": 3}
    bob = await make_user(harness, "bob", Role.operator)
    nothing = await get(harness, bob, "/api/clicks/summary")
    assert nothing == {
        "campaigns": 0,
        "today_clicks": 0,
        "today_unique_users": 0,
        "total_clicks": 0,
    }

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
    assert backwards.status_code == 422
    assert backwards.json()["error"] == {
        "code": "bad_day_range",
        "message": f"from ({today}) is after to ({start})",
    }
    # `to` left out is the campaign's today, so a `from` after it is refused too.
    tomorrow = (today + timedelta(days=1)).isoformat()
    future = await harness.client.get(path, params={"from": tomorrow}, headers=admin)
    assert future.status_code == 422 and f"from ({tomorrow}) is after to" in future.text

    longest = await get(
        harness, admin, path, **{"from": (today - timedelta(days=3659)).isoformat()}
    )
    assert len(longest) == 3660 and sum(d["clicks"] for d in longest) == 2
    too_long = await harness.client.get(
        path, params={"from": (today - timedelta(days=3660)).isoformat()}, headers=admin
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["message"] == (
        "from..to spans 3661 days; at most 3660 days at once"
    )


async def test_the_daily_series_fills_the_days_between_clicks(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin, timezone="Asia/Shanghai")
    today = today_in("Asia/Shanghai")
    three_days_ago = day_start(today - timedelta(days=3), "Asia/Shanghai", time(0, 0))
    for uid in ("U1", "U2", "U3"):
        await replayed_click(harness, c["id"], uid, three_days_ago + timedelta(hours=1))
    assert (await click(harness, cid=c["id"], uid="U1")).status_code == 302

    answer = await get(harness, admin, f"/api/clicks/campaigns/{c['id']}/daily")
    assert answer == [
        {"business_date": (today - timedelta(days=n)).isoformat(), "clicks": clicks}
        for n, clicks in ((3, 3), (2, 0), (1, 0), (0, 1))
    ]
    viewer = await make_user(harness, "viewer", Role.viewer)
    assert await get(harness, viewer, f"/api/clicks/campaigns/{c['id']}/daily") == answer
    alice = await make_user(harness, "alice", Role.operator)
    theirs = await harness.client.get(f"/api/clicks/campaigns/{c['id']}/daily", headers=alice)
    assert theirs.status_code == 404


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


async def test_today_is_each_campaigns_own_day(harness: Harness) -> None:
    """Kiritimati (UTC+14) and Pago Pago (UTC-11) are 25 hours apart: their dates always
    differ, so a click made now is on a different date in each campaign."""
    admin = await make_user(harness, "admin", Role.admin)
    east = await make_campaign(harness, admin, "East", timezone="Pacific/Kiritimati")
    west = await make_campaign(harness, admin, "West", timezone="Pacific/Pago_Pago")
    for c in (east, west):
        assert (await click(harness, cid=c["id"], uid="U1")).status_code == 302
    # A late click of west's yesterday, which is still today nowhere in the west.
    await replayed_click(harness, west["id"], "U2", yesterday_late("Pacific/Pago_Pago"))
    east_today, west_today = today_in("Pacific/Kiritimati"), today_in("Pacific/Pago_Pago")
    assert east_today > west_today

    for c, today, clicks in ((east, east_today, 1), (west, west_today, 1)):
        one = await get(harness, admin, f"/api/clicks/campaigns/{c['id']}")
        assert (one["business_date"], one["today_clicks"]) == (today.isoformat(), clicks)
    assert await get(harness, admin, "/api/clicks/summary") == {
        "campaigns": 2,
        "today_clicks": 2,
        "today_unique_users": 1,  # U1 in both; U2's click was yesterday
        "total_clicks": 3,
    }
    span = {"from": (west_today - timedelta(days=1)).isoformat(), "to": east_today.isoformat()}
    east_days = await get(harness, admin, f"/api/clicks/campaigns/{east['id']}/daily", **span)
    west_days = await get(harness, admin, f"/api/clicks/campaigns/{west['id']}/daily", **span)
    assert [d["clicks"] for d in east_days][-1] == 1 and sum(d["clicks"] for d in east_days) == 1
    assert {d["business_date"]: d["clicks"] for d in west_days if d["clicks"]} == {
        (west_today - timedelta(days=1)).isoformat(): 1,
        west_today.isoformat(): 1,
    }


async def test_a_breakdown_lists_the_top_ten_and_sums_the_rest(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin, timezone="Asia/Tokyo")
    # "a" on 4 clicks, "b" on 3, and ten tags on one click each: twelve tags in all.
    tag_lists = ["a,b,c", "a,b,d,e", "a,b,f,g,h", "a,i,j,k,l"]
    for n, tags in enumerate(tag_lists):
        response = await click(harness, cid=c["id"], uid=f"U{n}", tag=tags, src=n % 2 or None)
        assert response.status_code == 302
    # Yesterday's click (Tokyo's day): outside today's range, inside one that reaches back.
    late = yesterday_late("Asia/Tokyo")
    await replayed_click(harness, c["id"], "U9", late, tags=["old"], src=9, type="text_link")
    path = f"/api/clicks/campaigns/{c['id']}/breakdown"

    today = await get(harness, admin, path)
    assert (today["start"], today["end"]) == (today_in("Asia/Tokyo").isoformat(),) * 2
    assert today["clicks"] == 4
    listed = [(i["key"], i["count"]) for i in today["tags"]["items"]]
    assert listed == [("a", 4), ("b", 3), *[(k, 1) for k in "cdefghij"]]
    assert (today["tags"]["others"], today["tags"]["distinct"]) == (2, 12)  # k and l
    assert today["sources"]["items"] == [{"key": "0", "count": 2}, {"key": "1", "count": 2}]
    assert today["interaction_types"] == {
        "items": [{"key": "image_click", "count": 4}],
        "others": 0,
        "distinct": 1,
    }

    yesterday = today_in("Asia/Tokyo") - timedelta(days=1)
    two_days = await get(harness, admin, path, **{"from": yesterday.isoformat()})
    assert two_days["clicks"] == 5
    assert {"key": "old", "count": 1} not in two_days["tags"]["items"]  # 13th: in others
    assert (two_days["tags"]["others"], two_days["tags"]["distinct"]) == (3, 13)
    assert two_days["sources"]["items"][-1] == {"key": "9", "count": 1}
    assert two_days["interaction_types"]["items"] == [
        {"key": "image_click", "count": 4},
        {"key": "text_link", "count": 1},
    ]

    alice = await make_user(harness, "alice", Role.operator)
    assert (await harness.client.get(path, headers=alice)).status_code == 404
    backwards = await harness.client.get(
        path, params={"from": "2026-02-02", "to": "2026-02-01"}, headers=admin
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "bad_day_range"
