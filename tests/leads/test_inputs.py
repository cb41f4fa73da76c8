"""The desktop client's inputs: a value the database cannot store, or an instant no
business day can be computed for, is a 422 naming the field (in a batch: the item's
field), and then nothing of the request is recorded. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import bearer, make_group, user_token
from tests.leads.helpers import client_headers, group_figures

FAR_FUTURE = "9999-12-31T23:59:59-05:00"  # its business day would be in year 10000
FAR_PAST = "0001-01-01T00:00:00+05:00"  # in UTC, before year 1


def _lead(contact: str, **extra: Any) -> dict[str, Any]:
    return {"account_line_id": "acc", "incoming_line_id": contact, **extra}


# (method, path, JSON body, the field the answer must name)
REFUSED: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/client/incoming", _lead("U1", incoming_time=FAR_FUTURE), "incoming_time"),
    ("POST", "/api/client/incoming", _lead("U1", incoming_time=FAR_PAST), "incoming_time"),
    ("POST", "/api/client/incoming", _lead("U\x001"), "incoming_line_id"),
    ("POST", "/api/client/incoming", _lead("U1", event_id="e\x00"), "event_id"),
    (
        "POST",
        "/api/client/incoming",
        {**_lead("U1"), "account_line_id": "a\x00"},
        "account_line_id",
    ),
    (
        "POST",
        "/api/client/incoming/batch",
        {
            "events": [_lead(f"U{i}", event_id=f"b{i}") for i in range(3)]
            + [_lead("U3", event_id="b3", incoming_time=FAR_FUTURE)]
        },
        "events.3.incoming_time",
    ),
    (
        "POST",
        "/api/client/incoming/batch",
        {"events": [_lead("U1", event_id="c1"), _lead("U\x00", event_id="c2")]},
        "events.1.incoming_line_id",
    ),
    ("PUT", "/api/client/accounts", {"accounts": [{"line_id": "a\x00"}]}, "accounts.0.line_id"),
    (
        "PUT",
        "/api/client/accounts",
        {"accounts": [{"line_id": "a1", "display_name": "\x00"}]},
        "accounts.0.display_name",
    ),
    ("POST", "/api/client/accounts/a%00b/status", {"online_status": "online"}, "path.line_id"),
]


async def test_a_bad_field_is_a_422_naming_it_and_nothing_is_counted(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    group = await make_group(harness, admin, accounts=["acc"])
    wrong = []
    for method, path, body, field in REFUSED:
        response = await harness.client.request(
            method, path, json=body, headers=client_headers(group)
        )
        fields = [f["field"] for f in response.json()["error"].get("fields", [])]
        if response.status_code != 422 or fields != [field]:
            wrong.append(f"{method} {path} {body}: {response.status_code} {response.text}")
    assert wrong == []
    figures = await group_figures(harness, admin, group["id"])
    assert (figures["total_incoming"], figures["total_accounts"]) == (0, 1)
    log = await harness.client.get(f"/api/leads/groups/{group['id']}/incoming", headers=admin)
    assert log.json()["items"] == []


async def test_a_lone_surrogate_is_refused_as_invalid_json(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    group = await make_group(harness, admin, accounts=["acc"])
    response = await harness.client.post(
        "/api/client/incoming",
        content=b'{"account_line_id": "acc", "incoming_line_id": "U\\ud800"}',
        headers={**client_headers(group), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text  # not JSON that decodes to text
    assert response.json()["error"]["code"] == "validation_error"


async def test_instants_within_the_range_are_counted_on_their_business_day(
    harness: Harness,
) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    group = await make_group(harness, admin, accounts=["acc"], timezone="Asia/Tokyo")
    events = [
        _lead("U1", event_id="early", incoming_time="1970-01-01T00:00:00+00:00"),
        _lead("U2", event_id="late", incoming_time="2199-12-31T14:59:59+00:00"),
    ]
    response = await harness.client.post(
        "/api/client/incoming/batch", json={"events": events}, headers=client_headers(group)
    )
    assert response.status_code == 200, response.text
    assert [r["ok"] for r in response.json()["results"]] == [True, True]
    daily = await harness.client.get(
        f"/api/leads/groups/{group['id']}/daily",
        params={"from": "2199-12-31", "to": "2199-12-31"},
        headers=admin,
    )
    assert daily.json() == [{"business_date": "2199-12-31", "incoming": 1, "duplicate_incoming": 0}]
