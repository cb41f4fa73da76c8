"""Live push over WebSocket (/ws/leads): figures after each committed change, only for
groups the signed-in user may see; across processes through Redis pub/sub.

httpx cannot speak WebSocket to an ASGI app, so the app is served for real by uvicorn
inside the test's event loop and reached with the `websockets` client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from sqlalchemy import update as sa_update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tallyhub.app import create_app
from tallyhub.core.auth import Role, User
from tests.conftest import Harness, TestDatabase, make_settings
from tests.factories import PASSWORD, bearer, make_group, user_token


@dataclass
class Served:
    """An app served by uvicorn on a free local port."""

    app: Any
    http: httpx.AsyncClient
    port: int

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/leads?token={token}"


async def admin_and_two_operators(runtime: Any) -> tuple[str, str, str]:
    """Tokens of an admin and of two operators, alice and bob, who each own their groups."""
    admin = await user_token(runtime, "admin", Role.admin)
    alice = await user_token(runtime, "alice", Role.operator)
    bob = await user_token(runtime, "bob", Role.operator)
    return admin, alice, bob


@asynccontextmanager
async def served_app(db: TestDatabase, tmp: Path, **settings: Any) -> AsyncIterator[Served]:
    """An app on `db` with these settings (scheduler off), served by uvicorn."""
    async with serve(create_app(make_settings(db.url, tmp, **settings), scheduler=False)) as served:
        yield served


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", ws="websockets-sansio")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            yield Served(app, http, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()


async def lead(
    http: httpx.AsyncClient, group: dict[str, Any], contact: str, line_id: str = "acc"
) -> dict[str, Any]:
    response = await http.post(
        "/api/client/incoming",
        json={"account_line_id": line_id, "incoming_line_id": contact},
        headers={"X-Activation-Code": group["activation_code"]},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def messages_until(
    ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool], within: float = 10
) -> list[dict[str, Any]]:
    """Read messages until `done(all read so far)`; fail with what arrived otherwise."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not done(received):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"expected messages did not arrive; received {received}")
        try:
            raw = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            continue
        received.append(json.loads(raw))
    return received


def of(
    messages: list[dict[str, Any]], kind: str, group_id: int, **figures: Any
) -> list[dict[str, Any]]:
    return [
        m
        for m in messages
        if m.get("type") == kind
        and m.get("group_id") == group_id
        and all(m.get(k) == v for k, v in figures.items())
    ]


async def subscribed(ws: ClientConnection) -> ClientConnection:
    # The server subscribes right after accepting; give it a moment to get there.
    await asyncio.sleep(0.1)
    return ws


# ---------------------------------------------------------------- one process


