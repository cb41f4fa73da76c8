"""Migrations that change tables already holding rows: upgraded with data in place, and
back down, on each dialect (the other tests only ever migrate empty databases)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, table, text
from sqlalchemy.engine import make_url

import tallyhub.domains  # noqa: F401  (imports every domain's models into Base.metadata)
from tallyhub import migrate
from tallyhub.core.columns import Base
from tallyhub.core.db import Database
from tests.conftest import RUN_ID, SERVERS, _admin_execute, unavailable

BEFORE_LEASES = "7c2e9d41a0b3"  # the revision before job_runs got its lease
JOB_RUNS = table(
    "job_runs",
    *(
        column(name)
        for name in ("job_name", "scheduled_for", "trigger", "status", "started_at", "finished_at")
    ),
)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own, with no tables yet."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
        return
    server = SERVERS[request.param]
    name = f"tallyhub_test_mig_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    try:
        await asyncio.wait_for(_admin_execute(server, f"CREATE DATABASE {name}"), timeout=10)
    except Exception as error:
        unavailable(f"{request.param} unreachable at {server}: {error!r}"[:300])
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(server, f"DROP DATABASE IF EXISTS {name}")


async def test_job_runs_get_a_lease_with_their_rows_in_place(empty_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url, BEFORE_LEASES)
    db = Database(empty_url)
    try:
        async with db.engine.begin() as conn:
            slot, start = datetime(2026, 11, 1, 3, 0), datetime(2026, 11, 1, 3, 0, 1)
            await conn.execute(
                insert(JOB_RUNS),  # a plain table: `trigger` is a reserved word in MariaDB
                [
                    {
                        "job_name": "old.done",
                        "scheduled_for": slot,
                        "trigger": "schedule",
                        "status": "succeeded",
                        "started_at": start,
                        "finished_at": datetime(2026, 11, 1, 3, 0, 9),
                    },
                    {
                        "job_name": "old.running",
                        "scheduled_for": slot,
                        "trigger": "schedule",
                        "status": "running",
                        "started_at": start,
                        "finished_at": None,
                    },
                ],
            )
        migrated_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        await asyncio.to_thread(migrate.upgrade, empty_url)
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT job_name, heartbeat_at, attempt FROM job_runs ORDER BY job_name")
                )
            ).all()
        # A finished run's lease ends with it; one in flight counts as alive from the
        # migration on (an older process may still finish it).
        done, running = rows
        assert (done.job_name, str(done.heartbeat_at)[:19], done.attempt) == (
            "old.done",
            "2026-11-01 03:00:09",
            1,
        )
        assert (running.job_name, running.attempt) == ("old.running", 1)
        assert str(running.heartbeat_at)[:19] >= migrated_at.isoformat(sep=" ")
    finally:
        await db.dispose()
    config = migrate.alembic_config(empty_url)
    await asyncio.to_thread(command.downgrade, config, BEFORE_LEASES)
    db = Database(empty_url)
    try:
        async with db.engine.connect() as conn:
            names = (await conn.execute(text("SELECT job_name FROM job_runs"))).scalars().all()
            with pytest.raises(Exception, match=r"(?i)heartbeat_at"):
                await conn.execute(text("SELECT heartbeat_at FROM job_runs"))
        assert sorted(names) == ["old.done", "old.running"]
    finally:
        await db.dispose()


async def test_the_migrations_build_exactly_the_tables_the_models_describe(
    empty_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url)
    db = Database(empty_url)
    try:
        async with db.engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await db.dispose()
    assert differences == []


async def test_a_migrated_sqlite_database_is_in_wal_mode_before_the_app_opens_it(
    tmp_path: Path,
) -> None:
    """WAL is kept in the file, so the app's first connections, opened together, find it
    set and do not race to switch it (two switches at once waited out the busy timeout)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    await asyncio.to_thread(migrate.upgrade, url)
    header = (tmp_path / "fresh.db").read_bytes()[18:20]
    assert header == b"\x02\x02"  # file format versions 2: WAL
    db = Database(url)
    try:

        async def mode() -> str:
            async with db.engine.connect() as conn:
                return str((await conn.execute(text("PRAGMA journal_mode"))).scalar())

        modes = await asyncio.wait_for(asyncio.gather(*(mode() for _ in range(8))), 10)
    finally:
        await db.dispose()
    assert modes == ["wal"] * 8
