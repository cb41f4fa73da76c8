"""Request bodies are capped (TALLYHUB_HTTP__MAX_BODY_BYTES, more for the lead batch): a
declared Content-Length over the cap is refused before any of the body is read, a chunked
body once the bytes read pass it; on the hot lead path as on every other route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tallyhub.app import create_app
from tallyhub.core.auth import Role
from tests.conftest import TestDatabase, make_settings
from tests.core.test_http_errors import exchange, sqlite_db
from tests.core.test_ops import samples
from tests.factories import bearer, make_group, user_token
from tests.leads.test_live import serve

__all__ = ["sqlite_db"]  # a fixture of this module too

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
REFUSED = "http_bodies_refused_total"


def post_head(path: str, length: int, **headers: str) -> bytes:
    """A POST's request line and headers, announcing a body of `length` bytes."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/api/client/incoming", "/api/leads/groups"])
async def test_a_body_declared_over_the_limit_is_refused_unread(
    sqlite_db: TestDatabase, tmp_path: Path, path: str
) -> None:
    """256 MiB announced, a few bytes sent: the answer comes without the rest (the lead
    endpoint used to read and parse all of it before looking at the activation code)."""
    app = create_app(make_settings(sqlite_db.url, tmp_path), scheduler=False)
    async with serve(app) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            request = post_head(path, 256 * MiB) + b'{"account_line_id": "'
            status, headers, body = await asyncio.wait_for(exchange(reader, writer, request), 20)
        finally:
            writer.close()
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"  # the unread rest cannot be skipped
    error = json.loads(body)["error"]
    assert error["code"] == "body_too_large"
    assert str(MiB) in error["message"]


async def spaces(total: int, chunk: int = 4096) -> AsyncIterator[bytes]:
    """`total` bytes of JSON whitespace, in chunks: sent chunked, with no Content-Length."""
    for start in range(0, total, chunk):
        yield b" " * min(chunk, total - start)


async def chunked(prefix: bytes, padding: int) -> AsyncIterator[bytes]:
    yield prefix
    async for part in spaces(padding):
        yield part


@pytest.fixture
async def small_limits(sqlite_db: TestDatabase, harness_factory: Any) -> AsyncIterator[Any]:
    """An app that takes 10 kB bodies, 100 kB on the lead batch."""
    limits = {"max_body_bytes": 10_000, "max_body_bytes_by_path": {BATCH: 100_000}}
    async with harness_factory(sqlite_db, http=limits) as h:
        yield h


BATCH = "/api/client/incoming/batch"


async def refused_count(client: httpx.AsyncClient) -> float:
    return samples((await client.get("/metrics")).text).get((REFUSED, ()), 0.0)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(small_limits: Any) -> None:
    h = small_limits
    admin = {**bearer(await user_token(h.runtime, "admin", Role.admin)), **JSON}
    group = await make_group(h, admin, accounts=["acc"])
    code = {"X-Activation-Code": group["activation_code"], **JSON}
    before = await refused_count(h.client)
    lead = b'{"account_line_id": "acc", "incoming_line_id": "U1"}'
    refused = [
        await h.client.post("/api/client/incoming", content=chunked(lead, 20_000), headers=code),
        await h.client.post(
            "/api/leads/groups", content=chunked(b'{"remark": "x"}', 20_000), headers=admin
        ),
        await h.client.post(BATCH, content=chunked(b'{"events": []}', 200_000), headers=code),
    ]
    for response in refused:
        assert "content-length" not in response.request.headers  # it went chunked
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "body_too_large"
    assert await refused_count(h.client) - before == len(refused)

    # Under the limit, chunked bodies are served as usual; the batch may be larger.
    taken = await h.client.post("/api/client/incoming", content=chunked(lead, 9_000), headers=code)
    assert taken.status_code == 200, taken.text
    batch = json.dumps({"events": [{"account_line_id": "acc", "incoming_line_id": "U2"}]})
    taken = await h.client.post(BATCH, content=chunked(batch.encode(), 50_000), headers=code)
    assert taken.status_code == 200, taken.text
    assert taken.json()["results"][0]["ok"] is True
    listing = await h.client.get(f"/api/leads/groups/{group['id']}", headers=admin)
    assert listing.json()["total_incoming"] == 2


async def test_a_declared_length_up_to_the_limit_is_served(small_limits: Any) -> None:
    h = small_limits
    admin = {**bearer(await user_token(h.runtime, "admin", Role.admin)), **JSON}
    body = b'{"remark": "x"}'
    exactly = body + b" " * (10_000 - len(body))
    created = await h.client.post("/api/leads/groups", content=exactly, headers=admin)
    assert created.status_code == 201, created.text
    over = await h.client.post("/api/leads/groups", content=exactly + b" ", headers=admin)
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "body_too_large"


async def test_by_default_the_batch_takes_more_than_one_lead(
    sqlite_db: TestDatabase, harness_factory: Any
) -> None:
    """Defaults: 1 MiB, and 8 MiB for the batch of up to 1,000 leads."""
    async with harness_factory(sqlite_db) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        group = await make_group(h, admin, accounts=["acc"])
        code = {"X-Activation-Code": group["activation_code"], **JSON}
        lead = {"account_line_id": "acc", "incoming_line_id": "U1"}
        padded = json.dumps(lead).encode() + b" " * (2 * MiB)
        single = await h.client.post("/api/client/incoming", content=padded, headers=code)
        assert single.status_code == 413
        batch = json.dumps({"events": [lead]}).encode() + b" " * (2 * MiB)
        taken = await h.client.post(BATCH, content=batch, headers=code)
        assert taken.status_code == 200, taken.text
        assert taken.json()["results"][0]["ok"] is True
