"""The group-commit writer (core/batching.py) against real databases.

Each test creates a small table of its own (a fresh MetaData, not the app's) and drops
it at the end. A second Database engine plays "someone else looking": what it sees is
what is really committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.batching import BatchWriter, WriterSaturated, WriterStopped
from tallyhub.core.db import Database
from tests.conftest import TestDatabase

metadata = MetaData()
items = Table(
    "test_batch_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("payload", String(50), nullable=False),
)


@dataclass
class Store:
    """The writer's database, and an independent engine to check what is committed."""

    db: Database
    probe: Database
    batches: list[list[int]] = field(default_factory=list)

    async def committed_ids(self) -> list[int]:
        async with self.probe.engine.connect() as conn:
            rows = await conn.execute(select(items.c.id).order_by(items.c.id))
            return [row.id for row in rows]

    async def count(self) -> int:
        async with self.probe.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(items))).scalar_one())

    async def insert_rows(self, session: AsyncSession, ids: Sequence[int]) -> list[int]:
        """The plain apply function: one row per event, result = the id."""
        self.batches.append(list(ids))
        if ids:
            await session.execute(insert(items), [{"id": i, "payload": f"p{i}"} for i in ids])
        return list(ids)


@pytest.fixture
async def store(test_db: TestDatabase) -> AsyncIterator[Store]:
    db = Database(test_db.url)
    probe = Database(test_db.url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all, checkfirst=True)
        await conn.run_sync(metadata.create_all)
    try:
        yield Store(db, probe)
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.drop_all, checkfirst=True)
        await probe.dispose()
        await db.dispose()


@asynccontextmanager
async def running(writer: BatchWriter[int, int]) -> AsyncIterator[BatchWriter[int, int]]:
    """Start the writer; stop it at the end (a stop failing after a test failure is not
    allowed to hide that failure)."""
    await writer.start()
    try:
        yield writer
    except BaseException:
        with suppress(Exception):
            await asyncio.wait_for(writer.stop(), 5)
        raise
    await asyncio.wait_for(writer.stop(), 15)


async def answers(writer: BatchWriter[int, int], *submits: Awaitable[Any]) -> list[Any]:
    """Every submit's result or error; a submit that never answers fails the test (instead
    of hanging it) and names what became of the writer's consumers."""
    try:
        return await asyncio.wait_for(asyncio.gather(*submits, return_exceptions=True), 15)
    except TimeoutError:
        ended = [repr(t.exception()) for t in writer._tasks if t.done() and not t.cancelled()]
        pytest.fail(f"submits never answered; consumer tasks ended with: {ended}")


async def test_submit_returns_only_after_the_event_is_committed(store: Store) -> None:
    async def slow_apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        result = await store.insert_rows(session, ids)
        await asyncio.sleep(0.02)  # a wide window in which an early answer would show
        return result

    async def submit_and_look(writer: BatchWriter[int, int], i: int) -> bool:
        assert await writer.submit(i) == i
        return i in await store.committed_ids()

    async with running(BatchWriter("test.visible", store.db, slow_apply, max_wait_ms=5)) as w:
        seen = await answers(w, *(submit_and_look(w, i) for i in range(1, 31)))
    assert seen == [True] * 30, "an acknowledged event was not visible to another connection"
    assert await store.count() == 30


async def test_concurrent_submits_are_coalesced_into_few_batches(store: Store) -> None:
    writer = BatchWriter("test.coalesce", store.db, store.insert_rows, max_wait_ms=20)
    async with running(writer) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 301)))
    assert results == list(range(1, 301))
    assert await store.committed_ids() == list(range(1, 301))
    assert sorted(i for batch in store.batches for i in batch) == list(range(1, 301))
    assert len(store.batches) <= 10, f"{len(store.batches)} transactions for 300 events"


async def test_max_batch_bounds_the_size_of_a_transaction(store: Store) -> None:
    writer = BatchWriter("test.max_batch", store.db, store.insert_rows, max_wait_ms=20, max_batch=7)
    async with running(writer) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 51)))
    assert results == list(range(1, 51))
    assert max(len(batch) for batch in store.batches) <= 7
    assert await store.count() == 50


