"""Engines, sessions and the transaction edge, for SQLite, PostgreSQL and MySQL/MariaDB.

The edge (an HTTP request or a job run) opens a session, commits once, and only then
fires the callbacks registered with `after_commit`; on an error it rolls back and
drops them. Services flush, never commit.

Column types live in core/columns.py, writing many rows in core/bulk.py.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, TypeVar

import structlog
from sqlalchemy import (
    event,
    exc,
    make_url,
)
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tallyhub.core import metrics
from tallyhub.core.columns import UTCDateTime  # noqa: F401  (landed migrations name it here)

log = structlog.get_logger(__name__)

T = TypeVar("T")

# ---------------------------------------------------------------- after-commit work

AfterCommit = Callable[[], Awaitable[None] | None]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; never on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


async def _release_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            result = callback()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            # The data is committed; a failed side effect must not turn the answer into an
            # error. It is logged and counted so that it is seen.
            log.error("after_commit.failed", callback=repr(callback), exc_info=True)
            metrics.AFTER_COMMIT_ERRORS.inc()


# ---------------------------------------------------------------- retryable errors

_MYSQL_RETRYABLE = {1213, 1205}  # deadlock, lock wait timeout
_PG_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected


def is_retryable(error: BaseException) -> bool:
    """True for errors that a fresh attempt of the same transaction can get past: lock
    conflicts, and a pooled connection found dead (the pool then hands out new ones, which
    is why there is no pre-ping round trip on every checkout)."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return is_lock_conflict(error)


def is_lock_conflict(error: BaseException) -> bool:
    """Deadlock, lock wait timeout, serialization failure, SQLite busy."""
    if isinstance(error, exc.DBAPIError):
        orig = error.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in _PG_RETRYABLE:
            return True
        args = getattr(orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MYSQL_RETRYABLE:
            return True
        text = str(orig)
        if "database is locked" in text:
            return True
        if any(f"({c}," in text for c in _MYSQL_RETRYABLE):
            return True
        if "deadlock detected" in text or "could not serialize" in text:
            return True
    return False


def is_disconnect(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OSError | ConnectionError | exc.InterfaceError | TimeoutError)


async def backoff(attempt: int) -> None:
    await asyncio.sleep(min(0.2, 0.005 * (2**attempt)) * (0.5 + random.random()))


# ---------------------------------------------------------------- SQLite writers

# Per event loop, one lock per SQLite file: the writers of one process take turns here
# instead of in SQLite's busy handler. A connection waiting in the busy handler holds its
# connection's mutex, and when the garbage collector frees one of that connection's
# cursors on the event loop's thread, the loop stops until the wait ends, so the writer it
# waits for never commits (seen: a 30-second stall, the busy timeout, in the job-slot race
# test). SQLite lets one writer in at a time anyway; processes still meet in SQLite.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]
_SQLITE_WRITERS = weakref.WeakKeyDictionary()
# The files whose turn this task holds: a write transaction opened inside another one (the
# outer one may not have begun yet) goes on without waiting for itself.
_TURNS_HELD: ContextVar[frozenset[str]] = ContextVar("tallyhub_sqlite_turns", default=frozenset())


@asynccontextmanager
async def _sqlite_turn(path: str) -> AsyncIterator[None]:
    held = _TURNS_HELD.get()
    if path in held:
        yield
        return
    locks = _SQLITE_WRITERS.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(path, asyncio.Lock()):
        token = _TURNS_HELD.set(held | {path})
        try:
            yield
        finally:
            _TURNS_HELD.reset(token)


# ---------------------------------------------------------------- the database


class Database:
    """One engine per process, and the transaction edge built on it."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 20,
        pool_timeout: float = 10.0,
        echo: bool = False,
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs = {"echo": echo, "connect_args": {"timeout": 30}}
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_recycle=1800,
            )
        # PostgreSQL keeps its default plan_cache_mode (auto): asyncpg prepares every
        # statement, and after five runs a statement whose generic plan is as cheap as its
        # custom ones is no longer planned at all. That is what the `unnest` writes of a
        # group-commit batch need (their plans do not depend on the arrays). Forcing custom
        # plans, as an earlier version did for `key IN (…)` lookups, cost a replan of every
        # statement of every batch (leads: 16.7 ms a batch against 12.0 ms); those lookups
        # go through unique indexes, which the generic plans use too.
        if url.startswith("mysql"):
            # READ COMMITTED: fewer gap locks, and every statement sees the latest commits,
            # which recalibration and insert-or-nothing rely on.
            kwargs["isolation_level"] = "READ COMMITTED"
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readonly = async_sessionmaker(
            self.engine.execution_options(tallyhub_readonly=True), expire_on_commit=False
        )
        self._sqlite_file = make_url(url).database if self.dialect == "sqlite" else None

    def _writer_turn(self, readonly: bool) -> AbstractAsyncContextManager[Any]:
        """This process's turn to write to its SQLite file; nothing to wait for elsewhere."""
        if self._sqlite_file is None or readonly:
            return nullcontext()
        return _sqlite_turn(self._sqlite_file)

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: commit at the end, roll back on error, then after-commit work."""
        maker = self._readonly if readonly else self._sessions
        async with self._writer_turn(readonly), maker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                session.info.pop("after_commit", None)
                await session.rollback()
                raise
        await _release_after_commit(session)

    async def run(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        retries: int = 5,
        readonly: bool = False,
    ) -> T:
        """Run `work` in a transaction, retrying deadlocks and serialization failures."""
        attempt = 0
        while True:
            try:
                async with self.transaction(readonly=readonly) as session:
                    return await work(session)
            except exc.DBAPIError as error:
                if attempt >= retries or not is_retryable(error):
                    raise
                metrics.DB_RETRIES.labels(kind="transaction").inc()
                log.warning("db.retry", attempt=attempt, error=str(error.orig)[:200])
                attempt += 1
                await backoff(attempt)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    def pool_status(self) -> dict[str, int]:
        pool = self.engine.sync_engine.pool
        # QueuePool.overflow() is "opened minus pool size", negative while under the size.
        return {
            "size": int(getattr(pool, "size", lambda: 0)()),
            "checked_out": int(getattr(pool, "checkedout", lambda: 0)()),
            "overflow": max(0, int(getattr(pool, "overflow", lambda: 0)())),
        }

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for writers so two writers queue instead
    of failing halfway through with 'database is locked'."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # Switching to WAL takes an exclusive lock, and two connections switching at once
        # wait on each other until the busy timeout: switch only a file that is not in WAL
        # yet (migrations leave every database in WAL, and the mode is kept in the file).
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("tallyhub_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


async def custom_plans(conn: AsyncConnection) -> None:
    """For the rest of this transaction, let PostgreSQL plan each statement for its own
    parameters (a no-op elsewhere). Call it before `key IN (…)` lookups on a table that may
    have grown fast since their generic plan was made: a plan chosen while the table was
    nearly empty scans the whole table (measured: 9–90 ms instead of under 1 ms for 64
    event ids in 40,000 click logs, before autovacuum had analyzed the table)."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
