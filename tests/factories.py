"""What tests need before they start: users, lead groups, LINE accounts, click campaigns.

Each is made the way the app's own clients make it (the admin API, the desktop client's
account report; users as `tallyhub users create` leaves them) and checked to have worked,
so that a test states only what is particular to it. Groups, accounts and campaigns are
made through a Harness or, for an app served for real, an httpx client.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import httpx

from tallyhub.core.auth import Role, User, hash_password, issue_token
from tallyhub.core.runtime import Runtime
from tests.conftest import Harness

PASSWORD = "pw-1234"  # every user's, unless a test says otherwise
HOST = "shop.example.com"  # the host a campaign's links may lead to, unless told otherwise

Client = Harness | httpx.AsyncClient


def _http(on: Client) -> httpx.AsyncClient:
    return on.client if isinstance(on, Harness) else on


# ---------------------------------------------------------------- users


@cache
def _password_hash(password: str) -> str:
    """argon2 is slow on purpose (~0.2 s): each password is hashed once per run."""
    return hash_password(password)


async def add_user(runtime: Runtime, username: str, role: Role, password: str = PASSWORD) -> User:
    """A user row, active, that signs in with `password`."""

    async def add(session: Any) -> User:
        user = User(
            username=username, password_hash=_password_hash(password), role=role, is_active=True
        )
        session.add(user)
        await session.flush()
        return user

    return await runtime.db.run(add)


async def make_user(
    h: Harness, username: str, role: Role, password: str = PASSWORD
) -> dict[str, str]:
    """A user signed in through POST /api/auth/token: the Authorization header to send."""
    await add_user(h.runtime, username, role, password)
    response = await h.client.post(
        "/api/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def user_token(runtime: Runtime, username: str, role: Role) -> str:
    """A user and a bearer token signed with the server's own key, without signing in:
    for tests that are not about signing in (each sign-in checks an argon2 hash)."""
    user = await add_user(runtime, username, role)
    return issue_token(runtime.secret_key, user, 60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- leads


async def make_group(
    on: Client, auth: dict[str, str], *, accounts: Sequence[str] = (), **fields: Any
) -> dict[str, Any]:
    """A lead group (POST /api/leads/groups with `fields`); with `accounts`, the line ids
    of online accounts that its desktop client reports right away."""
    response = await _http(on).post("/api/leads/groups", json=fields, headers=auth)
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    if accounts:
        await _report(on, group, [{"line_id": a, "online_status": "online"} for a in accounts])
    return group


async def make_account(
    on: Client, group: dict[str, Any], line_id: str, online_status: str = "online", **fields: Any
) -> None:
    """A LINE account of `group`, as its desktop client reports it (`fields` are the
    report's other fields)."""
    await _report(on, group, [{"line_id": line_id, "online_status": online_status, **fields}])


async def _report(on: Client, group: dict[str, Any], accounts: list[dict[str, Any]]) -> None:
    response = await _http(on).put(
        "/api/client/accounts",
        json={"accounts": accounts},
        headers={"X-Activation-Code": group["activation_code"]},
    )
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- clicks


async def make_campaign(
    on: Client, auth: dict[str, str], name: str = "Spring sale", **fields: Any
) -> dict[str, Any]:
    """A click campaign (POST /api/clicks/campaigns); its links lead to HOST unless
    `allowed_hosts` is given."""
    fields.setdefault("allowed_hosts", [HOST])
    response = await _http(on).post(
        "/api/clicks/campaigns", json={"name": name, **fields}, headers=auth
    )
    assert response.status_code == 201, response.text
    campaign: dict[str, Any] = response.json()
    return campaign
