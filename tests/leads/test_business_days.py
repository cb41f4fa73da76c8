"""Business days and the lists that show them, on SQLite, PostgreSQL and MariaDB: "today"
across a group's reset time and timezone, the daily rows, the incoming log and the group
list (search, filter, order, pagination)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tallyhub.core.auth import Role
from tallyhub.core.daywindow import business_date, parse_reset_time
from tests.conftest import Harness
from tests.factories import make_group, make_user
from tests.leads.helpers import group_figures, incoming, report_accounts


async def daily(
    h: Harness, auth: dict[str, str], group_id: int, start: str, end: str
) -> list[dict[str, Any]]:
    response = await h.client.get(
        f"/api/leads/groups/{group_id}/daily", params={"from": start, "to": end}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def sent(h: Harness, group: dict[str, Any], contact: str, at: datetime | str) -> Any:
    when = at if isinstance(at, str) else at.isoformat()
    response = await incoming(h, group, "acc", contact, incoming_time=when)
    assert response.status_code == 200, response.text
    return response.json()


def today_of(group: dict[str, Any], now: datetime) -> date:
    return business_date(now, group["timezone"], parse_reset_time(group["reset_time"]))


def day_start(group: dict[str, Any], day: date) -> datetime:
    """The instant the group's business day `day` begins."""
    reset = parse_reset_time(group["reset_time"])
    return datetime.combine(day, reset, tzinfo=ZoneInfo(group["timezone"])).astimezone(UTC)


def reset_time_ago(timezone: str, hours: int, now: datetime) -> str:
    """The local HH:MM in `timezone` `hours` before `now`: a group that resets then is
    hours away from either end of its business day, so "today" holds while a test runs."""
    return (now - timedelta(hours=hours)).astimezone(ZoneInfo(timezone)).strftime("%H:%M")


# ---------------------------------------------------------------- reset time and timezone


