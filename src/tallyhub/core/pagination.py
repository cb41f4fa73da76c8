"""Pages of a list: what a page asks for, what it answers, and one page of an ORM query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Far past any list's end, and small enough that (page - 1) × page_size stays an OFFSET
# every database takes (a signed 64-bit integer): page 2**63 was a 500, not a 422.
MAX_PAGE = 2**31 - 1


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class PageParams(BaseModel):
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    page_size: int = Field(default=PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


async def paginate(
    session: AsyncSession,
    query: Select[tuple[T]],
    params: PageParams,
    *,
    key: InstrumentedAttribute[Any] | None = None,
) -> tuple[list[T], int]:
    """One page of an ORM query (already ordered) and the count of all its rows. With the
    entity's `key`, the page's keys are found first, then their rows."""
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if key is None:
        rows = list(await session.scalars(query.offset(params.offset).limit(params.page_size)))
    else:
        rows = await _page_by_keys(session, query, key, params)
    return rows, total or 0


async def _page_by_keys(
    session: AsyncSession,
    query: Select[tuple[T]],
    key: InstrumentedAttribute[Any],
    params: PageParams,
) -> list[T]:
    """The page's keys come from the sort's index alone, so the rows a deep OFFSET skips
    are never read from the table; then only the page's own rows are (PostgreSQL, 100,000
    orders, last page: 14.0 ms by OFFSET, 5.6 + 0.5 ms this way). Two statements, not a
    join: with OFFSET and LIMIT as parameters, a prepared join's generic plan may read the
    whole table in order to meet 50 keys (18.7 ms for the first page instead of 9)."""
    page = query.with_only_columns(key).offset(params.offset).limit(params.page_size)
    keys = list(await session.scalars(page))
    if not keys:
        return []
    found = await session.scalars(query.order_by(None).where(key.in_(keys)))
    by_key = {getattr(row, key.key): row for row in found}
    return [by_key[value] for value in keys]


def page_of(items: Sequence[T], total: int, params: PageParams) -> Page[T]:
    return Page[T](items=list(items), total=total, page=params.page, page_size=params.page_size)
