"""Engines, sessions and the transaction edge, for SQLite, PostgreSQL and MySQL/MariaDB.

The edge (an HTTP request or a job run) opens a session, commits once, and only then
fires the callbacks registered with `after_commit`; on an error it rolls back and
drops them. Services flush, never commit.

`write_rows()` is the one way to write many rows: inserts, upserts (`ON CONFLICT` or
`ON DUPLICATE KEY UPDATE`) and updates by key, several tables in one statement on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import structlog
from sqlalchemy import (
    DateTime,
    Insert,
    Integer,
    MetaData,
    Table,
    Update,
    bindparam,
    column,
    event,
    exc,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeDecorator, TypeEngine

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
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive_utc(value: datetime | None) -> datetime | None:
    """What a UTCDateTime column stores: naive UTC. A naive datetime is refused."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is UTC:
        return value.replace(tzinfo=None)
    if zone is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None)


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


async def custom_plans(conn: AsyncConnection) -> None:
    """For the rest of this transaction, let PostgreSQL plan each statement for its own
    parameters (a no-op elsewhere). Call it before `key IN (…)` lookups on a table that may
    have grown fast since their generic plan was made: a plan chosen while the table was
    nearly empty scans the whole table (measured: 9–90 ms instead of under 1 ms for 64
    event ids in 40,000 click logs, before autovacuum had analyzed the table)."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def bucketed(values: Iterable[T]) -> list[T]:
    """The distinct values, sorted, padded by repeating the last one to a power-of-two
    length. An expanding IN renders one SQL text per list length; with few lengths the
    driver's prepared statements (and the server's plans) are reused instead of prepared
    anew for almost every batch."""
    items: list[T] = sorted(set(values))  # type: ignore[type-var]
    if not items:
        return items
    size = 1 << (len(items) - 1).bit_length()
    return items + [items[-1]] * (size - len(items))


# ---------------------------------------------------------------- writing many rows


@lru_cache(maxsize=256)
def _upsert(
    dialect: str,
    table: Table,
    keys: tuple[str, ...],
    increment: tuple[str, ...],
    replace: tuple[str, ...],
    keep_first: tuple[str, ...],
    later: tuple[str, ...],
) -> Insert:
    greatest = func.max if dialect == "sqlite" else func.greatest

    def sets(new: Any) -> dict[str, Any]:
        values: dict[str, Any] = {c: table.c[c] + new[c] for c in increment}
        values.update({c: new[c] for c in replace})
        values.update({c: func.coalesce(table.c[c], new[c]) for c in keep_first})
        values.update({c: greatest(table.c[c], new[c]) for c in later})
        return values

    if dialect == "mysql":
        my = mysql.insert(table)
        return my.on_duplicate_key_update(sets(my.inserted) or {keys[0]: table.c[keys[0]]})
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    on_conflict = sets(ins.excluded)
    if not on_conflict:
        return ins.on_conflict_do_nothing(index_elements=list(keys))
    return ins.on_conflict_do_update(index_elements=list(keys), set_=on_conflict)


@dataclass(frozen=True)
class RowSet:
    """Rows for one table, each with the same columns, for `write_rows()`.

    An insert set (the default) is a plain INSERT, or with `keys` an upsert (`ON
    CONFLICT`, or `ON DUPLICATE KEY UPDATE` on MySQL): on a key conflict it adds the
    `increment` columns, overwrites `replace`, fills `keep_first` only where NULL and keeps
    the greater of `later`; with none of them it is insert-or-nothing. It gives back the
    `returning` columns of the rows written
    (insert-or-nothing returns nothing for a row it left alone; MySQL/MariaDB cannot
    tell, so there a set with `keys` may not ask for `returning`). An update set
    (`update=True`) changes existing rows matched by `keys`: adds the `increment` columns
    and overwrites the `replace` ones; it never inserts. Keys must be unique among the rows
    whenever rows are changed: PostgreSQL cannot change one row twice in one statement."""

    target: type[Base] | Table
    rows: Sequence[Mapping[str, Any]]
    keys: Sequence[str] = ()
    increment: Sequence[str] = ()
    replace: Sequence[str] = ()
    keep_first: Sequence[str] = ()
    later: Sequence[str] = ()
    returning: Sequence[str] = ()
    update: bool = False

    @property
    def table(self) -> Table:
        target = self.target
        return target if isinstance(target, Table) else target.__table__  # type: ignore[return-value]

    def shape(self) -> _Shape:
        if self.update and (not self.keys or self.keep_first or self.later or self.returning):
            raise ValueError("an update set takes keys, increment and replace only")
        return _Shape(
            self.table,
            tuple(self.rows[0]),
            tuple(self.keys),
            tuple(self.increment),
            tuple(self.replace),
            tuple(self.keep_first),
            tuple(self.later),
            tuple(self.returning),
            self.update,
        )


class _Shape(NamedTuple):
    table: Table
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    increment: tuple[str, ...]
    replace: tuple[str, ...]
    keep_first: tuple[str, ...]
    later: tuple[str, ...]
    returning: tuple[str, ...]
    update: bool


async def write_rows(conn: AsyncConnection, *sets: RowSet) -> list[list[tuple[Any, ...]]]:
    """Write row sets, each in its row order, the sets in the order given; returns each
    set's `returning` rows (an empty list for a set that returns nothing). Sets that
    return rows come before the others.

    On PostgreSQL this is one statement, one round trip: every set travels as one array
    per column through `unnest(…)` (one execution and one short plan however many rows,
    instead of a statement per row or a VALUES list planned anew for every length). The
    first set is the statement itself, or, when several sets return rows, the statement
    reads their CTEs one after the other; the other sets are data-modifying CTEs, listed
    last first: PostgreSQL runs a statement's own part (and the CTEs it reads, as it reads
    them), then its other CTEs from the last listed, so the sets lock rows in the order
    given, the same in every transaction that writes the same sets. An update set joins
    its rows in whatever order the plan visits them, so when it comes first the
    statement's own part locks its rows in key order (`SELECT … ORDER BY … FOR UPDATE`)
    before it runs; an update set further on should change only rows the transaction
    already holds.

    Elsewhere each set is an executemany (of the dialect's upsert, a plain INSERT or an
    UPDATE by key), one after the other, row after row."""
    returned: list[list[tuple[Any, ...]]] = [[] for _ in sets]
    written = [(n, s) for n, s in enumerate(sets) if s.rows]
    if not written:
        return returned
    flags = [bool(s.returning) for _, s in written]
    if flags != sorted(flags, reverse=True):
        raise ValueError("sets that return rows come before the others")
    if conn.dialect.name == "postgresql":
        shapes = tuple(s.shape() for _, s in written)
        statement = _unnest_statement(shapes)
        params: dict[str, list[Any]] = {}
        for n, ((_, s), shape) in enumerate(zip(written, shapes, strict=True)):
            params.update(unnest_arrays(shape.table, shape.columns, f"a{n}").arrays(s.rows))
        result = await conn.execute(statement, params)
        if sum(flags) == 1:
            returned[written[0][0]] = [tuple(row) for row in result]
        elif sum(flags) > 1:
            # One column per returned column of every set, after the set's index.
            offsets = [0]
            for _, s in written:
                offsets.append(offsets[-1] + len(s.returning))
            for row in result:
                n = row[0]
                returned[written[n][0]].append(tuple(row[1 + offsets[n] : 1 + offsets[n + 1]]))
        return returned
    if conn.dialect.name == "mysql" and any(s.keys and s.returning for _, s in written):
        # ON DUPLICATE KEY UPDATE … RETURNING returns the rows it left alone as well.
        raise ValueError("MySQL/MariaDB cannot tell inserted rows apart: read them back")
    for n, s in written:
        shape = s.shape()
        if shape.update:
            await conn.execute(
                _update_by_key(shape.table, shape.keys, shape.increment, shape.replace),
                [{f"p_{c}": row[c] for c in shape.columns} for row in s.rows],
            )
            continue
        table = shape.table
        base = _upsert(conn.dialect.name, table, *shape[2:7]) if s.keys else insert(table)
        if s.returning:
            base = base.returning(*(table.c[c] for c in s.returning))
        result = await conn.execute(base, list(s.rows))
        if s.returning:
            returned[n] = [tuple(row) for row in result]
    return returned


@lru_cache(maxsize=64)
def _update_by_key(
    table: Table, keys: tuple[str, ...], increment: tuple[str, ...], replace: tuple[str, ...]
) -> Update:
    values: dict[str, Any] = {c: table.c[c] + bindparam(f"p_{c}") for c in increment}
    values.update({c: bindparam(f"p_{c}") for c in replace})
    return update(table).where(*(table.c[k] == bindparam(f"p_{k}") for k in keys)).values(values)


_ASYNCPG = PGDialect_asyncpg()


@dataclass(frozen=True, slots=True)
class Unnest:
    """PostgreSQL: `unnest(CAST(:<prefix>_0 AS <type>[]), …)` (`source`), a row source of
    one array per column of a table; its bind parameters (`<prefix>_<i>`, the i-th column);
    and `arrays(rows)`, their values. For `write_rows()` and for statements written by
    hand.

    Each value goes through its column type's own bind processing (a UTC datetime becomes
    naive UTC, a JSON value its text), one comprehension per column; the parameters carry
    no type of their own, the CASTs type them for PostgreSQL (bound as typed ARRAYs, every
    element also went through SQLAlchemy's generic array layers). The processing is
    asyncpg's with the default engine options (no custom `json_serializer`): that is how
    `Database` creates its engines."""

    source: str
    params: tuple[BindParameter[Any], ...]
    columns: tuple[str, ...]
    prefix: str
    processors: tuple[Callable[[Any], Any] | None, ...]

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        arrays: dict[str, list[Any]] = {}
        for i, (name, process) in enumerate(zip(self.columns, self.processors, strict=True)):
            values = [row[name] for row in rows]
            arrays[f"{self.prefix}_{i}"] = values if process is None else list(map(process, values))
        return arrays


@lru_cache(maxsize=512)
def unnest_arrays(table: Table, columns: tuple[str, ...], prefix: str) -> Unnest:
    dialect = postgresql.dialect()
    types = [table.c[c].type for c in columns]
    source = ", ".join(
        f"CAST(:{prefix}_{i} AS {type_.compile(dialect=dialect)}[])"
        for i, type_ in enumerate(types)
    )
    return Unnest(
        source=f"unnest({source})",
        params=tuple(bindparam(f"{prefix}_{i}") for i in range(len(columns))),
        columns=columns,
        prefix=prefix,
        processors=tuple(map(_bind_processor, types)),
    )


def _bind_processor(type_: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    if isinstance(type_, UTCDateTime):
        return naive_utc  # the same, one call instead of TypeDecorator's two
    return type_.dialect_impl(_ASYNCPG).bind_processor(_ASYNCPG)


@lru_cache(maxsize=256)
def _unnest_statement(shapes: tuple[_Shape, ...]) -> TextClause | TextualSelect:
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote

    def rows_of(n: int, shape: _Shape) -> str:
        source = unnest_arrays(shape.table, shape.columns, f"a{n}").source
        return f"{source} AS u({', '.join(quote(c) for c in shape.columns)})"

    def write(n: int, shape: _Shape) -> str:
        table = dialect.identifier_preparer.format_table(shape.table)
        if shape.update:
            sets = [f"{quote(c)} = t.{quote(c)} + u.{quote(c)}" for c in shape.increment]
            sets += [f"{quote(c)} = u.{quote(c)}" for c in shape.replace]
            match = " AND ".join(f"t.{quote(k)} = u.{quote(k)}" for k in shape.keys)
            return (
                f"UPDATE {table} AS t SET {', '.join(sets)} FROM {rows_of(n, shape)} WHERE {match}"
            )
        names = ", ".join(quote(c) for c in shape.columns)
        sql = f"INSERT INTO {table} AS t ({names}) SELECT * FROM {rows_of(n, shape)}"
        if shape.keys:
            sets = [f"{quote(c)} = t.{quote(c)} + EXCLUDED.{quote(c)}" for c in shape.increment]
            sets += [f"{quote(c)} = EXCLUDED.{quote(c)}" for c in shape.replace]
            sets += [
                f"{quote(c)} = coalesce(t.{quote(c)}, EXCLUDED.{quote(c)})"
                for c in shape.keep_first
            ]
            sets += [
                f"{quote(c)} = greatest(t.{quote(c)}, EXCLUDED.{quote(c)})" for c in shape.later
            ]
            action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
            sql += f" ON CONFLICT ({', '.join(quote(k) for k in shape.keys)}) {action}"
        if shape.returning:
            sql += " RETURNING " + ", ".join(f"t.{quote(c)}" for c in shape.returning)
        return sql

    first = shapes[0]
    parts = [(f"w{n}", write(n, shape)) for n, shape in enumerate(shapes)]
    returning = [(n, shape) for n, shape in enumerate(shapes) if shape.returning]
    result_columns: list[Any] = [first.table.c[c] for c in first.returning]
    if first.update:
        # Lock the rows first, in key order; then the update (the last CTE: run first).
        keys = ", ".join(f"t.{quote(k)}" for k in first.keys)
        key_rows = ", ".join(f"{quote(k)}" for k in first.keys)
        main = (
            f"SELECT 1 FROM {dialect.identifier_preparer.format_table(first.table)} AS t "
            f"WHERE ({keys}) IN (SELECT {key_rows} FROM {rows_of(0, first)}) "
            f"ORDER BY {keys} FOR UPDATE OF t"
        )
        ctes = parts
    elif len(returning) > 1:
        # Read the returning sets' CTEs one after the other: a row is its set's index,
        # then one column for every returned column of every set (NULL but its own).
        result_columns = [column("set_index", Integer)]
        typed: list[tuple[int, str, str]] = []
        for n, shape in returning:
            for c in shape.returning:
                typed.append((n, c, shape.table.c[c].type.compile(dialect=dialect)))
                result_columns.append(shape.table.c[c].label(f"w{n}_{c}"))
        main = " UNION ALL ".join(
            f"SELECT {n}, "
            + ", ".join(
                f"w{n}.{quote(c)}" if owner == n else f"CAST(NULL AS {type_})"
                for owner, c, type_ in typed
            )
            + f" FROM w{n}"
            for n, _ in returning
        )
        ctes = parts
    else:
        main = parts[0][1]
        ctes = parts[1:]
    sql = main
    if ctes:
        sql = f"WITH {', '.join(f'{name} AS ({text_})' for name, text_ in reversed(ctes))} {main}"
    statement = text(sql).bindparams(
        *(
            param
            for n, shape in enumerate(shapes)
            for param in unnest_arrays(shape.table, shape.columns, f"a{n}").params
        )
    )
    if not returning or first.update:
        return statement
    return statement.columns(*result_columns)
