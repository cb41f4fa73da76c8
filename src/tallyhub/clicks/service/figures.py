"""The campaign figures the dashboard shows: clicks by day as a complete range, today's
clicks and unique users (each campaign by its own time zone; its days start at midnight),
what the clicks of a range were made of (tags, sources, interaction types), and the
range's breakdown rows by device, OS, browser, referrer or bot."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import schemas
from tallyhub.clicks.models import (
    Campaign,
    CampaignDailyStats,
    ClickSummary,
    InteractionLog,
)
from tallyhub.clicks.service.breakdowns import dimension_sums
from tallyhub.clicks.service.tracking import normalize_tags
from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date, day_start
from tallyhub.core.errors import BadDayRange

MAX_DAYS = 3660
TOP = 10
IN_CHUNK = 500  # campaign ids per IN (...) list
MIDNIGHT = time(0, 0)


def campaign_today(campaign: Campaign) -> date:
    return business_date(utcnow(), campaign.timezone, MIDNIGHT)


async def today_clicks(session: AsyncSession, campaigns: Sequence[Campaign]) -> dict[int, int]:
    """Today's clicks of each campaign, by its own time zone."""
    today = {c.id: campaign_today(c) for c in campaigns}
    if not today:
        return {}
    rows = await session.execute(
        select(
            CampaignDailyStats.campaign_id,
            CampaignDailyStats.business_date,
            CampaignDailyStats.clicks,
        ).where(
            CampaignDailyStats.campaign_id.in_(today),
            CampaignDailyStats.business_date.in_(set(today.values())),
        )
    )
    return {cid: n for cid, day, n in rows if today[cid] == day}


def with_today(campaign: Campaign, today: dict[int, int]) -> schemas.CampaignWithToday:
    out = schemas.Campaign.model_validate(campaign).model_dump()
    return schemas.CampaignWithToday(
        **out, today_clicks=today.get(campaign.id, 0), business_date=campaign_today(campaign)
    )


async def summary(session: AsyncSession, principal: Principal) -> schemas.ClicksSummary:
    campaigns = list(
        await session.scalars(select(Campaign).where(principal.visible(Campaign.owner_id)))
    )
    today = await today_clicks(session, campaigns)
    return schemas.ClicksSummary(
        campaigns=len(campaigns),
        today_clicks=sum(today.values()),
        today_unique_users=await _unique_users_today(session, campaigns),
        total_clicks=sum(c.clicked_count for c in campaigns),
    )


async def _unique_users_today(session: AsyncSession, campaigns: Sequence[Campaign]) -> int:
    """Distinct LINE users with a click today in any of these campaigns: a user's summary
    row of a campaign holds their latest click there, so they clicked today exactly when
    it falls on or after the campaign's today began. One query per time zone (and per
    `IN_CHUNK` campaigns); a user met in several campaigns counts once."""
    by_zone: dict[str, list[int]] = defaultdict(list)
    for campaign in campaigns:
        by_zone[campaign.timezone].append(campaign.id)
    users: set[str] = set()
    now = utcnow()
    for tz, ids in by_zone.items():
        start = day_start(business_date(now, tz, MIDNIGHT), tz, MIDNIGHT)
        for n in range(0, len(ids), IN_CHUNK):
            users.update(
                await session.scalars(
                    select(ClickSummary.line_id)
                    .distinct()
                    .where(
                        ClickSummary.campaign_id.in_(ids[n : n + IN_CHUNK]),
                        ClickSummary.last_clicked_at >= start,
                    )
                )
            )
    return len(users)


def _days(start: date, end: date) -> list[date]:
    """Every day of `start`..`end`; a backwards or over-long range is refused by name."""
    if start > end:
        raise BadDayRange(f"from ({start}) is after to ({end})")
    if (end - start).days >= MAX_DAYS:
        raise BadDayRange(
            f"from..to spans {(end - start).days + 1} days; at most {MAX_DAYS} days at once"
        )
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


async def daily(
    session: AsyncSession, campaign: Campaign, start: date | None, end: date | None
) -> list[schemas.CampaignDaily]:
    """One row per day from `start` (default: the first day with clicks) to `end`
    (default: the campaign's today), days without clicks as zeros."""
    end = end or campaign_today(campaign)
    result = await session.execute(
        select(CampaignDailyStats.business_date, CampaignDailyStats.clicks).where(
            CampaignDailyStats.campaign_id == campaign.id,
            CampaignDailyStats.business_date <= end,
            *([CampaignDailyStats.business_date >= start] if start else []),
        )
    )
    rows = {day: clicks for day, clicks in result}
    days = _days(start or min(rows, default=end), end)
    return [schemas.CampaignDaily(business_date=d, clicks=rows.get(d, 0)) for d in days]


async def breakdown(
    session: AsyncSession, campaign: Campaign, start: date | None, end: date | None
) -> schemas.Breakdown:
    """Counts by tag, by source campaign and by interaction type, over the range's log of
    clicks that count (`to` defaults to the campaign's today, `from` to `to`)."""
    end = end or campaign_today(campaign)
    days = _days(start or end, end)
    where = (
        InteractionLog.campaign_id == campaign.id,
        InteractionLog.business_date >= days[0],
        InteractionLog.business_date <= days[-1],
        InteractionLog.counted.is_(True),
    )
    clicks = await session.scalar(select(func.count()).where(*where)) or 0
    tags: Counter[str] = Counter()
    for text, n in await session.execute(
        select(InteractionLog.tags, func.count()).where(*where).group_by(InteractionLog.tags)
    ):
        tags.update({tag: n for tag in normalize_tags(text)})
    sources = await _grouped(session, InteractionLog.source_campaign_id, where)
    types = await _grouped(session, InteractionLog.interaction_type, where)
    return schemas.Breakdown(
        start=days[0],
        end=days[-1],
        clicks=clicks,
        tags=_top(tags.items()),
        sources=_top((str(k), n) for k, n in sources),
        interaction_types=_top((str(k), n) for k, n in types),
    )


async def dimension_breakdown(
    session: AsyncSession,
    campaign: Campaign,
    dimension: schemas.Dimension,
    start: date | None,
    end: date | None,
) -> schemas.DimensionBreakdown:
    """A range's breakdown rows summed by one dimension: the values' sums, largest first,
    and each day's sum (a complete range, days without rows as 0). `to` defaults to the
    campaign's today, `from` to `to`."""
    end = end or campaign_today(campaign)
    days = _days(start or end, end)
    values, per_day = await dimension_sums(session, campaign.id, dimension, days[0], days[-1])
    return schemas.DimensionBreakdown(
        dimension=dimension,
        start=days[0],
        end=days[-1],
        clicks=sum(per_day.values()),
        values=_top(values.items()),
        days=[schemas.CampaignDaily(business_date=d, clicks=per_day.get(d, 0)) for d in days],
    )


async def _grouped(
    session: AsyncSession, column: object, where: tuple[object, ...]
) -> list[tuple[object, int]]:
    rows = await session.execute(select(column, func.count()).where(*where).group_by(column))  # type: ignore[call-overload]
    return [(key, int(n)) for key, n in rows]


def _top(counts: Iterable[tuple[str, int]]) -> schemas.TopList:
    ranked = sorted(counts, key=lambda kv: (-kv[1], kv[0]))
    items = [schemas.Count(key=k, count=n) for k, n in ranked[:TOP]]
    return schemas.TopList(
        items=items, others=sum(n for _, n in ranked[TOP:]), distinct=len(ranked)
    )
