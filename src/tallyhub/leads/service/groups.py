"""Groups: the admin's reads and writes, their figures (stats, today, by day) and their
incoming log."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date, parse_reset_time
from tallyhub.core.errors import BadDayRange, NotFound
from tallyhub.core.pagination import PageParams
from tallyhub.leads import schemas
from tallyhub.leads.models import Group, GroupDailyStats, GroupStats, IncomingLog


def new_activation_code() -> str:
    return secrets.token_urlsafe(18)  # 24 url-safe characters


def group_today(group: Group, now: datetime | None = None) -> date:
    return business_date(now or utcnow(), group.timezone, parse_reset_time(group.reset_time))


async def create_group(
    session: AsyncSession, principal: Principal, data: schemas.GroupCreate, default_tz: str
) -> Group:
    owner_id = await principal.existing_owner_for(session, data.owner_id, "group")
    group = Group(
        activation_code=new_activation_code(),
        remark=data.remark,
        description=data.description,
        is_active=data.is_active,
        dedup_scope=data.dedup_scope,
        reset_time=data.reset_time,
        timezone=data.timezone or default_tz,
        account_limit=data.account_limit,
        owner_id=owner_id,
    )
    session.add(group)
    await session.flush()
    session.add(
        GroupStats(
            group_id=group.id,
            total_accounts=0,
            online_accounts=0,
            line_accounts=0,
            line_business_accounts=0,
            total_incoming=0,
            duplicate_incoming=0,
        )
    )
    await session.flush()
    return group


async def get_group(session: AsyncSession, principal: Principal, group_id: int) -> Group:
    """The live group if this principal may see it; otherwise 404 (never reveal it exists)."""
    group = await session.scalar(
        select(Group).where(
            Group.id == group_id, Group.deleted_at.is_(None), principal.visible(Group.owner_id)
        )
    )
    if group is None:
        raise NotFound(f"group {group_id} not found", code="group_not_found")
    return group


async def _today_by_group(session: AsyncSession, groups: Sequence[Group]) -> dict[int, int]:
    """Today's incoming for each group, where today is the group's own business date."""
    now = utcnow()
    wanted = {g.id: group_today(g, now) for g in groups}
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            GroupDailyStats.group_id, GroupDailyStats.business_date, GroupDailyStats.incoming
        ).where(
            GroupDailyStats.group_id.in_(wanted),
            GroupDailyStats.business_date.in_(set(wanted.values())),
        )
    )
    return {gid: n for gid, day, n in rows if wanted.get(gid) == day}


_STAT_FIELDS = (
    "total_accounts",
    "online_accounts",
    "line_accounts",
    "line_business_accounts",
    "total_incoming",
    "duplicate_incoming",
)
_GROUP_FIELDS = tuple(schemas.Group.model_fields)


def _with_stats(
    group: Group, stats: GroupStats | None, today_incoming: int, today: date
) -> schemas.GroupWithStats:
    fields: dict[str, Any] = {name: getattr(group, name) for name in _GROUP_FIELDS}
    fields.update({name: getattr(stats, name) if stats else 0 for name in _STAT_FIELDS})
    return schemas.GroupWithStats(**fields, today_incoming=today_incoming, business_date=today)


async def with_stats(
    session: AsyncSession, groups: Sequence[Group]
) -> list[schemas.GroupWithStats]:
    if not groups:
        return []
    stats = {
        row.group_id: row
        for row in await session.scalars(
            select(GroupStats).where(GroupStats.group_id.in_([g.id for g in groups]))
        )
    }
    return await _assemble(session, [(g, stats.get(g.id)) for g in groups])


async def _assemble(
    session: AsyncSession, rows: Sequence[tuple[Group, GroupStats | None]]
) -> list[schemas.GroupWithStats]:
    today = await _today_by_group(session, [group for group, _ in rows])
    now = utcnow()
    return [
        _with_stats(group, stats, today.get(group.id, 0), group_today(group, now))
        for group, stats in rows
    ]


async def list_groups(
    session: AsyncSession,
    principal: Principal,
    paging: PageParams,
    search: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[schemas.GroupWithStats], int]:
    """One page of groups with their stats rows, newest first, and the total. A search
    scans the groups anyway, so it counts in the same scan (a window count); the plain
    list counts separately, so its page stays an index scan that stops after one page."""
    filters: list[Any] = [Group.deleted_at.is_(None), principal.visible(Group.owner_id)]
    if search:
        needle = search.lower()
        filters.append(
            or_(
                func.lower(Group.remark).contains(needle, autoescape=True),
                func.lower(Group.description).contains(needle, autoescape=True),
                Group.activation_code == search,
            )
        )
    if is_active is not None:
        filters.append(Group.is_active.is_(is_active))
    columns: list[Any] = [Group, GroupStats]
    if search:
        columns.append(func.count().over().label("total"))
    rows = (
        await session.execute(
            select(*columns)
            .outerjoin(GroupStats, GroupStats.group_id == Group.id)
            .where(*filters)
            .order_by(Group.created_at.desc(), Group.id.desc())
            .offset(paging.offset)
            .limit(paging.page_size)
        )
    ).all()
    if search and rows:
        total = rows[0].total
    else:  # the plain list, or past the last page (no row carries the window count)
        total = await session.scalar(select(func.count()).select_from(Group).where(*filters))
    page = await _assemble(session, [(row.Group, row.GroupStats) for row in rows])
    return page, total or 0


async def update_group(
    session: AsyncSession, principal: Principal, group_id: int, data: schemas.GroupUpdate
) -> Group:
    group = await get_group(session, principal, group_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field != "account_limit":
            continue
        setattr(group, field, value)
    await session.flush()
    return group


async def delete_group(session: AsyncSession, principal: Principal, group_id: int) -> Group:
    group = await get_group(session, principal, group_id)
    group.deleted_at = utcnow()
    group.is_active = False
    await session.flush()
    return group


async def rotate_activation_code(
    session: AsyncSession, principal: Principal, group_id: int
) -> Group:
    group = await get_group(session, principal, group_id)
    group.activation_code = new_activation_code()
    await session.flush()
    return group


MAX_DAILY_DAYS = 3660


async def _first_day(session: AsyncSession, group: Group) -> date | None:
    first: date | None = await session.scalar(
        select(func.min(GroupDailyStats.business_date)).where(GroupDailyStats.group_id == group.id)
    )
    return first


async def day_range(
    session: AsyncSession, group: Group, start: date | None, end: date | None
) -> tuple[date, date]:
    """The range `daily` answers: `to` defaults to the group's today, `from` to its first
    day with leads (at most MAX_DAILY_DAYS before `to`); a range the caller gave that ends
    before it starts, or is longer than that, is refused naming the parameter."""
    end = end or group_today(group)
    if start is None:
        first = await _first_day(session, group)
        earliest = end - timedelta(days=MAX_DAILY_DAYS - 1)
        start = min(end, max(first or end, earliest))
    if start > end:
        raise BadDayRange(f"from: {start} is after to ({end})")
    if (end - start).days >= MAX_DAILY_DAYS:
        raise BadDayRange(
            f"from: {start}..{end} is {(end - start).days + 1} days; at most"
            f" {MAX_DAILY_DAYS} at once, ask for a later from"
        )
    return start, end


async def daily(
    session: AsyncSession, group: Group, start: date | None, end: date | None
) -> list[schemas.GroupDaily]:
    """One row per business day of the range (see `day_range`), in order, none left out:
    a day without leads is a row of zeros, so a chart's days line up."""
    start, end = await day_range(session, group, start, end)
    rows = {
        r.business_date: r
        for r in await session.scalars(
            select(GroupDailyStats).where(
                GroupDailyStats.group_id == group.id,
                GroupDailyStats.business_date >= start,
                GroupDailyStats.business_date <= end,
            )
        )
    }
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [
        schemas.GroupDaily(
            business_date=day,
            incoming=rows[day].incoming if day in rows else 0,
            duplicate_incoming=rows[day].duplicate_incoming if day in rows else 0,
        )
        for day in days
    ]


async def incoming_page(
    session: AsyncSession, group: Group, paging: PageParams
) -> tuple[list[IncomingLog], int]:
    total = (
        await session.scalar(
            select(GroupStats.total_incoming).where(GroupStats.group_id == group.id)
        )
        or 0
    )
    rows = await session.scalars(
        select(IncomingLog)
        .where(IncomingLog.group_id == group.id)
        .order_by(IncomingLog.id.desc())
        .offset(paging.offset)
        .limit(paging.page_size)
    )
    return list(rows), total
