"""The dashboard's session cookie (POST/DELETE /api/auth/session): HttpOnly and
SameSite=Strict. It reads alone; a change made with it needs this origin and the page's
X-CSRF-Token, so that no change can be forged with it from another site."""

from __future__ import annotations

from tallyhub.core.auth import Role, csrf_token
from tests.conftest import Harness
from tests.factories import PASSWORD, make_user


async def test_a_session_cookie_reads_and_changes_only_with_its_pages_token(
    harness: Harness,
) -> None:
    bearer = await make_user(harness, "admin", Role.admin)
    harness.client.cookies.clear()
    opened = await harness.client.post(
        "/api/auth/session", data={"username": "admin", "password": PASSWORD}
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

    # A cookie alone would let another site forge a change: refused, and nothing made.
    made = await harness.client.post("/api/leads/groups", json={"remark": "forged?"})
    assert made.status_code == 401, made.text
    assert made.json()["error"]["code"] == "origin"
    elsewhere = {"Origin": "https://evil.example"}
    made = await harness.client.post("/api/leads/groups", json={"remark": "x"}, headers=elsewhere)
    assert made.status_code == 401 and made.json()["error"]["code"] == "origin"
    here = {"Origin": "http://test"}
    made = await harness.client.post("/api/leads/groups", json={"remark": "x"}, headers=here)
    assert made.status_code == 401 and made.json()["error"]["code"] == "csrf"
    assert "X-CSRF-Token" in made.json()["error"]["message"]
    secret = harness.app.state.runtime.secret_key
    other = csrf_token(secret, "another session")
    made = await harness.client.post(
        "/api/leads/groups", json={"remark": "x"}, headers={**here, "X-CSRF-Token": other}
    )
    assert made.status_code == 401 and made.json()["error"]["code"] == "csrf"
    groups = await harness.client.get("/api/leads/groups")
    assert groups.json()["total"] == 0

    # The page's token, sent from this origin: the change is made.
    token = csrf_token(secret, harness.client.cookies["tallyhub_session"])
    made = await harness.client.post(
        "/api/leads/groups", json={"remark": "page"}, headers={**here, "X-CSRF-Token": token}
    )
    assert made.status_code == 201, made.text
    made = await harness.client.post("/api/leads/groups", json={"remark": "real"}, headers=bearer)
    assert made.status_code == 201, made.text

    closed = await harness.client.delete("/api/auth/session")
    assert closed.status_code == 204
    assert "max-age=0" in closed.headers["set-cookie"].lower()
    assert (await harness.client.get("/api/auth/me")).status_code == 401


async def test_a_wrong_password_opens_no_session(harness: Harness) -> None:
    await make_user(harness, "viewer", Role.viewer)
    harness.client.cookies.clear()
    refused = await harness.client.post(
        "/api/auth/session", data={"username": "viewer", "password": "wrong"}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "bad_credentials"
    assert "set-cookie" not in refused.headers
    assert (await harness.client.get("/api/auth/me")).status_code == 401


async def test_the_cookies_token_is_no_bearer_token_and_a_bearer_token_no_cookie(
    harness: Harness,
) -> None:
    bearer = await make_user(harness, "admin", Role.admin)
    harness.client.cookies.clear()
    opened = await harness.client.post(
        "/api/auth/session", data={"username": "admin", "password": PASSWORD}
    )
    assert opened.status_code == 200, opened.text
    leaked = harness.client.cookies["tallyhub_session"]
    harness.client.cookies.clear()
    # A cookie value that leaks cannot be replayed as a bearer token to change anything.
    for method in ("GET", "POST"):
        refused = await harness.client.request(
            method,
            "/api/leads/groups",
            json={"remark": "x"} if method == "POST" else None,
            headers={"Authorization": f"Bearer {leaked}"},
        )
        assert refused.status_code == 401, (method, refused.text)
        assert refused.json()["error"]["code"] == "invalid_token"
    # Nor does a bearer token serve as the cookie.
    token = bearer["Authorization"].removeprefix("Bearer ")
    harness.client.cookies.set("tallyhub_session", token)
    assert (await harness.client.get("/api/auth/me")).status_code == 401


async def test_only_this_servers_own_page_may_sign_in_a_session(harness: Harness) -> None:
    await make_user(harness, "viewer", Role.viewer)
    harness.client.cookies.clear()
    form = {"username": "viewer", "password": PASSWORD}
    forged = await harness.client.post(
        "/api/auth/session", data=form, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "origin"
    assert "set-cookie" not in forged.headers
    host = harness.client.base_url.netloc.decode()
    own = await harness.client.post(
        "/api/auth/session", data=form, headers={"Origin": f"http://{host}"}
    )
    assert own.status_code == 200, own.text


async def test_the_session_cookie_is_secure_in_production_unless_told_otherwise(
    harness: Harness,
) -> None:
    await make_user(harness, "viewer", Role.viewer)
    settings = harness.runtime.settings
    form = {"username": "viewer", "password": PASSWORD}
    for env, configured, secure in (
        ("test", None, False),
        ("production", None, True),
        ("production", False, False),
        ("test", True, True),
    ):
        settings.env, settings.auth.cookie_secure = env, configured  # type: ignore[assignment]
        opened = await harness.client.post("/api/auth/session", data=form)
        assert opened.status_code == 200, opened.text
        attributes = {a.strip().lower() for a in opened.headers["set-cookie"].split(";")}
        assert ("secure" in attributes) is secure, (env, configured)


async def test_with_no_credentials_the_answer_says_how_to_sign_in(harness: Harness) -> None:
    harness.client.cookies.clear()
    refused = await harness.client.get("/api/leads/groups")
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    assert "Bearer" in message and "cookie" not in message
