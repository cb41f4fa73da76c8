"""The leads figures the overview shows: today's incoming across the groups a user may see
(each by its own business day), yesterday's up to the same moment, today's duplicates and
the accounts online."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import day_start, parse_reset_time
from tallyhub.leads import schemas
from tallyhub.leads.models import Group, GroupDailyStats, GroupStats, IncomingLog
from tallyhub.leads.service.groups import group_today


async def summary(session: AsyncSession, principal: Principal) -> schemas.LeadsSummary:
    groups = list(
        await session.scalars(
            select(Group).where(Group.deleted_at.is_(None), principal.visible(Group.owner_id))
        )
    )
    ids = [g.id for g in groups]
    accounts = (
        await session.execute(
            select(
                func.coalesce(func.sum(GroupStats.total_accounts), 0),
                func.coalesce(func.sum(GroupStats.online_accounts), 0),
            ).where(GroupStats.group_id.in_(ids))
        )
    ).one()
    now = utcnow()
    today = {g.id: group_today(g, now) for g in groups}
    incoming, duplicates = 0, 0
    for group_id, day, n, dup in await session.execute(
        select(
            GroupDailyStats.group_id,
            GroupDailyStats.business_date,
            GroupDailyStats.incoming,
            GroupDailyStats.duplicate_incoming,
        )
        .where(GroupDailyStats.group_id.in_(ids))
        .where(GroupDailyStats.business_date.in_(set(today.values())))
    ):
        if today[group_id] == day:
            incoming, duplicates = incoming + n, duplicates + dup
    yesterday = sum([await _yesterday_until_now(session, g, now) for g in groups])
    return schemas.LeadsSummary(
        groups=len(groups),
        today_incoming=incoming,
        yesterday_same_time=yesterday,
        today_duplicates=duplicates,
        total_accounts=int(accounts[0]),
        online_accounts=int(accounts[1]),
    )


async def _yesterday_until_now(session: AsyncSession, group: Group, now: datetime) -> int:
    """Leads of the group's previous business day that arrived no later into that day than
    `now` is into today."""
    reset = parse_reset_time(group.reset_time)
    today = group_today(group, now)
    yesterday = today - timedelta(days=1)
    elapsed = now - day_start(today, group.timezone, reset)
    until = day_start(yesterday, group.timezone, reset) + elapsed
    count = await session.scalar(
        select(func.count())
        .select_from(IncomingLog)
        .where(
            IncomingLog.group_id == group.id,
            IncomingLog.business_date == yesterday,
            IncomingLog.incoming_time <= until,
        )
    )
    return count or 0