async def test_events_either_side_of_the_reset_land_on_different_business_days(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    tokyo = await make_group(
        harness, admin, accounts=["acc"], remark="Tokyo", timezone="Asia/Tokyo", reset_time="06:00"
    )
    before = await sent(harness, tokyo, "U1", "2026-01-15T05:59:59+09:00")
    at_reset = await sent(harness, tokyo, "U2", "2026-01-15T06:00:00+09:00")
    after = await sent(harness, tokyo, "U3", "2026-01-15T06:00:01+09:00")
    # The same two sides of 06:00 Tokyo, written in UTC.
    utc_before = await sent(harness, tokyo, "U4", "2026-01-14T20:59:00Z")
    utc_after = await sent(harness, tokyo, "U5", "2026-01-14T21:00:00Z")
    # Late at night still belongs to the business day that began at 06:00.
    late = await sent(harness, tokyo, "U6", "2026-01-16T05:59:00+09:00")

    rows = await daily(harness, admin, tokyo["id"], "2026-01-14", "2026-01-15")
    assert rows == [
        {"business_date": "2026-01-14", "incoming": 2, "duplicate_incoming": 0},
        {"business_date": "2026-01-15", "incoming": 4, "duplicate_incoming": 0},
    ]
    assert await daily(harness, admin, tokyo["id"], "2026-01-15", "2026-01-15") == [rows[1]]
    # Days without leads are rows of zeros, so a chart's days line up.
    quiet = await daily(harness, admin, tokyo["id"], "2026-01-16", "2026-01-20")
    assert [(r["business_date"], r["incoming"]) for r in quiet] == [
        (f"2026-01-{d}", 0) for d in range(16, 21)
    ]

    log = await harness.client.get(f"/api/leads/groups/{tokyo['id']}/incoming", headers=admin)
    days = {row["event_id"]: row["business_date"] for row in log.json()["items"]}
    assert days == {
        before["event_id"]: "2026-01-14",
        at_reset["event_id"]: "2026-01-15",
        after["event_id"]: "2026-01-15",
        utc_before["event_id"]: "2026-01-14",
        utc_after["event_id"]: "2026-01-15",
        late["event_id"]: "2026-01-15",
    }


async def test_one_instant_falls_on_each_groups_own_business_day(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    tokyo = await make_group(
        harness, admin, accounts=["acc"], timezone="Asia/Tokyo", reset_time="06:00"
    )
    los_angeles = await make_group(
        harness, admin, accounts=["acc"], timezone="America/Los_Angeles", reset_time="22:30"
    )
    utc = await make_group(harness, admin, accounts=["acc"], timezone="UTC", reset_time="00:00")
    # 21:30 UTC: 06:30 next morning in Tokyo (after its reset), 14:30 PDT in Los Angeles
    # (before its 22:30 reset, so still the business day of the 9th), 21:30 in UTC.
    instant = "2026-03-10T21:30:00Z"
    for group in (tokyo, los_angeles, utc):
        await sent(harness, group, "U1", instant)
    expected = {tokyo["id"]: "2026-03-11", los_angeles["id"]: "2026-03-09", utc["id"]: "2026-03-10"}
    for group_id, day in expected.items():
        rows = await daily(harness, admin, group_id, "2026-03-01", "2026-03-31")
        assert len(rows) == 31, group_id  # every day of March, zeros included
        assert [(r["business_date"], r["incoming"]) for r in rows if r["incoming"]] == [(day, 1)], (
            group_id
        )


async def test_today_counts_only_the_groups_current_business_day(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    now = datetime.now(UTC)
    # Each group's day began hours ago, at a different instant: the server's "today" is the
    # test's throughout, and one instant is today for one group, yesterday for the other.
    tokyo = await make_group(
        harness,
        admin,
        accounts=["acc"],
        remark="tokyo",
        timezone="Asia/Tokyo",
        reset_time=reset_time_ago("Asia/Tokyo", 2, now),
    )
    los_angeles = await make_group(
        harness,
        admin,
        accounts=["acc"],
        remark="la",
        timezone="America/Los_Angeles",
        reset_time=reset_time_ago("America/Los_Angeles", 7, now),
    )

    expected_today: dict[int, int] = {}
    for group, inside, outside in ((tokyo, 3, 2), (los_angeles, 2, 3)):
        today = today_of(group, now)
        start = day_start(group, today)
        assert start <= now < day_start(group, today + timedelta(days=1))
        # Outside first: yesterday's last second, an hour earlier, three days back.
        outside_times = [start - timedelta(seconds=1), start - timedelta(hours=1)]
        outside_times.append(start - timedelta(days=3))
        answers = [
            await sent(harness, group, f"{group['remark']}-out-{n}", at)
            for n, at in enumerate(outside_times[:outside])
        ]
        inside_times = [start, start + (now - start) / 2, now][:inside]
        for n, at in enumerate(inside_times):
            answers.append(await sent(harness, group, f"{group['remark']}-in-{n}", at))
        # Each answer carries the account's today as it stood right after the event.
        assert [a["today_incoming"] for a in answers] == [0] * outside + list(range(1, inside + 1))
        expected_today[group["id"]] = inside

    # One instant that is today for the group whose day began first, yesterday for the other.
    starts = {g["id"]: day_start(g, today_of(g, now)) for g in (tokyo, los_angeles)}
    shared = min(starts.values())
    for group in (tokyo, los_angeles):
        await sent(harness, group, "shared", shared)
        expected_today[group["id"]] += int(starts[group["id"]] == shared)

    listed = await harness.client.get("/api/leads/groups", headers=admin)
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    for group in (tokyo, los_angeles):
        item = items[group["id"]]
        assert item["business_date"] == today_of(group, now).isoformat()
        assert item["today_incoming"] == expected_today[group["id"]], group["remark"]
        assert item["total_incoming"] == 6
        single = await group_figures(harness, admin, group["id"])
        assert single["today_incoming"] == expected_today[group["id"]]
        (account,) = (
            await harness.client.get(f"/api/leads/groups/{group['id']}/accounts", headers=admin)
        ).json()["items"]
        assert account["today_incoming"] == expected_today[group["id"]]
        assert account["total_incoming"] == 6
        rows = await daily(
            harness,
            admin,
            group["id"],
            (today_of(group, now) - timedelta(days=5)).isoformat(),
            today_of(group, now).isoformat(),
        )
        assert rows[-1]["business_date"] == today_of(group, now).isoformat()
        assert rows[-1]["incoming"] == expected_today[group["id"]]
        assert sum(r["incoming"] for r in rows) == 6
    # The desktop client sees the same today.
    login = await harness.client.post(
        "/api/client/login", headers={"X-Activation-Code": tokyo["activation_code"]}
    )
    assert login.json()["today_incoming"] == expected_today[tokyo["id"]]
    assert login.json()["business_date"] == today_of(tokyo, now).isoformat()


# ---------------------------------------------------------------- the incoming log


async def test_incoming_log_is_newest_first_and_paginated(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, accounts=["acc"], timezone="UTC")
    other = await make_group(harness, admin, accounts=["acc"], timezone="UTC")
    await sent(harness, other, "elsewhere", "2026-02-01T00:00:00Z")
    first = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    events = []
    for n in range(7):
        answer = await sent(harness, group, f"U{n % 5}", first + timedelta(hours=n))
        events.append(answer["event_id"])
    newest_first = list(reversed(events))

    async def page(**params: Any) -> dict[str, Any]:
        response = await harness.client.get(
            f"/api/leads/groups/{group['id']}/incoming", params=params, headers=admin
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    everything = await page()
    assert (everything["total"], everything["page"], everything["page_size"]) == (7, 1, 50)
    assert [row["event_id"] for row in everything["items"]] == newest_first
    top = everything["items"][0]
    assert top["incoming_line_id"] == "U1" and top["is_duplicate"] is True
    assert datetime.fromisoformat(top["incoming_time"]) == first + timedelta(hours=6)
    assert top["business_date"] == "2026-02-01"
    assert [row["is_duplicate"] for row in reversed(everything["items"])] == [False] * 5 + [
        True
    ] * 2

    pages = [await page(page=p, page_size=3) for p in (1, 2, 3, 4)]
    assert [[row["event_id"] for row in p["items"]] for p in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert [(p["total"], p["page"], p["page_size"]) for p in pages] == [
        (7, 1, 3),
        (7, 2, 3),
        (7, 3, 3),
        (7, 4, 3),
    ]
    for bad in ({"page_size": 201}, {"page_size": 0}, {"page": 0}):
        response = await harness.client.get(
            f"/api/leads/groups/{group['id']}/incoming", params=bad, headers=admin
        )
        assert response.status_code == 422, (bad, response.text)
        assert next(iter(bad)) in response.json()["error"]["message"]


# ---------------------------------------------------------------- the group list


async def test_group_list_search_filter_order_and_page_size(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    sales = await make_group(harness, admin, remark="Tokyo sales")
    osaka = await make_group(harness, admin, remark="Osaka support", description="Kansai region")
    night = await make_group(harness, admin, remark="tokyo night", is_active=False)
    nagoya = await make_group(harness, admin, remark="Nagoya")
    gone = await make_group(harness, admin, remark="Tokyo closed")
    deleted = await harness.client.delete(f"/api/leads/groups/{gone['id']}", headers=admin)
    assert deleted.status_code == 204
    await report_accounts(harness, sales, {"line_id": "a", "online_status": "online"})

    async def listing(**params: Any) -> dict[str, Any]:
        response = await harness.client.get("/api/leads/groups", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def remarks(body: dict[str, Any]) -> list[str]:
        return [item["remark"] for item in body["items"]]

    everything = await listing()
    assert remarks(everything) == ["Nagoya", "tokyo night", "Osaka support", "Tokyo sales"]
    assert (everything["total"], everything["page"], everything["page_size"]) == (4, 1, 50)
    item = everything["items"][-1]
    assert item["id"] == sales["id"]
    assert (item["total_accounts"], item["online_accounts"], item["line_accounts"]) == (1, 1, 1)
    assert (item["today_incoming"], item["total_incoming"], item["duplicate_incoming"]) == (
        0,
        0,
        0,
    )
    assert item["line_business_accounts"] == 0

    tokyo = await listing(search="TOKYO")
    assert (remarks(tokyo), tokyo["total"]) == (["tokyo night", "Tokyo sales"], 2)
    assert remarks(await listing(search="kansai")) == ["Osaka support"]
    assert remarks(await listing(search=osaka["activation_code"])) == ["Osaka support"]
    assert (await listing(search="nowhere"))["items"] == []
    assert remarks(await listing(is_active="false")) == ["tokyo night"]
    assert remarks(await listing(is_active="true")) == ["Nagoya", "Osaka support", "Tokyo sales"]
    assert remarks(await listing(search="tokyo", is_active="true")) == ["Tokyo sales"]

    pages = [await listing(page=p, page_size=3) for p in (1, 2, 3)]
    assert [remarks(p) for p in pages] == [
        ["Nagoya", "tokyo night", "Osaka support"],
        ["Tokyo sales"],
        [],
    ]
    assert [(p["total"], p["page"], p["page_size"]) for p in pages] == [
        (4, 1, 3),
        (4, 2, 3),
        (4, 3, 3),
    ]
    assert (await listing(page_size=200))["page_size"] == 200
    for bad in ({"page_size": 201}, {"page_size": 0}, {"page": 0}):
        response = await harness.client.get("/api/leads/groups", params=bad, headers=admin)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert next(iter(bad)) in response.json()["error"]["message"]
    assert {night["id"], nagoya["id"]} <= {i["id"] for i in everything["items"]}


async def test_group_search_takes_percent_and_underscore_literally(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    await make_group(harness, admin, remark="Promo 100% off")
    await make_group(harness, admin, remark="Promo 1000 leads")
    await make_group(harness, admin, remark="team_a")
    await make_group(harness, admin, remark="team-b")

    async def remarks(search: str) -> list[str]:
        response = await harness.client.get(
            "/api/leads/groups", params={"search": search}, headers=admin
        )
        assert response.status_code == 200, response.text
        return [item["remark"] for item in response.json()["items"]]

    assert await remarks("100%") == ["Promo 100% off"]
    assert await remarks("team_") == ["team_a"]
    assert await remarks("%") == ["Promo 100% off"]
