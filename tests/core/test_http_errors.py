"""An error no handler takes: the JSON error envelope with 500, logged with its path and
counted, and the keep-alive connection it came on goes on serving."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy import func, select

from tallyhub.app import create_app
from tallyhub.core.auth import Role, User
from tallyhub.core.http import Session, TransactionalRoute
from tests.conftest import TestDatabase, _Servers, make_settings
from tests.core.test_ops import samples
from tests.factories import bearer, user_token
from tests.leads.test_live import serve

INTERNAL_ERROR = {"code": "internal_error", "message": "the request could not be handled"}


async def broken() -> dict[str, str]:
    """An endpoint with a bug, as any endpoint may have one."""
    raise RuntimeError("a bug")


@pytest.fixture
async def sqlite_db(servers: _Servers) -> TestDatabase:
    """The error edge does not depend on the database: SQLite only."""
    return TestDatabase("sqlite", await servers.database("sqlite"))


def app_with_a_bug(db: TestDatabase, tmp: Path, **settings: Any) -> Any:
    app = create_app(make_settings(db.url, tmp, **settings), scheduler=False)
    app.add_api_route("/broken/{n}", broken)
    return app


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request and its response on an open connection."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    assert status_line, "the server closed the connection instead of answering"
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def test_a_500_is_the_json_envelope_and_the_connection_serves_on(
    sqlite_db: TestDatabase, tmp_path: Path
) -> None:
    async with serve(app_with_a_bug(sqlite_db, tmp_path)) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            status, headers, body = await asyncio.wait_for(
                exchange(reader, writer, get("/broken/1")), 20
            )
            assert status == 500
            assert headers["content-type"] == "application/json"
            assert json.loads(body) == {"error": INTERNAL_ERROR}
            assert headers.get("connection", "keep-alive") != "close"
            # The same connection serves the next request (Starlette's error middleware
            # raised the error on, and uvicorn dropped the connection).
            status, _, body = await asyncio.wait_for(exchange(reader, writer, get("/healthz")), 20)
            assert (status, json.loads(body)) == (200, {"status": "ok"})
        finally:
            writer.close()
        scraped = samples((await served.http.get("/metrics")).text)
    assert scraped[("http_unexpected_errors_total", (("route", "/broken/{n}"),))] >= 1


async def test_a_500_from_a_transactional_route_is_the_json_envelope_too(
    sqlite_db: TestDatabase, harness_factory: Any
) -> None:
    """In process as well: the error does not escape the app (httpx's ASGI transport would
    raise it), and the request's transaction was rolled back, not half committed."""

    async def broken_write(session: Session) -> None:
        session.add(User(username="ghost", password_hash="x", role=Role.viewer))
        await session.flush()
        raise RuntimeError("a bug after a write")

    router = APIRouter(route_class=TransactionalRoute)
    router.add_api_route("/broken-write", broken_write, methods=["POST"])
    async with harness_factory(sqlite_db) as h:
        h.app.include_router(router)
        response = await h.client.post("/broken-write")
        users = await h.runtime.db.run(
            lambda session: session.scalar(select(func.count()).select_from(User))
        )
    assert response.status_code == 500
    assert response.json() == {"error": INTERNAL_ERROR}
    assert users == 0


async def test_a_body_that_cannot_be_decoded_is_a_422_naming_it(
    sqlite_db: TestDatabase, harness_factory: Any
) -> None:
    """JSON that is not UTF-8 was FastAPI's bare 400 "There was an error parsing the body",
    which no operation documents (the fuzz suite found it on every JSON body)."""
    async with harness_factory(sqlite_db) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        json_type = {"Content-Type": "application/json"}
        answers = [
            await h.client.post(
                "/api/leads/groups", content=b'{"remark": "\xa4"}', headers={**admin, **json_type}
            ),
            await h.client.post(
                "/api/clicks/campaigns", content=b"u$\xa4\x02", headers={**admin, **json_type}
            ),
        ]
    for response in answers:
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["fields"][0]["field"] == "body"
        assert "utf-8" in error["message"]
