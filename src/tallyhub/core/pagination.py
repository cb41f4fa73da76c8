"""Pages of a list: what a page asks for, what it answers, and one page of an ORM query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    session: AsyncSession, query: Select[tuple[T]], params: PageParams
) -> tuple[list[T], int]:
    """One page of an ORM query (already ordered) and the count of all its rows."""
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.scalars(query.offset(params.offset).limit(params.page_size))
    return list(rows), total or 0


def page_of(items: Sequence[T], total: int, params: PageParams) -> Page[T]:
    return Page[T](items=list(items), total=total, page=params.page, page_size=params.page_size)
