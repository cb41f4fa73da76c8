"""Order sync of one account: the upstream's order list read to its end signal, then the
orders stored in one transaction with the sync state, writing only what changed.

The list has no time filter. A full sync walks it oldest first to its last page (the
page count of the latest answer: orders created during the walk land at its end) and
keeps the last `sync_full_days`. An incremental sync walks it newest first and stops at
the first order older than `sync_incremental_days`, then asks again, by id, for every
stored order of the account not yet in a final state.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.db import custom_plans
from tallyhub.core.upstream import PageResult, paginate
from tallyhub.douplus.client import Order
from tallyhub.douplus.models import (
    FIGURES,
    FINAL_STATUSES,
    SUMMED,
    DouplusAccountDaily,
    DouplusOrder,
    DouyinAccount,
    zeros,
)
from tallyhub.douplus.service.accounts import AccountTokens, Credentials
from tallyhub.douplus.service.context import SyncContext
from tallyhub.douplus.service.state import record_success

log = structlog.get_logger(__name__)

Mode = Literal["full", "incremental"]
FILTER_CHUNK = 100  # order ids per filtered list call
CHANGING = ("status", "budget", "title", "item_id", "task_id")


@dataclass
class OrdersOutcome:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    requests: int = 0

    def counts(self) -> dict[str, int]:
        return dict(vars(self))


async def sync_orders(ctx: SyncContext, account_id: int, mode: Mode) -> OrdersOutcome:
    tokens = ctx.tokens(account_id)
    credentials = await tokens.current()
    before = ctx.client.requests_made
    now = ctx.clock()
    if mode == "full":
        since = now - timedelta(days=ctx.settings.sync_full_days)
        found = await _walk_oldest_first(ctx, tokens, credentials, since)
    else:
        since = now - timedelta(days=ctx.settings.sync_incremental_days)
        found = await _walk_newest_first(ctx, tokens, credentials, since)
        unfinished = await _unfinished(ctx, account_id, exclude=found)
        found.update(await _by_ids(ctx, tokens, credentials, unfinished))
    outcome = OrdersOutcome(fetched=len(found))

    async def store(session: AsyncSession) -> None:
        outcome.inserted, outcome.updated = await _store(ctx, session, account_id, found, now)
        await record_success(session, account_id, f"orders_{mode}", now, count=len(found))

    await ctx.db.run(store)
    outcome.requests = ctx.client.requests_made - before
    return outcome


def _walk_what(credentials: Credentials, what: str) -> str:
    return f"DOU+ account {credentials.account_id} {what}"


async def _walk_oldest_first(
    ctx: SyncContext, tokens: AccountTokens, credentials: Credentials, since: datetime
) -> dict[str, Order]:
    async def fetch(page: int) -> PageResult[Order]:
        return await tokens.call(
            lambda c: ctx.client.list_orders(
                c.access_token,
                c.aweme_sec_uid,
                page=page,
                page_size=ctx.settings.page_size,
                ascending=True,
            )
        )

    found: dict[str, Order] = {}
    async for result in paginate(
        fetch,
        max_pages=ctx.settings.upstream.max_pages,
        concurrency=ctx.settings.upstream.page_concurrency,
        what=_walk_what(credentials, "orders"),
    ):
        found.update((o.order_id, o) for o in result.items if o.created_at >= since)
    return found


async def _walk_newest_first(
    ctx: SyncContext, tokens: AccountTokens, credentials: Credentials, since: datetime
) -> dict[str, Order]:
    async def fetch(page: int) -> PageResult[Order]:
        return await tokens.call(
            lambda c: ctx.client.list_orders(
                c.access_token, c.aweme_sec_uid, page=page, page_size=ctx.settings.page_size
            )
        )

    found: dict[str, Order] = {}
    walk = paginate(
        fetch, max_pages=ctx.settings.upstream.max_pages, what=_walk_what(credentials, "orders")
    )
    async with aclosing(walk) as pages:
        async for result in pages:
            recent = [o for o in result.items if o.created_at >= since]
            found.update((o.order_id, o) for o in recent)
            if len(recent) < len(result.items):
                break  # newest first: the rest of the list is older than the window
    return found


async def _unfinished(ctx: SyncContext, account_id: int, exclude: dict[str, Order]) -> list[str]:
    async def read(session: AsyncSession) -> list[str]:
        rows = await session.scalars(
            select(DouplusOrder.order_id).where(
                DouplusOrder.account_id == account_id,
                DouplusOrder.status.not_in(sorted(FINAL_STATUSES)),
            )
        )
        return [order_id for order_id in rows if order_id not in exclude]

    return await ctx.db.run(read, readonly=True)


async def _by_ids(
    ctx: SyncContext, tokens: AccountTokens, credentials: Credentials, order_ids: Sequence[str]
) -> dict[str, Order]:
    """The current state of the given orders, asked for by id, 100 at a time."""
    found: dict[str, Order] = {}
    for start in range(0, len(order_ids), FILTER_CHUNK):
        chunk = order_ids[start : start + FILTER_CHUNK]

        async def fetch(page: int, chunk: Sequence[str] = chunk) -> PageResult[Order]:
            return await tokens.call(
                lambda c: ctx.client.list_orders(
                    c.access_token,
                    c.aweme_sec_uid,
                    page=page,
                    page_size=FILTER_CHUNK,
                    order_ids=chunk,
                )
            )

        async for result in paginate(
            fetch, max_pages=ctx.settings.upstream.max_pages, what=_walk_what(credentials, "status")
        ):
            found.update((o.order_id, o) for o in result.items)
    missing = len(order_ids) - len(found)
    if missing:
        log.warning("douplus.orders_not_listed", account_id=credentials.account_id, count=missing)
    return found


# ---------------------------------------------------------------- storing


async def _stored(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The stored account and changing fields of the given orders, locked, by order id."""
    stored: dict[str, tuple[Any, ...]] = {}
    ids = sorted(order_ids)
    # A table that grew fast since its plan was made (a first full sync) must not be
    # read with the plan of its empty days: a sequential scan per 512 ids.
    await custom_plans(await session.connection())
    for start in range(0, len(ids), 512):
        chunk = bucketed(ids[start : start + 512])
        rows = await session.execute(
            select(DouplusOrder.order_id, DouplusOrder.account_id, *_columns(CHANGING))
            .where(DouplusOrder.order_id.in_(chunk))
            .order_by(DouplusOrder.order_id)
            .with_for_update()
        )
        stored.update((row[0], tuple(row[1:])) for row in rows)
    return stored


