"""Figures sync of one account: the order report over each live order's whole life gives
its cumulative figures now, stored as its row of the current 5-minute window.

Only orders whose figures can still move are asked for (not settled: not yet read in a
final state), 100 ids a call, the range from the oldest one's creation date to today
(≤ 180 days). An order whose figures moved gets its window row (insert, or overwrite
within the same window), its current figures on its `douplus_order` row and the
difference added to its account's day, all in one transaction with the sync state; the
current figures are re-read under lock there, so two overlapping syncs never add the same
difference twice. An order whose figures did not move is not written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.db import custom_plans
from tallyhub.core.upstream import PageResult, paginate
from tallyhub.douplus.client import OrderFigures
from tallyhub.douplus.models import (
    FIGURES,
    FINAL_STATUSES,
    SUMMED,
    DouplusAccountDaily,
    DouplusOrder,
    DouplusOrderStats,
)
from tallyhub.douplus.service.accounts import AccountTokens, Credentials
from tallyhub.douplus.service.context import SyncContext, window_of
from tallyhub.douplus.service.state import record_success

REPORT_CHUNK = 100
MAX_SPAN_DAYS = 180


@dataclass(frozen=True)
class Target:
    order_id: str
    create_date: date
    final: bool


@dataclass
class StatsOutcome:
    orders: int = 0
    moved: int = 0
    settled: int = 0
    requests: int = 0

    def counts(self) -> dict[str, int]:
        return dict(vars(self))


async def sync_stats(ctx: SyncContext, account_id: int) -> StatsOutcome:
    now = ctx.clock()
    window = window_of(now)
    targets = await _targets(ctx, account_id)
    tokens = ctx.tokens(account_id)
    before = ctx.client.requests_made
    figures: dict[str, OrderFigures] = {}
    if targets:
        credentials = await tokens.current()
        figures = await _read_figures(ctx, tokens, credentials, targets, ctx.local_date(now))
    outcome = StatsOutcome(orders=len(targets))

    async def store(session: AsyncSession) -> None:
        outcome.moved, outcome.settled = await _store(
            session, account_id, targets, figures, window, now
        )
        await record_success(session, account_id, "stats", now, count=outcome.moved, window=window)

    await ctx.db.run(store)
    outcome.requests = ctx.client.requests_made - before
    return outcome


async def _targets(ctx: SyncContext, account_id: int) -> list[Target]:
    async def read(session: AsyncSession) -> list[Target]:
        rows = await session.execute(
            select(DouplusOrder.order_id, DouplusOrder.create_date, DouplusOrder.status)
            .where(DouplusOrder.account_id == account_id, DouplusOrder.stats_settled.is_(False))
            .order_by(DouplusOrder.create_date, DouplusOrder.order_id)
        )
        return [Target(r.order_id, r.create_date, r.status in FINAL_STATUSES) for r in rows]

    return await ctx.db.run(read, readonly=True)


async def _read_figures(
    ctx: SyncContext,
    tokens: AccountTokens,
    credentials: Credentials,
    targets: Sequence[Target],
    today: date,
) -> dict[str, OrderFigures]:
    figures: dict[str, OrderFigures] = {}
    oldest_allowed = today - timedelta(days=MAX_SPAN_DAYS - 1)
    for start in range(0, len(targets), REPORT_CHUNK):
        chunk = targets[start : start + REPORT_CHUNK]
        begin = max(min(t.create_date for t in chunk), oldest_allowed)
        ids = [t.order_id for t in chunk]

        async def fetch(page: int, ids: list[str] = ids, begin: date = begin) -> PageResult[Any]:
            return await tokens.call(
                lambda c: ctx.client.order_report(
                    c.access_token,
                    c.aweme_sec_uid,
                    begin=begin,
                    end=today,
                    order_ids=ids,
                    page=page,
                    page_size=REPORT_CHUNK,
                )
            )

        async for result in paginate(
            fetch,
            max_pages=ctx.settings.upstream.max_pages,
            what=f"DOU+ account {credentials.account_id} report",
        ):
            figures.update((f.order_id, f) for f in result.items if f.order_id in set(ids))
    return figures


# ---------------------------------------------------------------- storing


def _values(f: OrderFigures) -> tuple[Any, ...]:
    return tuple(getattr(f, name) for name in FIGURES)


async def _current(session: AsyncSession, order_ids: list[str]) -> dict[str, Any]:
    """The stored current figures (and what a window row needs) of these orders, locked."""
    current: dict[str, Any] = {}
    await custom_plans(await session.connection())  # see orders._stored
    for start in range(0, len(order_ids), 512):
        chunk = bucketed(order_ids[start : start + 512])
        rows = await session.execute(
            select(
                DouplusOrder.order_id,
                DouplusOrder.item_id,
                DouplusOrder.create_date,
                *(getattr(DouplusOrder, name) for name in FIGURES),
            )
            .where(DouplusOrder.order_id.in_(chunk))
            .order_by(DouplusOrder.order_id)
            .with_for_update()
        )
        current.update((row.order_id, row) for row in rows)
    return current


async def _store(
    session: AsyncSession,
    account_id: int,
    targets: Sequence[Target],
    figures: dict[str, OrderFigures],
    window: datetime,
    now: datetime,
) -> tuple[int, int]:
    current = await _current(session, sorted(figures))
    moved = [
        f
        for order_id, f in sorted(figures.items())
        if order_id in current and tuple(current[order_id][3:]) != _values(f)
    ]
    settled = [t.order_id for t in targets if t.final and t.order_id in figures]
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(
            DouplusOrderStats,
            [_window_row(f, current[f.order_id], account_id, window) for f in moved],
            keys=("order_id", "stat_time"),
            replace=FIGURES,
        ),
        RowSet(
            DouplusOrder,
            [_current_row(f, window, f.order_id in settled) for f in moved],
            keys=("order_id",),
            replace=(*FIGURES, "stat_time", "agg_pending", "stats_settled"),
            update=True,
        ),
        RowSet(
            DouplusOrder,
            [{"order_id": o, "stats_settled": True} for o in settled if _unmoved(o, moved)],
            keys=("order_id",),
            replace=("stats_settled",),
            update=True,
        ),
        RowSet(
            DouplusAccountDaily,
            _day_differences(account_id, moved, current),
            keys=("account_id", "create_date"),
            increment=("order_count", *SUMMED),
        ),
    )
    return len(moved), len(settled)


def _unmoved(order_id: str, moved: Sequence[OrderFigures]) -> bool:
    return all(f.order_id != order_id for f in moved)


def _window_row(f: OrderFigures, stored: Any, account_id: int, window: datetime) -> dict[str, Any]:
    return {
        "order_id": f.order_id,
        "item_id": stored.item_id,
        "account_id": account_id,
        "stat_time": window,
        **{name: getattr(f, name) for name in FIGURES},
    }


def _current_row(f: OrderFigures, window: datetime, settled: bool) -> dict[str, Any]:
    return {
        "order_id": f.order_id,
        **{name: getattr(f, name) for name in FIGURES},
        "stat_time": window,
        "agg_pending": True,
        "stats_settled": settled,
    }


def _day_differences(
    account_id: int, moved: Sequence[OrderFigures], current: dict[str, Any]
) -> list[dict[str, Any]]:
    per_day: dict[date, dict[str, Any]] = {}
    for f in moved:
        stored = current[f.order_id]
        day = per_day.setdefault(
            stored.create_date,
            {"account_id": account_id, "create_date": stored.create_date, "order_count": 0}
            | {name: 0 for name in SUMMED},
        )
        for name in SUMMED:
            day[name] += getattr(f, name) - getattr(stored, name)
    return [per_day[d] for d in sorted(per_day)]
