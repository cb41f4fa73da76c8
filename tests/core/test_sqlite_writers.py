"""SQLite writers of one process take turns at the transaction edge (core/db.py), not in
SQLite's busy handler, where a waiting connection could stall the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from tallyhub import migrate
from tallyhub.core.db import Database


async def _database(tmp_path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path}/writers.db"
    await asyncio.to_thread(migrate.upgrade, url)
    return Database(url)


async def test_write_transactions_of_one_process_take_turns(tmp_path: Path) -> None:
    first, second = await _database(tmp_path), await _database(tmp_path)  # two engines
    events: list[str] = []
    first_inside = asyncio.Event()

    async def write(db: Database, name: str, hold: float) -> None:
        async with db.transaction() as session:
            events.append(f"{name} in")
            if name == "a":
                first_inside.set()
            await session.execute(text("UPDATE job_runs SET attempt = attempt WHERE 1 = 0"))
            await asyncio.sleep(hold)
            events.append(f"{name} out")

    async def read() -> int:
        await first_inside.wait()
        async with second.transaction(readonly=True) as session:
            events.append("read")
            return int(await session.scalar(text("SELECT count(*) FROM job_runs")) or 0)

    try:
        a = asyncio.create_task(write(first, "a", 0.2))
        await first_inside.wait()
        b = asyncio.create_task(write(second, "b", 0))
        count = await asyncio.wait_for(read(), 5)
        await asyncio.wait_for(asyncio.gather(a, b), 5)
    finally:
        await first.dispose()
        await second.dispose()
    assert count == 0
    # The reader does not wait for the writer; the second writer waits for the first.
    assert events == ["a in", "read", "a out", "b in", "b out"]


async def test_a_write_transaction_opened_inside_another_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    db = await _database(tmp_path)
    try:

        async def nested() -> int:
            async with db.transaction() as outer:
                async with db.transaction() as inner:
                    await inner.execute(text("DELETE FROM job_runs"))
                return int(await outer.scalar(text("SELECT count(*) FROM job_runs")) or 0)

        assert await asyncio.wait_for(nested(), 10) == 0
    finally:
        await db.dispose()
