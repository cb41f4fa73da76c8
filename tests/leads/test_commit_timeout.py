"""A stalled database: another connection holds the lock the writer's next batch needs.
A lead is answered 503 with Retry-After once the commit timeout has passed, instead of
waiting for the lock; it commits when the lock is released, and the client's retry with
the same event_id counts it once. On SQLite (a write transaction held), PostgreSQL and
MariaDB (the group's stats row locked)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tallyhub.core.auth import Role
from tests.conftest import TestDatabase
from tests.factories import bearer, make_group, user_token
from tests.leads.helpers import client_headers, group_figures

# How long the lock is held at most. A bounded request is answered long before; one that
# waits for the lock instead is answered (200) only after this, and its test fails.
WATCHDOG_SECONDS = 20


@asynccontextmanager
async def _stalled(db: TestDatabase, group_id: int) -> AsyncIterator[None]:
    """Hold, on a connection of another client, what the leads writer needs to commit."""
    if db.name == "sqlite":
        held = sqlite3.connect(make_url(db.url).database or "", isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # the writer's own BEGIN IMMEDIATE waits for it
        try:
            yield
        finally:
            held.execute("ROLLBACK")
            held.close()
        return
    engine = create_async_engine(db.url)
    try:
        async with engine.connect() as conn, conn.begin() as transaction:
            await conn.execute(
                text("SELECT total_incoming FROM group_stats WHERE group_id = :g FOR UPDATE"),
                {"g": group_id},
            )
            try:
                yield
            finally:
                await transaction.rollback()
    finally:
        await engine.dispose()


async def _answered_while_stalled(
    db: TestDatabase, group_id: int, *calls: Awaitable[httpx.Response]
) -> list[httpx.Response]:
    async with _stalled(db, group_id):
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.wait(tasks, timeout=WATCHDOG_SECONDS)
    return [await task for task in tasks]


def _lead(contact: str, event_id: str) -> dict[str, Any]:
    return {"account_line_id": "acc", "incoming_line_id": contact, "event_id": event_id}


async def test_a_stalled_commit_answers_503_and_the_retry_counts_once(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db, leads={"commit_timeout_ms": 300}) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        group = await make_group(h, admin, accounts=["acc"])
        code = client_headers(group)
        single = _lead("U1", "stalled-1")
        batch = {"events": [_lead("U2", "stalled-2"), _lead("U3", "stalled-3")]}

        one, many = await _answered_while_stalled(
            test_db,
            group["id"],
            h.client.post("/api/client/incoming", json=single, headers=code),
            h.client.post("/api/client/incoming/batch", json=batch, headers=code),
        )
        for answer in (one, many):
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["error"]["code"] == "commit_timeout"

        # The lock is gone: the client retries with the same event ids.
        again = await h.client.post("/api/client/incoming", json=single, headers=code)
        assert again.status_code == 200, again.text
        assert again.json()["event_id"] == "stalled-1"
        again_many = await h.client.post("/api/client/incoming/batch", json=batch, headers=code)
        assert again_many.status_code == 200, again_many.text
        assert [r["ok"] for r in again_many.json()["results"]] == [True, True]

        figures = await group_figures(h, admin, group["id"])
        assert (figures["total_incoming"], figures["today_incoming"]) == (3, 3)
        log = await h.client.get(f"/api/leads/groups/{group['id']}/incoming", headers=admin)
        assert sorted(item["event_id"] for item in log.json()["items"]) == [
            "stalled-1",
            "stalled-2",
            "stalled-3",
        ]
