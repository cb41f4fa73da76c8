"""The read side: every figure comes from a row kept for it. An order shows its own
current figures (never its video's sum, the seed's "常见错误"); the video ranking reads
each video's latest rollup row; an account's period reads its day rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role
from tallyhub.core.daywindow import zone
from tallyhub.core.errors import NotFound
from tallyhub.core.pagination import Page, PageParams, page_of, paginate
from tallyhub.douplus import schemas
from tallyhub.douplus.models import (
    SUMMED,
    DouplusAccountDaily,
    DouplusOrder,
    DouplusOrderStats,
    DouplusSyncState,
    DouplusVideoStatsAgg,
    DouyinAccount,
)
from tallyhub.douplus.service.accounts import get_account

PERIOD_DAYS = {"today": 1, "7d": 7, "30d": 30}
ORDER_SORTS: dict[str, tuple[Any, ...]] = {
    "-order_create_time": (DouplusOrder.order_create_time.desc(), DouplusOrder.id.desc()),
    "order_create_time": (DouplusOrder.order_create_time, DouplusOrder.id),
    "-stat_cost": (DouplusOrder.stat_cost.desc(), DouplusOrder.id.desc()),
    "-total_play": (DouplusOrder.total_play.desc(), DouplusOrder.id.desc()),
    "-custom_like": (DouplusOrder.custom_like.desc(), DouplusOrder.id.desc()),
}


def _visible_accounts(principal: Principal) -> Select[tuple[int]]:
    return select(DouyinAccount.id).where(principal.visible(DouyinAccount.owner_id))


# ---------------------------------------------------------------- accounts


async def _streams(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[Any]]:
    by_account: dict[int, list[Any]] = {i: [] for i in ids}
    if ids:
        rows = await session.scalars(
            select(DouplusSyncState)
            .where(DouplusSyncState.account_id.in_(list(ids)))
            .order_by(DouplusSyncState.account_id, DouplusSyncState.stream)
        )
        for row in rows:
            by_account[row.account_id].append(schemas.StreamState.model_validate(row))
    return by_account


def _account_out(account: DouyinAccount, streams: list[Any]) -> schemas.Account:
    return schemas.Account(
        id=account.id,
        aweme_sec_uid=account.aweme_sec_uid,
        nickname=account.nickname,
        status=account.status,
        status_reason=account.status_reason,
        owner_id=account.owner_id,
        order_count=account.order_count,
        expires_at=account.expires_at,
        sync_requested=account.sync_requested,
        created_at=account.created_at,
        streams=streams,
    )


async def account_out(session: AsyncSession, account: DouyinAccount) -> schemas.Account:
    return _account_out(account, (await _streams(session, [account.id]))[account.id])


async def list_accounts(
    session: AsyncSession, principal: Principal, params: PageParams
) -> Page[schemas.Account]:
    query = (
        select(DouyinAccount)
        .where(principal.visible(DouyinAccount.owner_id))
        # Accounts that need their owner first: they stop syncing until connected again.
        .order_by((DouyinAccount.status == "active"), DouyinAccount.id)
    )
    accounts, total = await paginate(session, query, params)
    streams = await _streams(session, [a.id for a in accounts])
    return page_of([_account_out(a, streams[a.id]) for a in accounts], total, params)


# ---------------------------------------------------------------- orders


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    account_id: int | None,
    status: str | None,
    item_id: str | None,
    sort: str,
) -> Page[schemas.Order]:
    filters: list[ColumnElement[bool]] = []
    if principal.role == Role.operator:  # the others see every account: no semi-join
        filters.append(DouplusOrder.account_id.in_(_visible_accounts(principal)))
    if account_id is not None:
        filters.append(DouplusOrder.account_id == account_id)
    if status is not None:
        filters.append(DouplusOrder.status == status)
    if item_id is not None:
        filters.append(DouplusOrder.item_id == item_id)
    query = select(DouplusOrder).where(*filters).order_by(*ORDER_SORTS[sort])
    orders, total = await paginate(session, query, params, key=DouplusOrder.id)
    return page_of(
        [schemas.Order.model_validate(o, from_attributes=True) for o in orders], total, params
    )


async def order_detail(
    session: AsyncSession, principal: Principal, order_id: str
) -> schemas.OrderDetail:
    order = await session.scalar(
        select(DouplusOrder).where(
            DouplusOrder.order_id == order_id,
            DouplusOrder.account_id.in_(_visible_accounts(principal)),
        )
    )
    if order is None:
        raise NotFound(f"no DOU+ order {order_id}")
    windows = await session.scalars(
        select(DouplusOrderStats)
        .where(DouplusOrderStats.order_id == order_id)
        .order_by(DouplusOrderStats.stat_time)
    )
    base = schemas.Order.model_validate(order, from_attributes=True).model_dump()
    return schemas.OrderDetail(
        **base, windows=[schemas.Window.model_validate(w, from_attributes=True) for w in windows]
    )


# ---------------------------------------------------------------- videos


async def list_videos(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    account_id: int | None,
    sort: str,
) -> Page[schemas.Video]:
    column = getattr(DouplusVideoStatsAgg, sort)
    query = (
        select(DouplusVideoStatsAgg)
        .where(
            DouplusVideoStatsAgg.is_latest.is_(True),
            DouplusVideoStatsAgg.account_id.in_(_visible_accounts(principal)),
            *([DouplusVideoStatsAgg.account_id == account_id] if account_id is not None else []),
        )
        .order_by(column.desc(), DouplusVideoStatsAgg.item_id)
    )
    rows, total = await paginate(session, query, params)
    return page_of([schemas.Video.model_validate(r) for r in rows], total, params)


async def video_windows(
    session: AsyncSession, principal: Principal, item_id: str
) -> list[schemas.VideoWindow]:
    rows = list(
        await session.scalars(
            select(DouplusVideoStatsAgg)
            .where(
                DouplusVideoStatsAgg.item_id == item_id,
                DouplusVideoStatsAgg.account_id.in_(_visible_accounts(principal)),
            )
            .order_by(DouplusVideoStatsAgg.stat_time)
        )
    )
    if not rows:
        raise NotFound(f"no DOU+ video {item_id}")
    return [schemas.VideoWindow.model_validate(r) for r in rows]


# ---------------------------------------------------------------- account figures


def period_start(period: str, today: date) -> date | None:
    days = PERIOD_DAYS.get(period)
    return None if days is None else today - timedelta(days=days - 1)


async def _day_sums(
    session: AsyncSession, accounts: Select[tuple[int]] | list[int], start: date | None
) -> Any:
    query = select(
        func.coalesce(func.sum(DouplusAccountDaily.order_count), 0),
        *(func.coalesce(func.sum(getattr(DouplusAccountDaily, n)), 0) for n in SUMMED),
    ).where(DouplusAccountDaily.account_id.in_(accounts))
    if start is not None:
        query = query.where(DouplusAccountDaily.create_date >= start)
    return (await session.execute(query)).one()


async def account_stats(
    session: AsyncSession,
    principal: Principal,
    account_id: int,
    period: str,
    tz: str,
    now: datetime,
) -> schemas.AccountStats:
    account = await get_account(session, principal, account_id)
    today = now.astimezone(zone(tz)).date()
    start = period_start(period, today)
    sums = await _day_sums(session, [account.id], start)
    figures = dict(zip(SUMMED, sums[1:], strict=True))
    figures["stat_cost"] = Decimal(str(figures["stat_cost"])).quantize(Decimal("0.01"))
    return schemas.AccountStats(
        account_id=account.id,
        period=period,
        start=start,
        end=today,
        order_count=int(sums[0]),
        **{k: v if k == "stat_cost" else int(v) for k, v in figures.items()},
    )


async def summary(
    session: AsyncSession, principal: Principal, tz: str, now: datetime
) -> schemas.Summary:
    visible = principal.visible(DouyinAccount.owner_id)
    counts = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(case((DouyinAccount.status == "needs_reauth", 1), else_=0)), 0
                ),
            ).where(visible)
        )
    ).one()
    today = now.astimezone(zone(tz)).date()
    sums = await _day_sums(session, _visible_accounts(principal), today)
    last = await session.scalar(
        select(func.max(DouplusSyncState.last_success_at)).where(
            DouplusSyncState.account_id.in_(_visible_accounts(principal)),
            DouplusSyncState.stream == "stats",
        )
    )
    return schemas.Summary(
        accounts=int(counts[0]),
        needs_reauth=int(counts[1]),
        orders_today=int(sums[0]),
        cost_today=Decimal(str(sums[1])).quantize(Decimal("0.01")),
        plays_today=int(sums[2]),
        last_sync_at=last,
    )
