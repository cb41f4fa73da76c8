"""Test fixtures: the same tests on SQLite, PostgreSQL and MariaDB.

Each database server gets one uniquely named database for the whole run, migrated with
Alembic (so the migrations are tested too) and dropped at the end; every test starts from
empty tables. Servers come from TALLYHUB_TEST_POSTGRES_URL / TALLYHUB_TEST_MYSQL_URL
(default: the local services). Outside CI an unreachable server skips its tests; with
CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from xdist.scheduler import LoadScopeScheduling

from tallyhub import migrate
from tallyhub.app import create_app
from tallyhub.core.columns import Base
from tallyhub.core.db import Database
from tallyhub.domains import register_jobs
from tallyhub.settings import Settings

register_jobs()  # the registry as every process has it

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get(
    "TALLYHUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
MYSQL_URL = os.environ.get("TALLYHUB_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/mysql")
SERVERS = {"postgresql": POSTGRES_URL, "mysql": MYSQL_URL}
REDIS_URL = os.environ.get("TALLYHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


# `make test` runs the suite in two xdist workers (`-n 2 --dist loadgroup`); the tests of a
# group run one after another in one worker. The browser tests share one live server with
# the demo data; the fuzz runs share their served apps and fuzz the deletes last; the tests
# of shared services must not meet another copy of themselves: Redis keys and channels and
# Celery queues are named alike in both workers, the concurrency tests open up to a hundred
# connections, and the fault tests stop and start real processes against the clock. The
# groups go by test id, as xdist's controller sees only ids (and xdist 3.8's own
# `xdist_group` marks no longer group anything under pytest 9).
_SHARED_SERVICE_FILES = {
    "tests/clicks/test_concurrency.py",
    "tests/clicks/test_spool_replay.py",
    "tests/core/test_celery_runner.py",
    "tests/core/test_login_limit.py",
    "tests/core/test_scheduler_mode.py",
    "tests/douplus/test_celery.py",
    "tests/leads/test_concurrency.py",
    "tests/leads/test_live.py",
}


def xdist_group_of(nodeid: str) -> str | None:
    """The group a test id runs in, or None (any worker, any time)."""
    path, _, name = nodeid.partition("::")
    if path.startswith("tests/web/"):
        return "browser"
    if path.startswith("tests/fuzz/"):
        return "fuzz"
    shared = path in _SHARED_SERVICE_FILES or path.startswith("tests/faults/")
    return "services" if shared or "redis" in name else None


class _GroupScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with the groups above as scopes, every other test a scope
    of its own; the largest scopes are sent first."""

    def _split_scope(self, nodeid: str) -> str:
        return xdist_group_of(nodeid) or nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return _GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


