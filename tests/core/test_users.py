"""/api/users on SQLite, PostgreSQL and MariaDB: admins list, create, change and disable
users; the refusals (not an admin, a taken name, a bad field, yourself, the last admin);
and a disabled user loses both sign-in and the token already held."""

from __future__ import annotations

from typing import Any

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import PASSWORD, make_user


async def create(h: Harness, auth: dict[str, str], **body: Any) -> Any:
    return await h.client.post("/api/users", json=body, headers=auth)


async def test_an_admin_creates_lists_changes_and_disables_users(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    made = await create(harness, admin, username="mei", password="pass-1234", role="viewer")
    assert made.status_code == 201, made.text
    mei = made.json()
    assert (mei["username"], mei["role"], mei["is_active"]) == ("mei", "viewer", True)
    assert "password" not in made.text and "hash" not in made.text

    listed = (await harness.client.get("/api/users", headers=admin)).json()
    assert [u["username"] for u in listed["items"]] == ["admin", "mei"]
    assert (listed["total"], listed["page"], listed["page_size"]) == (2, 1, 50)
    viewers = await harness.client.get("/api/users", params={"role": "viewer"}, headers=admin)
    assert [u["username"] for u in viewers.json()["items"]] == ["mei"]

    signed_in = await harness.client.post(
        "/api/auth/token", data={"username": "mei", "password": "pass-1234"}
    )
    token = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    promoted = await harness.client.patch(
        f"/api/users/{mei['id']}", json={"role": "operator"}, headers=admin
    )
    assert promoted.json()["role"] == "operator"
    assert (await harness.client.get("/api/auth/me", headers=token)).json()["role"] == "operator"

    disabled = await harness.client.patch(
        f"/api/users/{mei['id']}", json={"is_active": False}, headers=admin
    )
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    assert (await harness.client.get("/api/auth/me", headers=token)).status_code == 401
    again = await harness.client.post(
        "/api/auth/token", data={"username": "mei", "password": "pass-1234"}
    )
    assert again.status_code == 401
    inactive = await harness.client.get("/api/users", params={"is_active": False}, headers=admin)
    assert [u["username"] for u in inactive.json()["items"]] == ["mei"]

    enabled = await harness.client.patch(
        f"/api/users/{mei['id']}", json={"is_active": True, "password": "new-pass"}, headers=admin
    )
    assert enabled.status_code == 200
    back = await harness.client.post(
        "/api/auth/token", data={"username": "mei", "password": "new-pass"}
    )
    assert back.status_code == 200


async def test_what_is_refused(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    operator = await make_user(harness, "op", Role.operator)
    assert (await create(harness, operator, username="x", password="pass")).status_code == 403
    assert (await harness.client.get("/api/users", headers=operator)).status_code == 403

    taken = await create(harness, admin, username="op", password="pass-1234")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "user_exists"
    bad = await create(harness, admin, username="has space", password="pass-1234")
    assert bad.status_code == 422 and "username" in bad.text
    short = await create(harness, admin, username="ok", password="abc")
    assert short.status_code == 422 and "password" in short.text
    unknown = await harness.client.patch("/api/users/99999", json={"role": "viewer"}, headers=admin)
    assert unknown.status_code == 404

    me = (await harness.client.get("/api/auth/me", headers=admin)).json()
    for change in ({"role": "viewer"}, {"is_active": False}):
        own = await harness.client.patch(f"/api/users/{me['id']}", json=change, headers=admin)
        assert own.status_code == 409 and own.json()["error"]["code"] == "own_account"
    users = (await harness.client.get("/api/users", headers=admin)).json()["items"]
    assert [(u["username"], u["role"], u["is_active"]) for u in users] == [
        ("admin", "admin", True),
        ("op", "operator", True),
    ]


async def test_the_last_active_admin_stays(harness: Harness) -> None:
    first = await make_user(harness, "first", Role.admin)
    second = await make_user(harness, "second", Role.admin)
    ids = {
        u["username"]: u["id"]
        for u in (await harness.client.get("/api/users", headers=first)).json()["items"]
    }
    demoted = await harness.client.patch(
        f"/api/users/{ids['second']}", json={"role": "viewer"}, headers=first
    )
    assert demoted.status_code == 200
    # `second` is no admin now; `first` is the last one, and cannot be taken away by anyone.
    assert (await harness.client.get("/api/users", headers=second)).status_code == 403
    login = await harness.client.post(
        "/api/auth/token", data={"username": "first", "password": PASSWORD}
    )
    assert login.status_code == 200