async def test_a_duplicate_key_fails_only_its_own_submit(store: Store) -> None:
    async with store.db.transaction() as session:
        await session.execute(insert(items), [{"id": 13, "payload": "already there"}])
    writer = BatchWriter(
        "test.poison_integrity", store.db, store.insert_rows, max_wait_ms=20, retries=1
    )
    async with running(writer) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 41)))
    failed = {i: r for i, r in zip(range(1, 41), results, strict=True) if isinstance(r, Exception)}
    assert list(failed) == [13], failed
    assert isinstance(failed[13], IntegrityError)
    assert [r for r in results if not isinstance(r, Exception)] == [
        i for i in range(1, 41) if i != 13
    ]
    assert await store.committed_ids() == list(range(1, 41))
    async with store.probe.engine.connect() as conn:
        payload = (await conn.execute(select(items.c.payload).where(items.c.id == 13))).scalar()
    assert payload == "already there"


async def test_two_events_for_one_key_in_one_batch_commit_exactly_one(store: Store) -> None:
    writer = BatchWriter("test.same_key", store.db, store.insert_rows, max_wait_ms=20, retries=1)
    async with running(writer) as w:
        results = await answers(w, w.submit(1), w.submit(2), w.submit(2))
    assert results[0] == 1
    assert sorted(isinstance(r, IntegrityError) for r in results[1:]) == [False, True], results
    assert await store.committed_ids() == [1, 2]


async def test_an_event_whose_apply_raises_fails_alone(store: Store) -> None:
    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        if 7 in ids:
            raise ValueError("event 7 is malformed")
        return await store.insert_rows(session, ids)

    async with running(BatchWriter("test.poison_value", store.db, apply, max_wait_ms=20)) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 21)))
    errors = [
        (i, r) for i, r in zip(range(1, 21), results, strict=True) if isinstance(r, Exception)
    ]
    assert len(errors) == 1, errors
    assert errors[0][0] == 7 and isinstance(errors[0][1], ValueError)
    assert str(errors[0][1]) == "event 7 is malformed"
    assert await store.committed_ids() == [i for i in range(1, 21) if i != 7]


async def test_a_writer_keeps_serving_after_a_poison_event(store: Store) -> None:
    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        if 1 in ids:
            raise ValueError("event 1 is malformed")
        return await store.insert_rows(session, ids)

    async with running(BatchWriter("test.after_poison", store.db, apply, max_wait_ms=1)) as w:
        (first,) = await answers(w, w.submit(1))
        later = await answers(w, w.submit(2), w.submit(3))
    assert isinstance(first, ValueError)
    assert later == [2, 3]
    assert await store.committed_ids() == [2, 3]


async def test_an_exception_returned_for_one_event_is_raised_to_that_submitter_only(
    store: Store,
) -> None:
    class Refused(Exception):
        pass

    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int | Exception]:
        await store.insert_rows(session, [i for i in ids if i % 5 != 0])
        return [Refused(f"no {i}") if i % 5 == 0 else i * 10 for i in ids]

    writer = BatchWriter("test.returned_errors", store.db, apply, max_wait_ms=20)
    async with running(writer) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 21)))
    for i, result in zip(range(1, 21), results, strict=True):
        if i % 5 == 0:
            assert isinstance(result, Refused) and str(result) == f"no {i}"
        else:
            assert result == i * 10
    # The batch itself committed: every other event's row is there.
    assert await store.committed_ids() == [i for i in range(1, 21) if i % 5 != 0]


async def test_submit_many_answers_in_order_with_each_events_own_error(store: Store) -> None:
    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int | Exception]:
        await store.insert_rows(session, [i for i in ids if i != 3])
        return [LookupError("three") if i == 3 else -i for i in ids]

    async with running(BatchWriter("test.submit_many", store.db, apply, max_wait_ms=5)) as w:
        results = await asyncio.wait_for(w.submit_many([1, 2, 3, 4]), 15)
    assert results[:2] == [-1, -2] and results[3] == -4
    assert isinstance(results[2], LookupError)
    assert await store.committed_ids() == [1, 2, 4]


async def test_disabled_batching_applies_one_transaction_per_submit(store: Store) -> None:
    writer = BatchWriter("test.disabled", store.db, store.insert_rows, enabled=False)
    async with running(writer) as w:
        results = await answers(w, *(w.submit(i) for i in range(1, 21)))
    assert results == list(range(1, 21))
    assert sorted(store.batches) == [[i] for i in range(1, 21)]
    assert await store.committed_ids() == list(range(1, 21))


async def test_disabled_batching_still_isolates_a_failing_event(store: Store) -> None:
    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        if 2 in ids:
            raise ValueError("bad 2")
        return await store.insert_rows(session, ids)

    async with running(BatchWriter("test.disabled_poison", store.db, apply, enabled=False)) as w:
        results = await answers(w, w.submit(1), w.submit(2), w.submit(3))
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad 2"
    assert await store.committed_ids() == [1, 3]


