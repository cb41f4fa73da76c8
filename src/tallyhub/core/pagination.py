"""Pages of a list: what a page asks for, what it answers, and one page of an ORM query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class PageParams(BaseModel):
    page: int
    page_size: int

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
