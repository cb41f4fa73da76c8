"""Engines, sessions and the transaction edge, for SQLite, PostgreSQL and MySQL/MariaDB.

The edge (an HTTP request or a job run) opens a session, commits once, and only then
fires the callbacks registered with `after_commit`; on an error it rolls back and
drops them. Services flush, never commit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import DateTime, Insert, MetaData, Table, event, exc, func
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from tallyhub.core import metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every dialect; always hands back an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    """True for errors that a fresh attempt of the same transaction can get past."""
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
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs = {"echo": echo, "connect_args": {"timeout": 30}}
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_recycle=1800,
            )
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

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: commit at the end, roll back on error, then after-commit work."""
        maker = self._readonly if readonly else self._sessions
        async with maker() as session:
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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("tallyhub_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


# ---------------------------------------------------------------- dialect-aware upsert


def upsert(
    dialect: str,
    target: type[Base] | Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    increment: Iterable[str] = (),
    replace: Iterable[str] = (),
    keep_first: Iterable[str] = (),
) -> Insert:
    """INSERT rows; on a key conflict add `increment` columns, overwrite `replace` columns,
    and fill `keep_first` columns only where still NULL. With nothing to update, the insert
    does nothing on conflict (insert-or-nothing)."""
    table: Table = target if isinstance(target, Table) else target.__table__  # type: ignore[assignment]
    increment, replace, keep_first = list(increment), list(replace), list(keep_first)
    if dialect == "mysql":
        my = mysql.insert(table).values(list(rows))
        new = my.inserted
        sets: dict[str, Any] = {c: table.c[c] + new[c] for c in increment}
        sets.update({c: new[c] for c in replace})
        sets.update({c: _coalesce(table.c[c], new[c]) for c in keep_first})
        if not sets:
            first_key = keys[0]
            sets = {first_key: table.c[first_key]}
        return my.on_duplicate_key_update(sets)
    if dialect == "postgresql":
        pg = postgresql.insert(table).values(list(rows))
        excluded = pg.excluded
        sets = {c: table.c[c] + excluded[c] for c in increment}
        sets.update({c: excluded[c] for c in replace})
        sets.update({c: _coalesce(table.c[c], excluded[c]) for c in keep_first})
        if not sets:
            return pg.on_conflict_do_nothing(index_elements=list(keys))
        return pg.on_conflict_do_update(index_elements=list(keys), set_=sets)
    lite = sqlite.insert(table).values(list(rows))
    excluded = lite.excluded
    sets = {c: table.c[c] + excluded[c] for c in increment}
    sets.update({c: excluded[c] for c in replace})
    sets.update({c: _coalesce(table.c[c], excluded[c]) for c in keep_first})
    if not sets:
        return lite.on_conflict_do_nothing(index_elements=list(keys))
    return lite.on_conflict_do_update(index_elements=list(keys), set_=sets)


def _coalesce(current: Any, new: Any) -> Any:
    return func.coalesce(current, new)