def unavailable(reason: str) -> None:
    """A missing service: a failure in CI, a skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)  # only outside CI: with CI=true the line above fails instead


@dataclass
class TestDatabase:
    __test__ = False  # not a test class, despite the name

    name: str  # sqlite | postgresql | mysql
    url: str

    @property
    def is_server(self) -> bool:
        return self.name != "sqlite"


async def _admin_execute(server_url: str, *statements: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


class _Servers:
    """Creates each server's test database on first use and drops it at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.sqlite_template: Path | None = None

    async def database(self, name: str) -> str:
        if name == "sqlite":
            return await self._sqlite()
        if name in self.failed:
            unavailable(self.failed[name])
        if name not in self.created:
            server_url = SERVERS[name]
            db_name = f"tallyhub_test_{RUN_ID}"
            try:
                await asyncio.wait_for(
                    _admin_execute(server_url, f"CREATE DATABASE {db_name}"), timeout=10
                )
            except Exception as error:  # any failure to reach the server
                self.failed[name] = f"{name} unreachable at {server_url}: {error!r}"[:300]
                unavailable(self.failed[name])
            url = make_url(server_url).set(database=db_name).render_as_string(hide_password=False)
            await asyncio.to_thread(migrate.upgrade, url)
            self.created[name] = url
        return self.created[name]

    async def _sqlite(self) -> str:
        if self.sqlite_template is None:
            template = self.tmp / "template.db"
            await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{template}")
            self.sqlite_template = template
        path = self.tmp / f"t_{uuid.uuid4().hex[:8]}.db"
        shutil.copy(self.sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"

    async def drop_all(self) -> None:
        for name, url in self.created.items():
            db_name = make_url(url).database
            await _admin_execute(SERVERS[name], f"DROP DATABASE IF EXISTS {db_name}")


@pytest.fixture
async def redis_url() -> str:
    """The test Redis, once it answers (unreachable: a failure in CI, a skip elsewhere)."""
    client = Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 3)
    except (RedisError, OSError, TimeoutError) as error:
        unavailable(f"redis unreachable at {REDIS_URL}: {error!r}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(scope="session")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_Servers]:
    registry = _Servers(tmp_path_factory.mktemp("db"))
    yield registry
    await registry.drop_all()


def _emptying_block(tables: list[str]) -> str:
    """PostgreSQL, in one round trip: DELETE every table (children first) and restart the
    sequences that were used. TRUNCATE made new files for every table and index: 160 ms a
    test even with every table empty, against 20 ms."""
    deletes = " ".join(f"DELETE FROM {table};" for table in tables)
    return f"""DO $$ DECLARE used record; BEGIN {deletes}
      FOR used IN SELECT schemaname, sequencename FROM pg_sequences
          WHERE schemaname = current_schema() AND last_value IS NOT NULL LOOP
        EXECUTE format('ALTER SEQUENCE %I.%I RESTART', used.schemaname, used.sequencename);
      END LOOP;
    END $$"""


async def _empty_tables(url: str) -> None:
    db = Database(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)] + ["alembic_version"]
    tables.remove("alembic_version")
    try:
        async with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text(_emptying_block(tables)))
            elif db.dialect == "mysql":
                await conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
                for table in tables:
                    await conn.execute(text(f"DELETE FROM {table}"))
                await conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    finally:
        await db.dispose()


async def _prepare(servers: _Servers, name: str) -> TestDatabase:
    url = await servers.database(name)
    if name != "sqlite":
        await _empty_tables(url)
    return TestDatabase(name, url)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
async def test_db(request: pytest.FixtureRequest, servers: _Servers) -> TestDatabase:
    """An empty, migrated database on each of the three dialects."""
    return await _prepare(servers, request.param)


@pytest.fixture(params=["postgresql", "mysql"])
async def server_db(request: pytest.FixtureRequest, servers: _Servers) -> TestDatabase:
    """Only the real servers: for tests of concurrency that SQLite would serialize."""
    return await _prepare(servers, request.param)


def make_settings(url: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": url,
        "secret_key": "test-secret-key-not-for-production-0123456789",
        "scheduler": "off",
        "var_dir": tmp,
        "pool": {"size": 20, "max_overflow": 40},
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Harness:
    """A running app on one test database, with an HTTP client."""

    app: Any
    client: httpx.AsyncClient
    db: TestDatabase

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


@pytest.fixture
async def harness(test_db: TestDatabase, tmp_path: Path) -> AsyncIterator[Harness]:
    async with _harness(test_db, tmp_path) as h:
        yield h


@pytest.fixture
async def server_harness(server_db: TestDatabase, tmp_path: Path) -> AsyncIterator[Harness]:
    async with _harness(server_db, tmp_path) as h:
        yield h


@asynccontextmanager
async def _harness(db: TestDatabase, tmp: Path, **overrides: Any) -> AsyncIterator[Harness]:
    app = create_app(make_settings(db.url, tmp, **overrides), scheduler=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Harness(app, client, db)


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Any]:
    """Build a harness with other settings: `async with harness_factory(db, **settings)`."""

    def build(db: TestDatabase, **overrides: Any) -> Any:
        return _harness(db, tmp_path, **overrides)

    yield build
