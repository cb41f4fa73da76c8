"""Writing many rows at once: `write_rows()` (inserts, upserts and updates by key, several
tables in one statement on PostgreSQL), the `unnest` arrays it binds, and `bucketed()` for
IN lists that reuse their prepared statements."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Insert, Integer, Table, Update, bindparam, column, func, insert, text, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeEngine

from tallyhub.core.columns import Base, UTCDateTime, naive_utc

T = TypeVar("T")


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
        await _write_in_one_statement(conn, written, sum(flags), returned)
    else:
        await _write_set_by_set(conn, written, returned)
    return returned


async def _write_in_one_statement(
    conn: AsyncConnection,
    written: list[tuple[int, RowSet]],
    returning_sets: int,
    returned: list[list[tuple[Any, ...]]],
) -> None:
    """PostgreSQL: the sets in one `unnest` statement; their returned rows into
    `returned`, by the sets' places in `write_rows()`."""
    shapes = tuple(s.shape() for _, s in written)
    statement = _unnest_statement(shapes)
    params: dict[str, list[Any]] = {}
    for n, ((_, s), shape) in enumerate(zip(written, shapes, strict=True)):
        params.update(unnest_arrays(shape.table, shape.columns, f"a{n}").arrays(s.rows))
    result = await conn.execute(statement, params)
    if returning_sets == 1:
        returned[written[0][0]] = [tuple(row) for row in result]
    elif returning_sets > 1:
        _share_out_returned(result, written, returned)


def _share_out_returned(
    result: Iterable[Sequence[Any]],
    written: list[tuple[int, RowSet]],
    returned: list[list[tuple[Any, ...]]],
) -> None:
    """Give each set its rows of a statement that returned several sets' rows."""
    # One column per returned column of every set, after the set's index.
    offsets = [0]
    for _, s in written:
        offsets.append(offsets[-1] + len(s.returning))
    for row in result:
        n = row[0]
        returned[written[n][0]].append(tuple(row[1 + offsets[n] : 1 + offsets[n + 1]]))


async def _write_set_by_set(
    conn: AsyncConnection,
    written: list[tuple[int, RowSet]],
    returned: list[list[tuple[Any, ...]]],
) -> None:
    """Other dialects: an executemany per set, in order; their returned rows into
    `returned`, by the sets' places in `write_rows()`."""
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


_POSTGRESQL = postgresql.dialect()
_quote = _POSTGRESQL.identifier_preparer.quote


@lru_cache(maxsize=256)
def _unnest_statement(shapes: tuple[_Shape, ...]) -> TextClause | TextualSelect:
    first = shapes[0]
    parts = [(f"w{n}", _write_sql(n, shape)) for n, shape in enumerate(shapes)]
    returning = [(n, shape) for n, shape in enumerate(shapes) if shape.returning]
    result_columns: list[Any] = [first.table.c[c] for c in first.returning]
    if first.update:
        # Lock the rows first, in key order; then the update (the last CTE: run first).
        main = _lock_in_key_order(first)
        ctes = parts
    elif len(returning) > 1:
        main, result_columns = _returned_sets(returning)
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


def _rows_of(n: int, shape: _Shape) -> str:
    """The n-th set's rows: its `unnest` arrays as a row source `u`."""
    source = unnest_arrays(shape.table, shape.columns, f"a{n}").source
    return f"{source} AS u({', '.join(_quote(c) for c in shape.columns)})"


def _write_sql(n: int, shape: _Shape) -> str:
    """The n-th set's UPDATE, or its INSERT (an upsert with keys)."""
    table = _POSTGRESQL.identifier_preparer.format_table(shape.table)
    if shape.update:
        sets = [f"{_quote(c)} = t.{_quote(c)} + u.{_quote(c)}" for c in shape.increment]
        sets += [f"{_quote(c)} = u.{_quote(c)}" for c in shape.replace]
        match = " AND ".join(f"t.{_quote(k)} = u.{_quote(k)}" for k in shape.keys)
        return f"UPDATE {table} AS t SET {', '.join(sets)} FROM {_rows_of(n, shape)} WHERE {match}"
    names = ", ".join(_quote(c) for c in shape.columns)
    sql = f"INSERT INTO {table} AS t ({names}) SELECT * FROM {_rows_of(n, shape)}"
    if shape.keys:
        sql += _on_conflict(shape)
    if shape.returning:
        sql += " RETURNING " + ", ".join(f"t.{_quote(c)}" for c in shape.returning)
    return sql


def _on_conflict(shape: _Shape) -> str:
    q = _quote
    sets = [f"{q(c)} = t.{q(c)} + EXCLUDED.{q(c)}" for c in shape.increment]
    sets += [f"{q(c)} = EXCLUDED.{q(c)}" for c in shape.replace]
    sets += [f"{q(c)} = coalesce(t.{q(c)}, EXCLUDED.{q(c)})" for c in shape.keep_first]
    sets += [f"{q(c)} = greatest(t.{q(c)}, EXCLUDED.{q(c)})" for c in shape.later]
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    return f" ON CONFLICT ({', '.join(q(k) for k in shape.keys)}) {action}"


def _lock_in_key_order(first: _Shape) -> str:
    """The statement's own part when an update set comes first: lock its rows in key
    order."""
    keys = ", ".join(f"t.{_quote(k)}" for k in first.keys)
    key_rows = ", ".join(f"{_quote(k)}" for k in first.keys)
    return (
        f"SELECT 1 FROM {_POSTGRESQL.identifier_preparer.format_table(first.table)} AS t "
        f"WHERE ({keys}) IN (SELECT {key_rows} FROM {_rows_of(0, first)}) "
        f"ORDER BY {keys} FOR UPDATE OF t"
    )


def _returned_sets(returning: list[tuple[int, _Shape]]) -> tuple[str, list[Any]]:
    """The statement's own part when several sets return rows, and its result columns:
    it reads the returning sets' CTEs one after the other; a row is its set's index, then
    one column for every returned column of every set (NULL but its own)."""
    result_columns: list[Any] = [column("set_index", Integer)]
    typed: list[tuple[int, str, str]] = []
    for n, shape in returning:
        for c in shape.returning:
            typed.append((n, c, shape.table.c[c].type.compile(dialect=_POSTGRESQL)))
            result_columns.append(shape.table.c[c].label(f"w{n}_{c}"))
    main = " UNION ALL ".join(
        f"SELECT {n}, "
        + ", ".join(
            f"w{n}.{_quote(c)}" if owner == n else f"CAST(NULL AS {type_})"
            for owner, c, type_ in typed
        )
        + f" FROM w{n}"
        for n, _ in returning
    )
    return main, result_columns