@pytest.mark.parametrize("enabled", [True, False])
async def test_an_apply_that_breaks_its_contract_fails_its_submits(
    store: Store, enabled: bool
) -> None:
    """An apply returning one result too few is a bug, not a data error: every submit of
    its batch gets the error, batched or not (a disabled writer applies each event in a
    task of its own; the error must reach the caller from there too)."""

    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        return list(ids)[1:]

    writer = BatchWriter("test.short_results", store.db, apply, enabled=enabled, max_wait_ms=1)
    async with running(writer) as w:
        results = await answers(w, w.submit(1), w.submit(2))
    assert all(isinstance(r, ValueError) and "results for" in str(r) for r in results), results


async def test_a_caller_that_stops_waiting_still_gets_its_event_written(store: Store) -> None:
    """`enqueue()` hands back the future: a caller may give up on it (a commit timeout
    sets an exception on it); the writer leaves that future alone and writes the event."""
    gate = asyncio.Event()

    async def held_apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        await gate.wait()
        return await store.insert_rows(session, ids)

    for enabled in (True, False):
        gate.clear()
        name = f"test.given_up_{enabled}"
        async with running(BatchWriter(name, store.db, held_apply, enabled=enabled)) as w:
            committed = w.enqueue(10 if enabled else 20)
            committed.set_exception(TimeoutError("the caller gave up"))
            gate.set()
            later = await answers(w, w.submit(11 if enabled else 21))
        with pytest.raises(TimeoutError):
            committed.result()
        assert later == [11 if enabled else 21]
    assert await store.committed_ids() == [10, 11, 20, 21]


async def test_a_full_queue_refuses_a_submit_that_will_not_wait(store: Store) -> None:
    gate = asyncio.Event()
    applying = asyncio.Event()

    async def held_apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        applying.set()
        await gate.wait()
        return await store.insert_rows(session, ids)

    writer = BatchWriter(
        "test.saturated",
        store.db,
        held_apply,
        max_batch=1,
        max_wait_ms=0,
        queue_size=2,
        concurrency=1,
    )
    try:
        async with running(writer) as w:
            first = asyncio.create_task(w.submit(1))
            await asyncio.wait_for(applying.wait(), 5)  # the consumer now holds event 1
            queued = [asyncio.create_task(w.submit(i)) for i in (2, 3)]
            for _ in range(200):
                if w.depth == 2:
                    break
                await asyncio.sleep(0.001)
            assert w.depth == 2
            depth = REGISTRY.get_sample_value("batch_queue_depth", {"writer": "test.saturated"})
            assert depth == 2  # the gauge reads the queue when scraped
            with pytest.raises(WriterSaturated):
                await w.submit(4, wait=False)
            gate.set()
            assert await answers(w, first, *queued) == [1, 2, 3]
    finally:
        gate.set()
    assert await store.committed_ids() == [1, 2, 3]


async def test_stop_applies_everything_already_submitted(store: Store) -> None:
    writer = BatchWriter("test.drain", store.db, store.insert_rows, max_wait_ms=50, max_batch=5)
    await writer.start()
    pending = [asyncio.create_task(writer.submit(i)) for i in range(1, 61)]
    await asyncio.sleep(0)  # every submit has queued its event
    await asyncio.wait_for(writer.stop(), 15)
    assert all(task.done() for task in pending), "stop() returned before draining the queue"
    assert [task.result() for task in pending] == list(range(1, 61))
    assert await store.committed_ids() == list(range(1, 61))
    with pytest.raises(WriterStopped):
        await writer.submit(99)
    assert await store.count() == 60


async def test_a_writer_that_was_not_started_refuses_events(store: Store) -> None:
    writer: BatchWriter[int, int] = BatchWriter("test.not_started", store.db, store.insert_rows)
    with pytest.raises(WriterStopped):
        await writer.submit(1)
    assert await store.count() == 0


async def test_an_unreachable_database_fails_submits_instead_of_hanging() -> None:
    """Nothing listens on port 1: every submit gets the connection error, promptly, and the
    writer is still there for the next one."""
    down = Database("postgresql+asyncpg://tallyhub@127.0.0.1:1/nothing", pool_timeout=2)

    async def apply(session: AsyncSession, ids: Sequence[int]) -> list[int]:
        await session.execute(select(1))
        return list(ids)

    try:
        async with running(BatchWriter("test.unreachable", down, apply, max_wait_ms=5)) as w:
            first = await answers(w, *(w.submit(i) for i in range(1, 6)))
            second = await answers(w, w.submit(6))
    finally:
        await down.dispose()
    for result in [*first, *second]:
        assert isinstance(result, Exception) and not isinstance(result, WriterStopped), result
