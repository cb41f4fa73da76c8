"""`/readyz` only reads: on SQLite it never waits behind a writer for the write lock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.conftest import Harness

sqlite_only = pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)


@sqlite_only
async def test_readyz_answers_while_a_writer_holds_sqlite(harness: Harness) -> None:
    db = harness.runtime.db
    async with db.transaction() as writer:  # BEGIN IMMEDIATE: the write lock is ours
        await writer.execute(text("UPDATE users SET is_active = is_active"))
        # Before, /readyz began a write transaction too: it waited for this one (the
        # busy timeout is 30 s), so it could not answer while the lock was held.
        ready = await asyncio.wait_for(harness.client.get("/readyz"), timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
