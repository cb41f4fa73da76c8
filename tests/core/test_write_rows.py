"""core.db.write_rows(): row sets written as one statement on PostgreSQL (unnest arrays,
CTEs) and as executemany elsewhere, with the same results on every dialect.

Each test creates small tables of its own (a fresh MetaData, not the app's)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select

from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.columns import UTCDateTime
from tallyhub.core.db import Database, custom_plans
from tests.conftest import TestDatabase

metadata = MetaData()
counters = Table(
    "test_rows_counters",
    metadata,
    Column("k", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
    Column("seen", UTCDateTime, nullable=True),
    Column("label", String(40), nullable=True),
    Column("first_label", String(40), nullable=True),
    Column("doc", JSON, nullable=True),
)
events = Table(
    "test_rows_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
    Column("note", String(40), nullable=False),
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


async def _database(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all, checkfirst=True)
        await conn.run_sync(metadata.create_all)
    try:
        yield db
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.drop_all, checkfirst=True)
        await db.dispose()


@pytest.fixture
async def db(test_db: TestDatabase) -> AsyncIterator[Database]:
    async for database in _database(test_db.url):
        yield database


@pytest.fixture
async def server(server_db: TestDatabase) -> AsyncIterator[Database]:
    async for database in _database(server_db.url):
        yield database


def counter(
    k: int, n: int, seen: datetime, label: str, doc: dict[str, object]
) -> dict[str, object]:
    return {"k": k, "n": n, "seen": seen, "label": label, "first_label": label, "doc": doc}


UPSERT = {
    "keys": ("k",),
    "increment": ("n",),
    "later": ("seen",),
    "replace": ("label",),
    "keep_first": ("first_label",),
}


async def written(db: Database, *sets: RowSet) -> list[list[tuple[object, ...]]]:
    """Write the sets in a transaction of their own, committed."""
    async with db.transaction() as session:
        return await write_rows(await session.connection(), *sets)


async def test_an_upsert_adds_keeps_the_later_replaces_and_keeps_the_first(db: Database) -> None:
    await written(
        db,
        RowSet(
            counters,
            [counter(1, 2, T0, "a", {"x": [1]}), counter(2, 5, T0, "b", {"y": "é"})],
            **UPSERT,
        ),
    )
    earlier = T0 - timedelta(hours=1)
    await written(db, RowSet(counters, [counter(1, 3, earlier, "c", {})], **UPSERT))
    async with db.transaction(readonly=True) as session:
        rows = (await session.execute(select(counters).order_by(counters.c.k))).all()
    assert [(r.k, r.n, r.seen, r.label, r.first_label, r.doc) for r in rows] == [
        (1, 5, T0, "c", "a", {"x": [1]}),
        (2, 5, T0, "b", "b", {"y": "é"}),
    ]


async def test_each_set_returns_only_the_rows_it_wrote(db: Database) -> None:
    async def write(keys: list[int], call: int) -> list[list[tuple[object, ...]]]:
        return await written(
            db,
            RowSet(
                counters,
                [counter(k, 1, T0, "l", {}) for k in keys],
                keys=("k",),
                returning=("k", "seen"),
            ),
            RowSet(
                events,
                [{"id": k * 10, "k": k, "note": "n"} for k in keys],
                keys=("id",),
                returning=("id",),
            ),
            RowSet(events, [{"id": 100 * call + k, "k": k, "note": "plain"} for k in keys]),
        )

    if db.dialect == "mysql":
        # ON DUPLICATE KEY UPDATE … RETURNING would return the rows it left alone too.
        with pytest.raises(ValueError, match="read them back"):
            await write([1, 2], call=1)
        return
    first = await write([1, 2], call=1)
    assert sorted(first[0]) == [(1, T0), (2, T0)]  # typed: aware UTC datetimes come back
    assert sorted(first[1]) == [(10,), (20,)]
    assert first[2] == []
    second = await write([2, 3], call=2)  # 2 is there already: insert-or-nothing leaves it
    assert second[0] == [(3, T0)]
    assert second[1] == [(30,)]


async def test_an_update_set_changes_existing_rows_only(db: Database) -> None:
    await written(db, RowSet(counters, [counter(1, 1, T0, "a", {})], **UPSERT))
    await written(
        db,
        RowSet(
            counters,
            [{"k": 1, "n": 4, "label": "z"}, {"k": 9, "n": 7, "label": "q"}],
            keys=("k",),
            increment=("n",),
            replace=("label",),
            update=True,
        ),
        RowSet(events, [{"id": 1, "k": 1, "note": "with the update"}]),
    )
    async with db.transaction(readonly=True) as session:
        rows = (await session.execute(select(counters.c.k, counters.c.n, counters.c.label))).all()
        logged = (await session.execute(select(events.c.note))).scalars().all()
    assert [tuple(r) for r in rows] == [(1, 5, "z")]
    assert logged == ["with the update"]


async def test_sets_that_return_rows_must_come_first(db: Database) -> None:
    async with db.transaction() as session:
        conn = await session.connection()
        with pytest.raises(ValueError, match="come before"):
            await write_rows(
                conn,
                RowSet(events, [{"id": 1, "k": 1, "note": "n"}]),
                RowSet(counters, [counter(1, 1, T0, "a", {})], keys=("k",), returning=("k",)),
            )


async def test_concurrent_batches_on_the_same_hot_rows_stay_exact(server: Database) -> None:
    """50 transactions at once, each adding to the same ten counters (an update set,
    first) and logging one row per counter: no deadlock, every increment counted."""
    async with server.transaction() as session:
        conn = await session.connection()
        await write_rows(
            conn, RowSet(counters, [counter(k, 0, T0, "", {}) for k in range(10)], **UPSERT)
        )
    rng = random.Random(7)

    async def batch(b: int) -> None:
        keys = sorted(rng.sample(range(10), 6))

        # No retry: a deadlock would fail the test.
        async with server.transaction() as session:
            conn = await session.connection()
            await write_rows(
                conn,
                RowSet(
                    counters,
                    [{"k": k, "n": k + 1} for k in keys],
                    keys=("k",),
                    increment=("n",),
                    update=True,
                ),
                RowSet(events, [{"id": b * 100 + k, "k": k, "note": "x"} for k in keys]),
            )

    await asyncio.gather(*(batch(b) for b in range(50)))
    async with server.transaction(readonly=True) as session:
        totals = dict((await session.execute(select(counters.c.k, counters.c.n))).tuples().all())
        logged = (await session.execute(select(events.c.k))).scalars().all()
    expected = {k: (k + 1) * logged.count(k) for k in range(10)}
    assert len(logged) == 50 * 6
    assert totals == expected


async def test_custom_plans_last_for_their_transaction_only(db: Database) -> None:
    """`custom_plans()` plans the rest of one transaction's statements for their own
    parameters on PostgreSQL; the next transaction is back to the default, whose generic
    plans the unnest writes rely on. Elsewhere it does nothing (and does not fail)."""

    async def mode() -> str:
        async with db.engine.connect() as conn:
            return str((await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one())

    async with db.transaction() as session:
        conn = await session.connection()
        await custom_plans(conn)
        await write_rows(conn, RowSet(events, [{"id": 1, "k": 1, "note": "a"}]))
        if db.dialect == "postgresql":
            inside = (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one()
            assert inside == "force_custom_plan"
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(events.c.note))).scalars().all() == ["a"]
    if db.dialect == "postgresql":
        assert await mode() == "auto"
