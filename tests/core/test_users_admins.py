"""/api/users keeps an admin, whatever the timing: two admins who demote each other at the
same instant leave one of them admin (on SQLite, PostgreSQL and MariaDB); a disabled
user's dashboard cookie stops working at once; the refusals are in the OpenAPI document."""

from __future__ import annotations

import asyncio

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import PASSWORD, make_user


async def test_two_admins_demoting_each_other_leave_one_admin(harness: Harness) -> None:
    first = await make_user(harness, "first", Role.admin)
    second = await make_user(harness, "second", Role.admin)
    listed = (await harness.client.get("/api/users", headers=first)).json()["items"]
    ids = {u["username"]: u["id"] for u in listed}

    answers = await asyncio.gather(
        harness.client.patch(f"/api/users/{ids['second']}", json={"role": "viewer"}, headers=first),
        harness.client.patch(f"/api/users/{ids['first']}", json={"role": "viewer"}, headers=second),
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200, [a.text for a in answers]
    # The loser is no admin any more (403), or it found the other the last admin (409).
    assert statuses[1] in (403, 409), [a.text for a in answers]
    refused = next(a for a in answers if a.status_code != 200).json()["error"]
    assert refused["code"] in ("admin_only", "last_admin")

    winner = first if answers[0].status_code == 200 else second
    everyone = (await harness.client.get("/api/users", headers=winner)).json()["items"]
    admins = [u["username"] for u in everyone if u["role"] == "admin" and u["is_active"]]
    assert len(admins) == 1


async def test_a_disabled_users_cookie_stops_working(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    await make_user(harness, "lena", Role.viewer)
    harness.client.cookies.clear()
    opened = await harness.client.post(
        "/api/auth/session", data={"username": "lena", "password": PASSWORD}
    )
    assert opened.status_code == 200, opened.text
    assert (await harness.client.get("/api/auth/me")).json()["username"] == "lena"

    lena = opened.json()["id"]
    off = await harness.client.patch(f"/api/users/{lena}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200, off.text
    me = await harness.client.get("/api/auth/me")  # the same cookie, sent again
    assert me.status_code == 401 and me.json()["error"]["code"] == "invalid_token"
    harness.client.cookies.clear()
    again = await harness.client.post(
        "/api/auth/session", data={"username": "lena", "password": PASSWORD}
    )
    assert again.status_code == 401 and again.json()["error"]["code"] == "bad_credentials"


async def test_the_refusals_are_documented(harness: Harness) -> None:
    paths = (await harness.client.get("/openapi.json")).json()["paths"]
    expected = {
        ("get", "/api/users"): {"401", "403", "422"},
        ("post", "/api/users"): {"401", "403", "409", "422"},
        ("get", "/api/users/{user_id}"): {"401", "403", "404", "422"},
        ("patch", "/api/users/{user_id}"): {"401", "403", "404", "409", "422"},
    }
    for (method, path), errors in expected.items():
        responses = paths[path][method]["responses"]
        assert {code for code in responses if int(code) >= 400} >= errors, (method, path)
        assert responses["403"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    created = paths["/api/users"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/UserDetail"}