async def test_an_admin_receives_group_and_account_figures_after_a_lead(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        admin = await user_token(served.runtime, "admin", Role.admin)
        group = await make_group(served.http, bearer(admin), accounts=["acc"])
        async with connect(served.ws_url(admin)) as ws:
            await subscribed(ws)
            answer = await lead(served.http, group, "U1")
            assert answer["total_incoming"] == 1
            received = await messages_until(
                ws,
                lambda ms: (
                    bool(of(ms, "group_stats", group["id"], total_incoming=1))
                    and bool(of(ms, "account_stats", group["id"], total_incoming=1))
                ),
            )
            (group_stats,) = of(received, "group_stats", group["id"], total_incoming=1)
            assert group_stats["today_incoming"] == 1
            assert group_stats["duplicate_incoming"] == 0
            assert (group_stats["total_accounts"], group_stats["online_accounts"]) == (1, 1)
            assert "owner_id" not in group_stats
            (account_stats,) = of(received, "account_stats", group["id"], total_incoming=1)
            accounts = await served.http.get(
                f"/api/leads/groups/{group['id']}/accounts", headers=bearer(admin)
            )
            assert account_stats["line_account_id"] == accounts.json()["items"][0]["id"]
            assert (account_stats["today_incoming"], account_stats["duplicate_incoming"]) == (1, 0)

            # A duplicate lead: the next push carries the new absolute figures.
            await lead(served.http, group, "U1")
            received = await messages_until(
                ws, lambda ms: bool(of(ms, "group_stats", group["id"], total_incoming=2))
            )
            (second,) = of(received, "group_stats", group["id"], total_incoming=2)
            assert second["duplicate_incoming"] == 1


async def test_an_operator_receives_only_their_own_groups(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        runtime = served.runtime
        admin, alice, bob = await admin_and_two_operators(runtime)
        alices = await make_group(served.http, bearer(alice), accounts=["acc"])
        bobs = await make_group(served.http, bearer(bob), accounts=["acc"])
        async with (
            connect(served.ws_url(alice)) as alice_ws,
            connect(served.ws_url(admin)) as admin_ws,
        ):
            await subscribed(alice_ws)
            await lead(served.http, bobs, "B1")  # pushed, and committed, before alice's
            await lead(served.http, alices, "A1")
            seen_by_alice = await messages_until(
                alice_ws,
                lambda ms: (
                    bool(of(ms, "group_stats", alices["id"], total_incoming=1))
                    and bool(of(ms, "account_stats", alices["id"]))
                ),
            )
            seen_by_admin = await messages_until(
                admin_ws,
                lambda ms: (
                    bool(of(ms, "group_stats", alices["id"], total_incoming=1))
                    and bool(of(ms, "group_stats", bobs["id"], total_incoming=1))
                ),
            )
            # Anything more for alice already queued? Read briefly to be sure.
            with pytest.raises(TimeoutError):
                while True:
                    seen_by_alice.append(json.loads(await asyncio.wait_for(alice_ws.recv(), 0.3)))
        assert {m["group_id"] for m in seen_by_alice} == {alices["id"]}
        assert {m["group_id"] for m in seen_by_admin} >= {alices["id"], bobs["id"]}


async def test_a_viewer_receives_every_groups_figures(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        runtime = served.runtime
        viewer = await user_token(runtime, "viewer", Role.viewer)
        alice = await user_token(runtime, "alice", Role.operator)
        group = await make_group(served.http, bearer(alice), accounts=["acc"])
        async with connect(served.ws_url(viewer)) as ws:
            await subscribed(ws)
            await lead(served.http, group, "U1")
            received = await messages_until(
                ws, lambda ms: bool(of(ms, "group_stats", group["id"], total_incoming=1))
            )
        assert of(received, "group_stats", group["id"], total_incoming=1)


async def test_a_socket_without_a_valid_token_is_refused(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        runtime = served.runtime
        admin = await user_token(runtime, "admin", Role.admin)
        now = int(time.time())
        secret = runtime.secret_key
        expired = jwt.encode({"sub": "1", "iat": now - 99, "exp": now - 9}, secret, "HS256")
        forged = jwt.encode({"sub": "1", "iat": now, "exp": now + 99}, "x" * 40, "HS256")
        for token in ("", "not-a-jwt", expired, forged, admin[:-4] + "AAAA"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(served.ws_url(token)) as ws:
                    await ws.recv()
            assert refused.value.response.status_code == 403, token
        # And a valid token is accepted on the same server.
        async with connect(served.ws_url(admin)) as ws:
            assert ws.response is not None and ws.response.status_code == 101


async def test_a_socket_closes_when_its_token_expires_between_rechecks(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path, auth={"socket_recheck_seconds": 600}) as served:
        runtime = served.runtime
        viewer = await user_token(runtime, "viewer", Role.viewer)
        claims = jwt.decode(viewer, options={"verify_signature": False})
        now = int(time.time())
        short = jwt.encode({**claims, "iat": now, "exp": now + 2}, runtime.secret_key, "HS256")
        async with connect(served.ws_url(short)) as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert time.monotonic() - started < 5, "closed at its expiry, not at the recheck"
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            assert "expired" in closed.value.rcvd.reason.lower()


async def test_the_dashboards_session_cookie_opens_a_socket_from_its_own_origin_only(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        admin = await user_token(served.runtime, "admin", Role.admin)
        group = await make_group(served.http, bearer(admin), accounts=["acc"])
        signed_in = await served.http.post(
            "/api/auth/session", data={"username": "admin", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        cookie = f"tallyhub_session={served.http.cookies['tallyhub_session']}"
        url = f"ws://127.0.0.1:{served.port}/ws/leads"
        own = Origin(f"http://127.0.0.1:{served.port}")
        async with connect(url, origin=own, additional_headers={"Cookie": cookie}) as ws:
            await subscribed(ws)
            await lead(served.http, group, "U1")
            received = await messages_until(
                ws, lambda ms: bool(of(ms, "group_stats", group["id"], total_incoming=1))
            )
            assert of(received, "group_stats", group["id"], total_incoming=1)
        # A page of another site opening the socket: the browser would send the cookie.
        for origin in (Origin("http://evil.example"), None):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, origin=origin, additional_headers={"Cookie": cookie}) as ws:
                    await ws.recv()
            assert refused.value.response.status_code == 403, origin


async def test_an_open_socket_closes_once_its_sign_in_no_longer_holds(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path, auth={"socket_recheck_seconds": 0.3}) as served:
        runtime = served.runtime
        admin = await user_token(runtime, "admin", Role.admin)
        viewer = await user_token(runtime, "viewer", Role.viewer)
        user = await user_token(runtime, "operator", Role.operator)
        now = int(time.time())
        viewer_id = jwt.decode(viewer, options={"verify_signature": False})["sub"]
        short = jwt.encode(  # a token of the viewer that expires in 2 s
            {"sub": viewer_id, "use": "bearer", "iat": now, "exp": now + 2},
            runtime.secret_key,
            "HS256",
        )

        async def change(username: str, **values: Any) -> None:
            async def update_user(session: Any) -> None:
                await session.execute(
                    sa_update(User).where(User.username == username).values(**values)
                )

            await runtime.db.run(update_user)

        async def closed_because(ws: ClientConnection) -> str:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            return closed.value.rcvd.reason.lower()

        async with (
            connect(served.ws_url(admin)) as kept,
            connect(served.ws_url(short)) as expiring,
            connect(served.ws_url(user)) as disabled,
            connect(served.ws_url(viewer)) as demoted,
        ):
            await change("operator", is_active=False)
            assert "disabled" in await closed_because(disabled)
            assert "expired" in await closed_because(expiring)
            await change("viewer", role=Role.operator)
            assert "changed" in await closed_because(demoted)
            # A sign-in that still holds keeps its socket, and its pushes.
            group = await make_group(served.http, bearer(admin), accounts=["acc"])
            await lead(served.http, group, "U1")
            received = await messages_until(
                kept, lambda ms: bool(of(ms, "group_stats", group["id"], total_incoming=1))
            )
            assert of(received, "group_stats", group["id"], total_incoming=1)


# ---------------------------------------------------------------- several processes


async def test_a_lead_recorded_by_one_process_is_pushed_by_another_through_redis(
    redis_url: str, harness_factory: Any, test_db: TestDatabase, tmp_path: Path
) -> None:
    app_b = create_app(make_settings(test_db.url, tmp_path, redis_url=redis_url), scheduler=False)
    async with harness_factory(test_db, redis_url=redis_url) as a, serve(app_b) as b:
        a: Harness
        admin = await user_token(a.runtime, "admin", Role.admin)
        alice = await user_token(a.runtime, "alice", Role.operator)
        bob = await user_token(a.runtime, "bob", Role.operator)
        alices = await make_group(a, bearer(alice), accounts=["acc"])
        bobs = await make_group(a, bearer(bob), accounts=["acc"])
        async with (
            connect(b.ws_url(admin)) as admin_ws,
            connect(b.ws_url(alice)) as alice_ws,
        ):
            await subscribed(admin_ws)
            await asyncio.sleep(0.4)  # B's Redis listener is subscribed by now
            await lead(a.client, bobs, "B1")
            answer = await lead(a.client, alices, "A1")
            assert answer["total_incoming"] == 1
            seen_by_admin = await messages_until(
                admin_ws,
                lambda ms: (
                    bool(of(ms, "group_stats", alices["id"], total_incoming=1))
                    and bool(of(ms, "account_stats", alices["id"], total_incoming=1))
                    and bool(of(ms, "group_stats", bobs["id"], total_incoming=1))
                ),
            )
            seen_by_alice = await messages_until(
                alice_ws,
                lambda ms: bool(of(ms, "group_stats", alices["id"], total_incoming=1)),
            )
        assert of(seen_by_admin, "group_stats", alices["id"], total_incoming=1, today_incoming=1)
        # Other test runs may share this Redis; alice sees none of bob's group regardless.
        assert not of(seen_by_alice, "group_stats", bobs["id"])
        assert not of(seen_by_alice, "account_stats", bobs["id"])
