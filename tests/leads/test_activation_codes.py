"""The desktop client's activation code: judged before the request body is read, each
judgment counted by the failed-attempt limiter before it is made (a burst of guesses sent
side by side gets no more judgments than the limit), and a known code costing the limiter
nothing however many requests carry it. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tallyhub.core.auth import Role
from tests.conftest import Harness, TestDatabase
from tests.factories import bearer, make_group, user_token
from tests.leads.helpers import client_headers, group_figures

LIMIT = 5
BURST = 60

LEAD = {"account_line_id": "acc", "incoming_line_id": "U1"}
# Each client endpoint, with a body it takes.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/client/login", None),
    ("POST", "/api/client/incoming", LEAD),
    ("POST", "/api/client/incoming/batch", {"events": [LEAD]}),
    ("PUT", "/api/client/accounts", {"accounts": [{"line_id": "acc"}]}),
    ("POST", "/api/client/accounts/acc/status", {"online_status": "online"}),
]


def _address() -> str:
    """An address of this test's own."""
    return "10.{}.{}.{}".format(*secrets.token_bytes(3))


def _client(h: Harness, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def _burst(h: Harness, method: str, path: str, body: Any, codes: list[str]) -> list[int]:
    """One request per code, all sent at once from one address: their statuses, sorted."""
    async with _client(h, _address()) as client:
        answers = await asyncio.gather(
            *(
                client.request(method, path, json=body, headers={"X-Activation-Code": code})
                for code in codes
            )
        )
    return sorted(a.status_code for a in answers)


async def test_a_burst_of_wrong_codes_gets_no_more_judgments_than_the_limit(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db, auth={"failed_code_limit": LIMIT}) as h:
        for method, path, body in ENDPOINTS:
            guesses = [secrets.token_urlsafe(18) for _ in range(BURST)]
            statuses = await _burst(h, method, path, body, guesses)
            assert statuses == [401] * LIMIT + [429] * (BURST - LIMIT), path


async def test_a_burst_with_the_right_code_is_let_in_whole(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    """Requests arriving together with a code not yet known to the process share one
    judgment: the limiter does not refuse a busy client."""
    async with harness_factory(test_db, auth={"failed_code_limit": LIMIT}) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        group = await make_group(h, admin, accounts=["acc"])
        await h.client.post(f"/api/leads/groups/{group['id']}/activation-code", headers=admin)
        fresh = (await h.client.get(f"/api/leads/groups/{group['id']}", headers=admin)).json()
        events = [{**LEAD, "incoming_line_id": f"U{i}"} for i in range(BURST)]
        async with _client(h, _address()) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/api/client/incoming", json=event, headers=client_headers(fresh))
                    for event in events
                )
            )
        assert sorted(a.status_code for a in answers) == [200] * BURST
        assert (await group_figures(h, admin, group["id"]))["total_incoming"] == BURST


async def test_a_wrong_code_is_counted_whatever_its_body_holds(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db, auth={"failed_code_limit": 3}) as h:
        nul_event = {**LEAD, "event_id": "e\x00"}
        async with _client(h, _address()) as client:
            statuses = [
                (
                    await client.post(
                        "/api/client/incoming",
                        json=nul_event,
                        headers={"X-Activation-Code": "wrong"},
                    )
                ).status_code
                for _ in range(4)
            ]
        assert statuses == [401, 401, 401, 429]


class _Body:
    """A request body that counts how many of its chunks the server asked for."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"events": ['
        for _ in range(self.chunks):
            self.read += 1
            yield b'{"account_line_id": "acc", "incoming_line_id": "U1"},' * 10_000
        yield b"]}"


async def test_a_body_without_a_valid_code_is_never_read(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    group = await make_group(harness, admin, accounts=["acc"])
    for method, path, _ in ENDPOINTS:
        for headers, status in (({"X-Activation-Code": "wrong"}, 401), ({}, 401)):
            body = _Body(chunks=500)  # ~250 MB, were it read
            async with _client(harness, _address()) as client:
                response = await client.request(
                    method,
                    path,
                    content=body,
                    headers={**headers, "content-type": "application/json"},
                )
            assert (response.status_code, body.read) == (status, 0), (path, response.text)
        if path == "/api/client/login":
            continue  # it takes no body
        # With the right code the body is read (and this one is no valid report).
        body = _Body(chunks=1)
        response = await harness.client.request(
            method,
            path,
            content=body,
            headers={**client_headers(group), "content-type": "application/json"},
        )
        assert body.read == 1, path
        assert response.status_code in (200, 422), (path, response.text)


async def test_a_code_replaced_while_remembered_is_refused_and_counted(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db, auth={"failed_code_limit": 2}) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        group = await make_group(h, admin, accounts=["acc"])  # the gate now knows its code
        rotated = await h.client.post(
            f"/api/leads/groups/{group['id']}/activation-code", headers=admin
        )
        assert rotated.status_code == 200
        async with _client(h, _address()) as client:
            old = client_headers(group)
            statuses = [
                (await client.post("/api/client/incoming", json=LEAD, headers=old)).status_code,
                (await client.post("/api/client/login", headers=old)).status_code,
                (await client.post("/api/client/login", headers=old)).status_code,
            ]
        assert statuses == [401, 401, 429]
        new = {"X-Activation-Code": rotated.json()["activation_code"]}
        assert (await h.client.post("/api/client/login", headers=new)).status_code == 200
