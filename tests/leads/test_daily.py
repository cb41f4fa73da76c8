"""GET /api/leads/groups/{id}/daily as a chart reads it, on SQLite, PostgreSQL and MariaDB:
a complete range of business days (days without leads as zeros), its defaults, the ranges
it refuses (422 naming the parameter), and what /docs says of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import make_account, make_group, make_user
from tests.leads.helpers import incoming
from tests.leads.test_business_days import today_of

PATH = "/api/leads/groups/{id}/daily"


async def rows_of(h: Harness, auth: dict[str, str], group_id: int, **params: str) -> Any:
    response = await h.client.get(PATH.format(id=group_id), params=params, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_by_default_every_day_from_the_first_lead_to_today_zeros_included(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, timezone="Asia/Bangkok", reset_time="00:00")
    await make_account(harness, group, "acc")
    now = datetime.now(UTC)
    for contact, at in (("c1", now - timedelta(days=4)), ("c2", now), ("c1", now)):
        answer = await incoming(harness, group, "acc", contact, incoming_time=at.isoformat())
        assert answer.status_code == 200, answer.text
    today = today_of(group, now)

    rows = await rows_of(harness, admin, group["id"])
    assert [r["business_date"] for r in rows] == [
        (today - timedelta(days=n)).isoformat() for n in range(4, -1, -1)
    ]
    assert [(r["incoming"], r["duplicate_incoming"]) for r in rows] == [
        (1, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (2, 1),
    ]
    # Only `from`: up to today. Only `to`: from the first day with leads.
    since = await rows_of(harness, admin, group["id"], **{"from": today.isoformat()})
    assert since == rows[-1:]
    until = await rows_of(harness, admin, group["id"], to=(today - timedelta(days=3)).isoformat())
    assert until == rows[:2]


async def test_a_group_without_leads_answers_every_asked_day_as_zero(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    rows = await rows_of(harness, admin, group["id"], **{"from": "2026-02-27", "to": "2026-03-02"})
    assert rows == [
        {"business_date": day, "incoming": 0, "duplicate_incoming": 0}
        for day in ("2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02")
    ]
    # Nothing asked, nothing yet: today alone.
    assert [r["business_date"] for r in await rows_of(harness, admin, group["id"])] == [
        today_of(group, datetime.now(UTC)).isoformat()
    ]


async def test_a_range_ending_before_it_starts_or_too_long_is_refused(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    path = PATH.format(id=group["id"])

    backwards = await harness.client.get(
        path, params={"from": "2026-01-02", "to": "2026-01-01"}, headers=admin
    )
    assert backwards.status_code == 422
    error = backwards.json()["error"]
    assert error["code"] == "bad_day_range"
    assert error["message"].startswith("from: 2026-01-02")

    too_long = await harness.client.get(
        path, params={"from": "2000-01-01", "to": "2026-01-01"}, headers=admin
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["message"].startswith("from: 2000-01-01")
    assert "at most 3660" in too_long.json()["error"]["message"]

    not_a_day = await harness.client.get(path, params={"from": "yesterday"}, headers=admin)
    assert not_a_day.status_code == 422
    assert "from" in not_a_day.json()["error"]["message"]


async def test_the_api_reference_says_it_is_a_complete_range(harness: Harness) -> None:
    schema = (await harness.client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/leads/groups/{group_id}/daily"]["get"]
    assert "complete range" in operation["summary"]
    assert "complete range" in operation["description"]
    assert "422" in operation["responses"]
