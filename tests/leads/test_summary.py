"""GET /api/leads/summary, the overview's leads figures, on SQLite, PostgreSQL and
MariaDB: today by each group's own business day, yesterday up to the same time into the
day, duplicates and accounts; an operator's figures cover only their groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import make_account, make_group, make_user
from tests.leads.helpers import incoming
from tests.leads.test_business_days import day_start, reset_time_ago, today_of


async def summary(h: Harness, auth: dict[str, str]) -> dict[str, Any]:
    response = await h.client.get("/api/leads/summary", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_today_and_yesterday_up_to_the_same_time(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    now = datetime.now(UTC)
    # Today began 6 hours ago in Tokyo: yesterday's leads count up to 6 h into that day.
    group = await make_group(
        harness, admin, timezone="Asia/Tokyo", reset_time=reset_time_ago("Asia/Tokyo", 6, now)
    )
    await make_account(harness, group, "acc", online_status="online")
    today = today_of(group, now)
    yesterday_start = day_start(group, today - timedelta(days=1))
    sends = [
        ("y-early", yesterday_start + timedelta(hours=1)),  # counted: before 6 h in
        ("y-late", yesterday_start + timedelta(hours=7)),  # not: after the same time
        ("t-1", now - timedelta(hours=1)),
        ("t-2", now - timedelta(minutes=30)),
        ("t-1", now - timedelta(minutes=10)),  # a duplicate, today
    ]
    for contact, at in sends:
        answer = await incoming(harness, group, "acc", contact, incoming_time=at.isoformat())
        assert answer.status_code == 200, answer.text

    figures = await summary(harness, admin)
    assert figures == {
        "groups": 1,
        "today_incoming": 3,
        "yesterday_same_time": 1,
        "today_duplicates": 1,
        "total_accounts": 1,
        "online_accounts": 1,
    }


async def test_an_operator_sees_only_their_groups(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    alice = await make_user(harness, "alice", Role.operator)
    mine = await make_group(harness, alice)
    theirs = await make_group(harness, admin)
    await make_account(harness, mine, "a1")
    await make_account(harness, theirs, "b1")
    await make_account(harness, theirs, "b2")
    sends = ((mine, "a1", "c1"), (theirs, "b1", "c2"), (theirs, "b2", "c3"))
    for group, account, contact in sends:
        assert (await incoming(harness, group, account, contact)).status_code == 200

    assert (await summary(harness, alice))["groups"] == 1
    assert (await summary(harness, alice))["today_incoming"] == 1
    everything = await summary(harness, admin)
    assert (everything["groups"], everything["today_incoming"]) == (2, 3)
    assert (everything["total_accounts"], everything["online_accounts"]) == (3, 3)
    assert (await summary(harness, alice))["total_accounts"] == 1


async def test_no_group_no_figure(harness: Harness) -> None:
    viewer = await make_user(harness, "viewer", Role.viewer)
    assert await summary(harness, viewer) == {
        "groups": 0,
        "today_incoming": 0,
        "yesterday_same_time": 0,
        "today_duplicates": 0,
        "total_accounts": 0,
        "online_accounts": 0,
    }


async def test_yesterday_is_each_groups_own_day_before_its_reset(harness: Harness) -> None:
    """Two groups whose days began 6 h and 2 h ago: each counts its own yesterday up to
    its own time into the day; a lead just before yesterday's reset belongs to the day
    before and counts for neither figure."""
    admin = await make_user(harness, "admin", Role.admin)
    now = datetime.now(UTC)
    tokyo = await make_group(
        harness, admin, timezone="Asia/Tokyo", reset_time=reset_time_ago("Asia/Tokyo", 6, now)
    )
    bangkok = await make_group(
        harness,
        admin,
        timezone="Asia/Bangkok",
        reset_time=reset_time_ago("Asia/Bangkok", 2, now),
    )
    sends = []
    for group in (tokyo, bangkok):
        await make_account(harness, group, "acc")
        yesterday_start = day_start(group, today_of(group, now) - timedelta(days=1))
        sends += [
            (group, "before-reset", yesterday_start - timedelta(minutes=1)),
            (group, "at-1h", yesterday_start + timedelta(hours=1)),
            (group, "at-3h", yesterday_start + timedelta(hours=3)),
        ]
    for group, contact, at in sends:
        answer = await incoming(harness, group, "acc", contact, incoming_time=at.isoformat())
        assert answer.status_code == 200, answer.text

    figures = await summary(harness, admin)
    # Tokyo (6 h into today): 1 h and 3 h in. Bangkok (2 h into today): 1 h in only.
    assert (figures["yesterday_same_time"], figures["today_incoming"]) == (3, 0)
