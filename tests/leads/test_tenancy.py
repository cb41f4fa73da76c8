"""Who may see and change what in the leads admin API, and how the API authenticates.

An operator sees only their own groups: everything else answers 404 exactly like a group
that does not exist. A viewer reads everything and changes nothing (403). An admin does
everything. Missing or bad credentials are 401 with the JSON error body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import PASSWORD, bearer, make_group, make_user, user_token
from tests.leads.helpers import group_figures, incoming


@dataclass
class World:
    admin: dict[str, str]
    alice: dict[str, str]  # operator owning group `a`
    bob: dict[str, str]  # operator owning group `b`
    viewer: dict[str, str]
    a: dict[str, Any]
    b: dict[str, Any]
    b_account_id: int


@pytest.fixture
async def world(harness: Harness) -> World:
    # Tokens signed with the server's own key: an argon2 check per sign-in would only slow
    # these tests down (POST /api/auth/token itself is tested below).
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    alice = bearer(await user_token(harness.runtime, "alice", Role.operator))
    bob = bearer(await user_token(harness.runtime, "bob", Role.operator))
    viewer = bearer(await user_token(harness.runtime, "viewer", Role.viewer))
    a = await make_group(harness, alice, remark="alice's group", accounts=["acc-1"])
    b = await make_group(harness, bob, remark="bob's group", accounts=["acc-1"])
    for group in (a, b):
        assert (await incoming(harness, group, "acc-1", "U1")).status_code == 200
    accounts = await harness.client.get(f"/api/leads/groups/{b['id']}/accounts", headers=bob)
    assert accounts.status_code == 200, accounts.text
    return World(admin, alice, bob, viewer, a, b, accounts.json()["items"][0]["id"])


def reads(group_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/api/leads/groups/{group_id}", None),
        ("GET", f"/api/leads/groups/{group_id}/accounts", None),
        ("GET", f"/api/leads/groups/{group_id}/daily", None),
        ("GET", f"/api/leads/groups/{group_id}/incoming", None),
    ]


def writes(group_id: int, account_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("PATCH", f"/api/leads/groups/{group_id}", {"remark": "taken over", "is_active": False}),
        ("POST", f"/api/leads/groups/{group_id}/activation-code", None),
        ("DELETE", f"/api/leads/accounts/{account_id}", None),
        ("DELETE", f"/api/leads/groups/{group_id}", None),
    ]


async def call(
    h: Harness, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> Any:
    return await h.client.request(method, path, json=body, headers=headers)


def assert_json_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


# ---------------------------------------------------------------- operators


async def test_an_operator_gets_404_for_another_operators_group_everywhere(
    harness: Harness, world: World
) -> None:
    b = world.b
    missing = 999_999
    for method, path, body in reads(b["id"]) + writes(b["id"], world.b_account_id):
        theirs = await call(harness, method, path, body, world.alice)
        assert_json_error(theirs, 404)
        # Exactly what a group that does not exist answers: nothing reveals it is there.
        ghost_path = path.replace(str(b["id"]), str(missing)).replace(
            str(world.b_account_id), str(missing)
        )
        ghost = await call(harness, method, ghost_path, body, world.alice)
        assert_json_error(ghost, 404)
        assert theirs.json()["error"]["code"] == ghost.json()["error"]["code"]

    # Nothing of bob's changed.
    after = await group_figures(harness, world.bob, b["id"])
    assert after["remark"] == "bob's group"
    assert after["is_active"] is True
    assert after["activation_code"] == b["activation_code"]
    assert (after["total_accounts"], after["total_incoming"]) == (1, 1)
    accounts = await harness.client.get(f"/api/leads/groups/{b['id']}/accounts", headers=world.bob)
    assert [a["id"] for a in accounts.json()["items"]] == [world.b_account_id]


async def test_an_operator_lists_only_their_own_groups(harness: Harness, world: World) -> None:
    listing = await harness.client.get("/api/leads/groups", headers=world.alice)
    assert listing.status_code == 200, listing.text
    assert [g["id"] for g in listing.json()["items"]] == [world.a["id"]]
    assert listing.json()["total"] == 1
    # Not even by searching for the other group's activation code or remark.
    for search in (world.b["activation_code"], "bob"):
        found = await harness.client.get(
            "/api/leads/groups", params={"search": search}, headers=world.alice
        )
        assert found.status_code == 200
        assert (found.json()["total"], found.json()["items"]) == (0, [])


async def test_an_operator_manages_their_own_group(harness: Harness, world: World) -> None:
    a = world.a
    for method, path, body in reads(a["id"]):
        response = await call(harness, method, path, body, world.alice)
        assert response.status_code == 200, (path, response.text)
    patched = await harness.client.patch(
        f"/api/leads/groups/{a['id']}", json={"remark": "renamed"}, headers=world.alice
    )
    assert patched.status_code == 200 and patched.json()["remark"] == "renamed"
    rotated = await harness.client.post(
        f"/api/leads/groups/{a['id']}/activation-code", headers=world.alice
    )
    assert rotated.status_code == 200
    assert rotated.json()["activation_code"] != a["activation_code"]
    deleted = await harness.client.delete(f"/api/leads/groups/{a['id']}", headers=world.alice)
    assert deleted.status_code == 204
    gone = await harness.client.get(f"/api/leads/groups/{a['id']}", headers=world.alice)
    assert gone.status_code == 404


async def test_an_operator_cannot_create_a_group_for_someone_else(
    harness: Harness, world: World
) -> None:
    bob_id = (await harness.client.get("/api/auth/me", headers=world.bob)).json()["id"]
    refused = await harness.client.post(
        "/api/leads/groups", json={"remark": "for bob", "owner_id": bob_id}, headers=world.alice
    )
    assert_json_error(refused, 403)
    listing = await harness.client.get("/api/leads/groups", headers=world.bob)
    assert [g["remark"] for g in listing.json()["items"]] == ["bob's group"]

    # An admin may, and the group is then bob's alone.
    made = await harness.client.post(
        "/api/leads/groups", json={"remark": "from admin", "owner_id": bob_id}, headers=world.admin
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner_id"] == bob_id
    listing = await harness.client.get("/api/leads/groups", headers=world.bob)
    assert {g["remark"] for g in listing.json()["items"]} == {"bob's group", "from admin"}
    hidden = await harness.client.get(f"/api/leads/groups/{made.json()['id']}", headers=world.alice)
    assert hidden.status_code == 404


async def test_an_operator_cannot_recalibrate(harness: Harness, world: World) -> None:
    refused = await harness.client.post("/api/leads/recalibrate", headers=world.alice)
    assert_json_error(refused, 403)
    runs = await harness.client.get("/api/leads/recalibrations", headers=world.admin)
    assert runs.json()["total"] == 0


# ---------------------------------------------------------------- viewers


async def test_a_viewer_gets_403_on_every_write(harness: Harness, world: World) -> None:
    b = world.b
    attempts = [
        ("POST", "/api/leads/groups", {"remark": "viewer's"}),
        *writes(b["id"], world.b_account_id),
        ("POST", "/api/leads/recalibrate", None),
    ]
    for method, path, body in attempts:
        response = await call(harness, method, path, body, world.viewer)
        assert_json_error(response, 403)

    after = await group_figures(harness, world.admin, b["id"])
    assert (after["remark"], after["is_active"], after["activation_code"]) == (
        "bob's group",
        True,
        b["activation_code"],
    )
    assert (after["total_accounts"], after["online_accounts"]) == (1, 1)
    listing = await harness.client.get("/api/leads/groups", headers=world.admin)
    assert listing.json()["total"] == 2
    runs = await harness.client.get("/api/leads/recalibrations", headers=world.admin)
    assert runs.json()["total"] == 0


async def test_a_viewer_reads_every_group(harness: Harness, world: World) -> None:
    listing = await harness.client.get("/api/leads/groups", headers=world.viewer)
    assert listing.status_code == 200
    assert {g["id"] for g in listing.json()["items"]} == {world.a["id"], world.b["id"]}
    for group in (world.a, world.b):
        for method, path, body in reads(group["id"]):
            response = await call(harness, method, path, body, world.viewer)
            assert response.status_code == 200, (path, response.text)
    figures = await group_figures(harness, world.viewer, world.b["id"])
    assert figures["total_incoming"] == 1
    recalibrations = await harness.client.get("/api/leads/recalibrations", headers=world.viewer)
    assert recalibrations.status_code == 200


# ---------------------------------------------------------------- admins


async def test_an_admin_sees_and_changes_every_group(harness: Harness, world: World) -> None:
    listing = await harness.client.get("/api/leads/groups", headers=world.admin)
    assert {g["id"] for g in listing.json()["items"]} == {world.a["id"], world.b["id"]}
    for method, path, body in reads(world.b["id"]):
        response = await call(harness, method, path, body, world.admin)
        assert response.status_code == 200, (path, response.text)
    patched = await harness.client.patch(
        f"/api/leads/groups/{world.b['id']}", json={"remark": "by admin"}, headers=world.admin
    )
    assert patched.status_code == 200 and patched.json()["remark"] == "by admin"
    removed = await harness.client.delete(
        f"/api/leads/accounts/{world.b_account_id}", headers=world.admin
    )
    assert removed.status_code == 204
    figures = await group_figures(harness, world.bob, world.b["id"])
    assert (figures["remark"], figures["total_accounts"]) == ("by admin", 0)
    recalibrated = await harness.client.post("/api/leads/recalibrate", headers=world.admin)
    assert recalibrated.status_code == 200, recalibrated.text


# ---------------------------------------------------------------- authentication


async def test_missing_or_invalid_tokens_are_401_with_a_json_error(
    harness: Harness, world: World
) -> None:
    secret = harness.runtime.secret_key
    now = int(time.time())
    me = (await harness.client.get("/api/auth/me", headers=world.alice)).json()
    expired = jwt.encode(
        {"sub": str(me["id"]), "role": "operator", "iat": now - 7200, "exp": now - 3600},
        secret,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": str(me["id"]), "role": "admin", "iat": now, "exp": now + 3600},
        "not-the-server-key-0123456789-0123456789",
        algorithm="HS256",
    )
    unknown_user = jwt.encode(
        {"sub": "987654", "role": "admin", "iat": now, "exp": now + 3600},
        secret,
        algorithm="HS256",
    )
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Basic {world.alice['Authorization'].split()[1]}"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {unknown_user}"},
    ]
    endpoints = [
        ("GET", "/api/auth/me", None),
        ("GET", "/api/leads/groups", None),
        ("GET", f"/api/leads/groups/{world.a['id']}", None),
        ("POST", "/api/leads/groups", {"remark": "x"}),
        ("DELETE", f"/api/leads/groups/{world.a['id']}", None),
        ("POST", "/api/leads/recalibrate", None),
    ]
    for headers in bad_headers:
        for method, path, body in endpoints:
            response = await call(harness, method, path, body, headers)
            assert_json_error(response, 401)
    # Nothing was created or deleted by any of them.
    listing = await harness.client.get("/api/leads/groups", headers=world.admin)
    assert listing.json()["total"] == 2


async def test_token_with_a_wrong_password_is_401(harness: Harness) -> None:
    await make_user(harness, "carol", Role.operator, password="right-password")
    wrong = await harness.client.post(
        "/api/auth/token", data={"username": "carol", "password": "wrong-password"}
    )
    assert_json_error(wrong, 401, "bad_credentials")
    assert "access_token" not in wrong.json()
    nobody = await harness.client.post(
        "/api/auth/token", data={"username": "nobody", "password": "right-password"}
    )
    assert_json_error(nobody, 401, "bad_credentials")
    # Same answer for an unknown user and a wrong password.
    assert nobody.json()["error"]["message"] == wrong.json()["error"]["message"]
    incomplete = await harness.client.post("/api/auth/token", data={"username": "carol"})
    assert_json_error(incomplete, 422, "validation_error")
    assert "password" in incomplete.json()["error"]["message"]


async def test_me_answers_who_the_token_belongs_to(harness: Harness) -> None:
    for name, role in (("ann", Role.admin), ("oscar", Role.operator), ("vera", Role.viewer)):
        headers = bearer(await user_token(harness.runtime, name, role))
        me = await harness.client.get("/api/auth/me", headers=headers)
        assert me.status_code == 200, me.text
        body = me.json()
        assert (body["username"], body["role"]) == (name, role.value)
        assert isinstance(body["id"], int)
        assert "password_hash" not in body
    token = await harness.client.post(
        "/api/auth/token", data={"username": "oscar", "password": PASSWORD}
    )
    assert token.json()["token_type"] == "bearer"