def _columns(names: Sequence[str]) -> list[Any]:
    return [getattr(DouplusOrder, name) for name in names]


def _fields(order: Order) -> tuple[Any, ...]:
    return (order.status, order.budget, order.title, order.item_id, order.task_id)


async def _store(
    ctx: SyncContext,
    session: AsyncSession,
    account_id: int,
    found: dict[str, Order],
    now: datetime,
) -> tuple[int, int]:
    """Insert new orders and update changed ones; unchanged orders are not written."""
    stored = await _stored(session, list(found))
    new = [o for o in found.values() if o.order_id not in stored]
    changed = [
        o
        for o in found.values()
        if o.order_id in stored
        and stored[o.order_id][0] == account_id
        and stored[o.order_id][1:] != _fields(o)
    ]
    foreign = [
        o.order_id for o in found.values() if stored.get(o.order_id, (account_id,))[0] != account_id
    ]
    if foreign:
        log.warning("douplus.order_of_other_account", account_id=account_id, order_ids=foreign[:10])
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(DouplusOrder, [_new_row(ctx, account_id, o, now) for o in new]),
        RowSet(
            DouplusOrder,
            [_changed_row(o, now) for o in sorted(changed, key=lambda o: o.order_id)],
            keys=("order_id",),
            replace=(*CHANGING, "last_sync_time", "stats_settled"),
            increment=("sync_version",),
            update=True,
        ),
        RowSet(
            DouplusAccountDaily,
            _daily_counts(ctx, account_id, new),
            keys=("account_id", "create_date"),
            increment=("order_count", *SUMMED),
        ),
    )
    if new:
        count = select(func.count()).where(DouplusOrder.account_id == account_id).scalar_subquery()
        await session.execute(
            update(DouyinAccount).where(DouyinAccount.id == account_id).values(order_count=count)
        )
    return len(new), len(changed)


def _new_row(ctx: SyncContext, account_id: int, order: Order, now: datetime) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "account_id": account_id,
        "item_id": order.item_id,
        "task_id": order.task_id,
        "status": order.status,
        "budget": order.budget,
        "title": order.title,
        "order_create_time": order.created_at,
        "create_date": ctx.local_date(order.created_at),
        "sync_version": 1,
        "last_sync_time": now,
        "stats_settled": False,
        "agg_pending": False,
        "stat_time": None,
        **zeros(FIGURES),
    }


def _changed_row(order: Order, now: datetime) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "status": order.status,
        "budget": order.budget,
        "title": order.title,
        "item_id": order.item_id,
        "task_id": order.task_id,
        "last_sync_time": now,
        # A new status may mean new figures: read them again, even after a final one.
        "stats_settled": False,
        "sync_version": 1,
    }


def _daily_counts(ctx: SyncContext, account_id: int, new: Sequence[Order]) -> list[dict[str, Any]]:
    per_day: dict[Any, int] = {}
    for order in new:
        day = ctx.local_date(order.created_at)
        per_day[day] = per_day.get(day, 0) + 1
    return [
        {"account_id": account_id, "create_date": day, "order_count": n, **zeros(SUMMED)}
        for day, n in sorted(per_day.items())
    ]
