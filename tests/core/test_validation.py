"""Inputs the database cannot store answer 422 (or 404) naming the field, never a 500: NUL
characters (PostgreSQL refuses them), integers past their column's range, references to
nothing, time-zone names that are no zone. Across the admin endpoints of leads, clicks,
sign-in and jobs, on SQLite, PostgreSQL and MariaDB; the desktop client's endpoints are
in tests/leads/test_inputs.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tallyhub.core.auth import Role
from tallyhub.core.daywindow import zone
from tallyhub.core.validation import (
    INT32_MAX,
    MAX_INSTANT,
    MIN_INSTANT,
    Instant,
    Text,
)
from tests.conftest import Harness
from tests.factories import add_user, bearer, make_campaign, make_group, user_token

BIG = 2**63  # past every integer column (the fuzzer's favourite)

# (method, path, request keywords, the field the answer must name). {group} and
# {campaign} are ids of rows that exist.
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/auth/token", {"data": {"username": "de\x00mo", "password": "pw"}}, "username"),
    ("POST", "/api/auth/session", {"data": {"username": "de\x00mo", "password": "pw"}}, "username"),
    ("GET", f"/api/leads/groups/{INT32_MAX + 1}", {}, "group_id"),
    ("PATCH", f"/api/leads/groups/{BIG}", {"json": {}}, "group_id"),
    ("DELETE", f"/api/leads/groups/{INT32_MAX + 1}", {}, "group_id"),
    ("GET", f"/api/leads/groups/{INT32_MAX + 1}/daily", {}, "group_id"),
    ("DELETE", f"/api/leads/accounts/{BIG}", {}, "account_id"),
    ("POST", "/api/leads/groups", {"json": {"account_limit": BIG}}, "account_limit"),
    ("POST", "/api/leads/groups", {"json": {"account_limit": INT32_MAX + 1}}, "account_limit"),
    ("POST", "/api/leads/groups", {"json": {"owner_id": BIG}}, "owner_id"),
    ("POST", "/api/leads/groups", {"json": {"owner_id": 9999}}, "owner_id"),
    ("POST", "/api/leads/groups", {"json": {"timezone": "America"}}, "timezone"),
    ("POST", "/api/leads/groups", {"json": {"timezone": "A" * 300}}, "timezone"),
    ("POST", "/api/leads/groups", {"json": {"timezone": "../../etc/passwd"}}, "timezone"),
    ("POST", "/api/leads/groups", {"json": {"remark": "a\x00b"}}, "remark"),
    ("POST", "/api/leads/groups", {"json": {"description": "a\x00b"}}, "description"),
    ("POST", "/api/leads/groups", {"json": {"description": "x" * 2001}}, "description"),
    ("PATCH", "/api/leads/groups/{group}", {"json": {"timezone": "America"}}, "timezone"),
    ("PATCH", "/api/leads/groups/{group}", {"json": {"account_limit": BIG}}, "account_limit"),
    ("PATCH", "/api/leads/groups/{group}", {"json": {"description": "x" * 2001}}, "description"),
    ("GET", "/api/leads/groups", {"params": {"search": "a\x00"}}, "search"),
    ("GET", f"/api/clicks/campaigns/{INT32_MAX + 1}", {}, "campaign_id"),
    ("PATCH", f"/api/clicks/campaigns/{BIG}", {"json": {}}, "campaign_id"),
    ("GET", f"/api/clicks/campaigns/{BIG}/interactions", {}, "campaign_id"),
    ("POST", "/api/clicks/campaigns", {"json": {"name": "x", "owner_id": 9999}}, "owner_id"),
    ("POST", "/api/clicks/campaigns", {"json": {"name": "x", "owner_id": BIG}}, "owner_id"),
    ("POST", "/api/clicks/campaigns", {"json": {"name": "x\x00"}}, "name"),
    ("POST", "/api/clicks/campaigns", {"json": {"name": "x", "timezone": "America"}}, "timezone"),
    ("PATCH", "/api/clicks/campaigns/{campaign}", {"json": {"timezone": "A" * 300}}, "timezone"),
    ("GET", "/api/clicks/campaigns/{campaign}/users", {"params": {"src": BIG}}, "src"),
    ("GET", "/api/clicks/campaigns", {"params": {"search": "a\x00"}}, "search"),
    ("GET", "/api/clicks/users/a%00b", {}, "line_id"),
    ("GET", "/api/clicks/users/" + "a" * 65, {}, "line_id"),
    ("PATCH", "/api/clicks/members/a%00b", {"json": {"display_name": "x"}}, "line_uid"),
    ("PATCH", "/api/clicks/members/someone", {"json": {"display_name": "x\x00"}}, "display_name"),
    ("POST", "/api/clicks/links", {"json": {"cid": BIG, "to": "https://a.example/"}}, "cid"),
    ("GET", "/api/jobs/runs", {"params": {"job": "a\x00"}}, "job"),
]

# The largest values each column takes, and text it stores: answered as usual.
ACCEPTED: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", f"/api/leads/groups/{INT32_MAX}", {}, 404),
    ("GET", f"/api/clicks/campaigns/{INT32_MAX}", {}, 404),
    ("POST", "/api/leads/groups", {"json": {"account_limit": INT32_MAX}}, 201),
    ("POST", "/api/leads/groups", {"json": {"remark": "東京 🌸", "timezone": "Etc/GMT+9"}}, 201),
    ("POST", "/api/leads/groups", {"json": {"description": "説明" * 1000}}, 201),
    ("GET", "/api/clicks/campaigns/{campaign}/users", {"params": {"src": INT32_MAX}}, 200),
    ("GET", "/api/clicks/users/" + "a" * 64, {}, 200),
    ("POST", "/api/clicks/campaigns", {"json": {"name": "🌸 sale", "timezone": "UTC"}}, 201),
]


def _names(answer: dict[str, Any], field: str) -> bool:
    """The error envelope names `field` (as `field`, `path.field`, `query.field`...)."""
    error = answer.get("error", {})
    fields = [f["field"].split(".")[-1] for f in error.get("fields", [])]
    return field in fields or error.get("message", "").startswith(f"{field}:")


async def _ids(h: Harness, auth: dict[str, str]) -> dict[str, int]:
    group = await make_group(h, auth)
    campaign = await make_campaign(h, auth)
    return {"group": group["id"], "campaign": campaign["id"]}


async def test_inputs_the_database_cannot_store_are_refused_naming_the_field(
    harness: Harness,
) -> None:
    auth = bearer(await user_token(harness.runtime, "admin", Role.admin))
    ids = await _ids(harness, auth)
    wrong = []
    for method, path, keywords, field in REFUSED:
        response = await harness.client.request(
            method, path.format(**ids), headers=auth, **keywords
        )
        if response.status_code != 422 or not _names(response.json(), field):
            wrong.append(f"{method} {path[:60]} {keywords}: {response.status_code} {response.text}")
    assert wrong == []


async def test_the_edges_of_each_range_are_still_taken(harness: Harness) -> None:
    auth = bearer(await user_token(harness.runtime, "admin", Role.admin))
    ids = await _ids(harness, auth)
    wrong = []
    for method, path, keywords, status in ACCEPTED:
        response = await harness.client.request(
            method, path.format(**ids), headers=auth, **keywords
        )
        if response.status_code != status:
            wrong.append(f"{method} {path[:60]}: {response.status_code} {response.text[:300]}")
    assert wrong == []


async def test_an_admin_creates_for_a_user_that_exists(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    olga = await add_user(harness.runtime, "olga", Role.operator)
    group = await make_group(harness, admin, owner_id=olga.id)
    campaign = await make_campaign(harness, admin, owner_id=olga.id)
    assert group["owner_id"] == campaign["owner_id"] == olga.id


# ---------------------------------------------------------------- the types themselves


@pytest.mark.parametrize(
    "name",
    ["America", "Asia", "A" * 300, "../../etc/passwd", "Asia/Tokyo\x00", "zone.tab", "", " UTC"],
)
def test_a_name_that_is_no_zone_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        zone(name)


@pytest.mark.parametrize("name", ["Asia/Tokyo", "UTC", "Etc/GMT+9", "America/Argentina/Salta"])
def test_zone_names_are_found(name: str) -> None:
    assert zone(name).key == name


class _Report(BaseModel):
    note: Text
    at: Instant


@pytest.mark.parametrize(
    "at",
    [
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        (MIN_INSTANT - timedelta(microseconds=1)).isoformat(),
        MAX_INSTANT.isoformat(),
    ],
)
def test_an_instant_outside_the_range_is_refused(at: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _Report.model_validate({"note": "n", "at": at})
    assert [e["loc"] for e in refused.value.errors()] == [("at",)]


def test_the_range_holds_both_its_ends_and_text_refuses_only_nul() -> None:
    last = MAX_INSTANT - timedelta(microseconds=1)
    for at in (MIN_INSTANT, last, datetime(2026, 12, 6, 9, tzinfo=UTC)):
        assert _Report.model_validate({"note": "東京\t🌸", "at": at}).at == at
    with pytest.raises(ValidationError, match="NUL"):
        _Report.model_validate({"note": "a\x00", "at": MIN_INSTANT})
