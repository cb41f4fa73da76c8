"""The dashboard's session cookie (POST/DELETE /api/auth/session): HttpOnly and
SameSite=Strict, and good for reading only, so that no change can be forged with it."""

from __future__ import annotations

from tallyhub.core.auth import Role
from tests.conftest import Harness


async def test_a_session_cookie_reads_but_never_writes(harness: Harness) -> None:
    bearer = await harness.user("admin", Role.admin)
    harness.client.cookies.clear()
    opened = await harness.client.post(
        "/api/auth/session", data={"username": "admin", "password": "pw-1234"}
    )
    assert opened.status_code == 200, opened.text
    assert (opened.json()["username"], opened.json()["role"]) == ("admin", "admin")
    set_cookie = opened.headers["set-cookie"]
    assert set_cookie.startswith("tallyhub_session=")
    attributes = {a.strip().lower() for a in set_cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=strict", "max-age=43200"} <= attributes
    assert "secure" not in attributes  # plain http here; set behind https

    me = await harness.client.get("/api/auth/me")  # the client sends the cookie back
    assert me.status_code == 200 and me.json()["username"] == "admin"
    assert (await harness.client.get("/api/jobs")).status_code == 200

    # A change needs the bearer token: a cookie alone would let another site forge it.
    made = await harness.client.post("/api/leads/groups", json={"remark": "forged?"})
    assert made.status_code == 401, made.text
    assert "session cookie serves reads only" in made.json()["error"]["message"]
    made = await harness.client.post("/api/leads/groups", json={"remark": "real"}, headers=bearer)
    assert made.status_code == 201, made.text

    closed = await harness.client.delete("/api/auth/session")
    assert closed.status_code == 204
    assert "max-age=0" in closed.headers["set-cookie"].lower()
    assert (await harness.client.get("/api/auth/me")).status_code == 401


async def test_a_wrong_password_opens_no_session(harness: Harness) -> None:
    await harness.user("viewer", Role.viewer)
    harness.client.cookies.clear()
    refused = await harness.client.post(
        "/api/auth/session", data={"username": "viewer", "password": "wrong"}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "bad_credentials"
    assert "set-cookie" not in refused.headers
    assert (await harness.client.get("/api/auth/me")).status_code == 401
