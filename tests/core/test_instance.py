"""The database's own id (made with the schema) and what this host last saw of it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import delete

from tallyhub.core.db import Database
from tallyhub.core.instance import (
    Backoff,
    DatabaseIdentity,
    database_id,
    is_unreachable,
    masked_url,
    migrate_or_defer,
    remember_schema,
    schema_seen,
)
from tests.conftest import TestDatabase

QUICK = Backoff(first=0.01, most=0.02)


async def test_a_database_keeps_its_id_and_another_has_its_own(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    db = Database(test_db.url)
    other = Database(f"sqlite+aiosqlite:///{tmp_path}/other.db")
    try:
        first = await database_id(db)
        assert first == await database_id(db) and len(first) == 36
        async with other.engine.begin() as conn:
            await conn.run_sync(DatabaseIdentity.metadata.create_all, [DatabaseIdentity.__table__])
        assert await database_id(other) not in ("", first)

        await db.run(lambda session: session.execute(delete(DatabaseIdentity)))
        remade = await database_id(db)  # emptied by hand: a new id, never the old one
        assert remade != first and remade == await database_id(db)
    finally:
        await db.dispose()
        await other.dispose()


def test_the_schema_seen_is_remembered_per_database(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://tallyhub:secret@db:5432/tallyhub"
    assert schema_seen(tmp_path, url) is None
    remember_schema(tmp_path, url, "abc123")
    assert schema_seen(tmp_path, url) == "abc123"
    assert schema_seen(tmp_path, url.replace("/tallyhub", "/other")) is None
    assert "secret" not in (tmp_path / "database.json").read_text()
    assert masked_url(url) == "postgresql+asyncpg://tallyhub:***@db:5432/tallyhub"


class RefusingDatabase:
    """Stands for the database a migration needs: refuses connections until opened."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.attempts = 0

    def upgrade(self) -> None:
        self.attempts += 1
        if not self.open.is_set():
            raise ConnectionRefusedError(111, "Connect call failed")


URL = "postgresql+asyncpg://tallyhub@127.0.0.1:1/tallyhub"


def test_a_server_that_knew_the_schema_serves_first_and_migrates_later(tmp_path: Path) -> None:
    remember_schema(tmp_path, URL, "head1")
    database = RefusingDatabase()
    deferred = migrate_or_defer(database.upgrade, URL, tmp_path, "head1", backoff=QUICK)
    assert deferred is not None  # it returned at once: serving may start
    while database.attempts < 3:
        deferred.thread.join(0.01)
    database.open.set()
    deferred.thread.join(10)
    assert not deferred.thread.is_alive()
    assert schema_seen(tmp_path, URL) == "head1"


def test_a_server_whose_schema_may_be_behind_waits_for_the_database(tmp_path: Path) -> None:
    remember_schema(tmp_path, URL, "head0")  # an older schema: this code needs head1
    database = RefusingDatabase()

    def opens_later() -> None:
        while database.attempts < 3:
            threading.Event().wait(0.01)
        database.open.set()

    opener = threading.Thread(target=opens_later)
    opener.start()
    assert migrate_or_defer(database.upgrade, URL, tmp_path, "head1", backoff=QUICK) is None
    opener.join()
    assert database.attempts >= 4 and schema_seen(tmp_path, URL) == "head1"


def test_stopping_a_deferred_migration_ends_its_retries(tmp_path: Path) -> None:
    remember_schema(tmp_path, URL, "head1")
    database = RefusingDatabase()
    deferred = migrate_or_defer(database.upgrade, URL, tmp_path, "head1", backoff=QUICK)
    assert deferred is not None
    deferred.stop(timeout=10)
    assert not deferred.thread.is_alive() and not database.open.is_set()


async def test_a_closed_port_is_unreachable_and_other_errors_are_not() -> None:
    closed = Database("postgresql+asyncpg://postgres@127.0.0.1:1/postgres")
    try:
        try:
            await closed.ping()
        except Exception as error:
            assert is_unreachable(error)
        else:
            raise AssertionError("port 1 answered")
    finally:
        await closed.dispose()
    assert not is_unreachable(ValueError("a bad migration"))
