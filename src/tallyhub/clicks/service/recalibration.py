"""Recalibration (校准) of the clicks domain: recompute every campaign counter, daily row,
breakdown row, summary and tag set from the interaction logs, correct what drifted, record
each drift. The people's figures come from the logs of clicks that count; `bot_clicks`
and the `bot` breakdown rows from the others (bots' clicks kept out of the counts).

No statement grows with the number of summaries: what is read is read by campaign (a
chunk's ids), and what is written by key goes in bounded slices (`in_slices`).

Safe while clicks are recorded: for each chunk of campaigns the summaries, the campaign
rows, the daily rows and the breakdown rows (their deltas folded into them first) are
locked first, in the order a click batch takes them, and only then are the logs counted.
A batch either committed before the lock (its logs are counted) or waits for it (neither
its logs nor its counter moves are seen).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks.models import (
    Campaign,
    CampaignDailyStats,
    CampaignUser,
    ClickSummary,
    ClickSummaryTag,
    InteractionLog,
)
from tallyhub.clicks.service.breakdowns import count_breakdowns, fix_breakdowns, lock_breakdowns
from tallyhub.clicks.service.summaries import (
    SummaryKey,
    in_slices,
    rebuild_tag_strings,
    tag_rows_of_campaigns,
)
from tallyhub.clicks.service.tracking import normalize_tags
from tallyhub.core.columns import utcnow
from tallyhub.core.db import Database
from tallyhub.core.recalibration import ChunkResult, RecalibrationRun, drift, recalibrate_in_chunks


async def recalibrate(db: Database, chunk_size: int = 20) -> RecalibrationRun:
    async with db.transaction(readonly=True) as session:
        campaign_ids = list(await session.scalars(select(Campaign.id).order_by(Campaign.id)))
    return await recalibrate_in_chunks(db, "clicks", campaign_ids, chunk_size, _recalibrate_chunk)


async def _recalibrate_chunk(session: AsyncSession, campaign_ids: Sequence[int]) -> ChunkResult:
    drifts: list[dict[str, Any]] = []
    # Lock first, in the order click batches lock: summaries, campaigns, daily rows,
    # breakdown rows.
    stored_summaries = await _lock_summaries(session, campaign_ids)
    campaigns = await _lock_campaigns(session, campaign_ids)
    stored_days = await _lock_days(session, campaign_ids)
    stored_breakdowns = await lock_breakdowns(session, campaign_ids)
    # Then count the logs.
    per_campaign = await _count_campaign_clicks(session, campaign_ids)
    per_day = await _count_daily_clicks(session, campaign_ids)
    per_breakdown = await count_breakdowns(session, campaign_ids)
    per_summary = await _count_summary_clicks(session, campaign_ids)
    actual_tags = await _first_seen_tags(session, campaign_ids)
    first_users = await _first_clicks_of_users(session, campaign_ids)

    await _fix_campaigns(session, campaigns, per_campaign, drifts)
    await _fix_days(session, stored_days, per_day, drifts)
    await fix_breakdowns(session, stored_breakdowns, per_breakdown, drifts)
    await _fix_summaries(session, stored_summaries, per_summary, drifts)
    await _fix_tags(session, campaign_ids, stored_summaries, per_summary, actual_tags, drifts)
    await _fix_campaign_users(session, campaign_ids, first_users, drifts)
    return {"campaigns": len(campaign_ids), "summaries": len(stored_summaries)}, drifts


# ---------------------------------------------------------------- the locks, in batch order


async def _lock_summaries(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[SummaryKey, ClickSummary]:
    return {
        (s.campaign_id, s.line_id, s.source_campaign_id): s
        for s in await session.scalars(
            select(ClickSummary)
            .where(ClickSummary.campaign_id.in_(campaign_ids))
            .order_by(
                ClickSummary.campaign_id, ClickSummary.line_id, ClickSummary.source_campaign_id
            )
            .with_for_update()
        )
    }


async def _lock_campaigns(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[int, Campaign]:
    return {
        c.id: c
        for c in await session.scalars(
            select(Campaign)
            .where(Campaign.id.in_(campaign_ids))
            .order_by(Campaign.id)
            .with_for_update()
        )
    }


async def _lock_days(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[tuple[int, date], CampaignDailyStats]:
    return {
        (r.campaign_id, r.business_date): r
        for r in await session.scalars(
            select(CampaignDailyStats)
            .where(CampaignDailyStats.campaign_id.in_(campaign_ids))
            .order_by(CampaignDailyStats.campaign_id, CampaignDailyStats.business_date)
            .with_for_update()
        )
    }


# ---------------------------------------------------------------- what the logs say


async def _count_campaign_clicks(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[int, tuple[int, int, int]]:
    """Clicks that count, their distinct users, and bots' clicks kept out, per campaign."""
    figures: dict[int, tuple[int, int, int]] = {}
    for cid, counted, n, users in await session.execute(
        select(
            InteractionLog.campaign_id,
            InteractionLog.counted,
            func.count(),
            func.count(func.distinct(InteractionLog.line_id)),
        )
        .where(InteractionLog.campaign_id.in_(campaign_ids))
        .group_by(InteractionLog.campaign_id, InteractionLog.counted)
    ):
        clicks, people, bots = figures.get(cid, (0, 0, 0))
        if counted:
            figures[cid] = (int(n), int(users), bots)
        else:
            figures[cid] = (clicks, people, int(n))
    return figures


async def _count_daily_clicks(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[tuple[int, date], int]:
    return {
        (cid, day): int(n)
        for cid, day, n in await session.execute(
            select(InteractionLog.campaign_id, InteractionLog.business_date, func.count())
            .where(InteractionLog.campaign_id.in_(campaign_ids), InteractionLog.counted.is_(True))
            .group_by(InteractionLog.campaign_id, InteractionLog.business_date)
        )
    }


def _with_user(campaign_ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """The chunk's clicks that count and carry a user."""
    return [
        InteractionLog.campaign_id.in_(campaign_ids),
        InteractionLog.line_id.is_not(None),
        InteractionLog.counted.is_(True),
    ]


async def _count_summary_clicks(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[SummaryKey, tuple[int, datetime]]:
    """Clicks and the last click's time per summary."""
    return {
        (cid, uid, src): (int(n), last)
        for cid, uid, src, n, last in await session.execute(
            select(
                InteractionLog.campaign_id,
                InteractionLog.line_id,
                InteractionLog.source_campaign_id,
                func.count(),
                func.max(InteractionLog.triggered_at),
            )
            .where(*_with_user(campaign_ids))
            .group_by(
                InteractionLog.campaign_id,
                InteractionLog.line_id,
                InteractionLog.source_campaign_id,
            )
        )
    }


async def _first_seen_tags(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[SummaryKey, dict[str, tuple[datetime, int]]]:
    """Each summary's tags in the logs, each with when it was first seen and its position
    among that click's tags."""
    actual_tags: dict[SummaryKey, dict[str, tuple[datetime, int]]] = defaultdict(dict)
    for cid, uid, src, tag_string, first in await session.execute(
        select(
            InteractionLog.campaign_id,
            InteractionLog.line_id,
            InteractionLog.source_campaign_id,
            InteractionLog.tags,
            func.min(InteractionLog.triggered_at),
        )
        .where(*_with_user(campaign_ids), InteractionLog.tags != "")
        .group_by(
            InteractionLog.campaign_id,
            InteractionLog.line_id,
            InteractionLog.source_campaign_id,
            InteractionLog.tags,
        )
    ):
        seen = actual_tags[cid, uid, src]
        for position, tag in enumerate(normalize_tags(tag_string)):
            if tag not in seen or (first, position) < seen[tag]:
                seen[tag] = (first, position)
    return actual_tags


async def _first_clicks_of_users(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[tuple[int, str], tuple[str, datetime]]:
    """Per (campaign, user): the least event id and the first click's time."""
    return {
        (cid, uid): (event_id, first)
        for cid, uid, event_id, first in await session.execute(
            select(
                InteractionLog.campaign_id,
                InteractionLog.line_id,
                func.min(InteractionLog.event_id),
                func.min(InteractionLog.triggered_at),
            )
            .where(*_with_user(campaign_ids))
            .group_by(InteractionLog.campaign_id, InteractionLog.line_id)
        )
    }


# ---------------------------------------------------------------- the corrections


async def _fix_campaigns(
    session: AsyncSession,
    campaigns: dict[int, Campaign],
    actual: dict[int, tuple[int, int, int]],
    drifts: list[dict[str, Any]],
) -> None:
    for cid, campaign in sorted(campaigns.items()):
        clicks, users, bots = actual.get(cid, (0, 0, 0))
        fixes: dict[str, int] = {}
        for field, value in (
            ("clicked_count", clicks),
            ("unique_users", users),
            ("bot_clicks", bots),
        ):
            if getattr(campaign, field) != value:
                drifts.append(drift("campaign", cid, field, getattr(campaign, field), value))
                fixes[field] = value
        if fixes:
            await session.execute(update(Campaign).where(Campaign.id == cid).values(fixes))


async def _fix_days(
    session: AsyncSession,
    stored: dict[tuple[int, date], CampaignDailyStats],
    actual: dict[tuple[int, date], int],
    drifts: list[dict[str, Any]],
) -> None:
    missing = []
    for key in sorted(set(stored) | set(actual)):
        value = actual.get(key, 0)
        row = stored.get(key)
        current = row.clicks if row is not None else 0
        if current == value:
            continue
        drifts.append(
            drift("campaign_day", f"{key[0]}@{key[1].isoformat()}", "clicks", current, value)
        )
        if row is None:
            missing.append({"campaign_id": key[0], "business_date": key[1], "clicks": value})
        else:
            await session.execute(
                update(CampaignDailyStats)
                .where(
                    CampaignDailyStats.campaign_id == key[0],
                    CampaignDailyStats.business_date == key[1],
                )
                .values(clicks=value)
            )
    if missing:
        await session.execute(insert(CampaignDailyStats), missing)


def _summary_id(key: SummaryKey) -> str:
    return f"{key[0]}:{key[1]}:{key[2]}"


async def _fix_summaries(
    session: AsyncSession,
    stored: dict[SummaryKey, ClickSummary],
    actual: dict[SummaryKey, tuple[int, datetime]],
    drifts: list[dict[str, Any]],
) -> None:
    missing = []
    for key in sorted(set(stored) | set(actual)):
        row = stored.get(key)
        entry: tuple[int, datetime | None] = actual.get(key, (0, None))
        total, last = entry
        if row is None:
            drifts.append(drift("summary", _summary_id(key), "total_clicks", 0, total))
            missing.append(
                {
                    "campaign_id": key[0],
                    "line_id": key[1],
                    "source_campaign_id": key[2],
                    "total_clicks": total,
                    "last_clicked_at": last,
                    "last_click_tag": None,
                    "created_at": utcnow(),
                }
            )
            continue
        fixes: dict[str, Any] = {}
        if row.total_clicks != total:
            drifts.append(
                drift("summary", _summary_id(key), "total_clicks", row.total_clicks, total)
            )
            fixes["total_clicks"] = total
        if last is not None and row.last_clicked_at != last:
            drifts.append(
                drift("summary", _summary_id(key), "last_clicked_at", row.last_clicked_at, last)
            )
            fixes["last_clicked_at"] = last
        if fixes:
            await session.execute(
                update(ClickSummary)
                .where(
                    ClickSummary.campaign_id == key[0],
                    ClickSummary.line_id == key[1],
                    ClickSummary.source_campaign_id == key[2],
                )
                .values(fixes)
            )
    if missing:
        await session.execute(insert(ClickSummary), missing)


async def _fix_tags(
    session: AsyncSession,
    campaign_ids: Sequence[int],
    stored_summaries: dict[SummaryKey, ClickSummary],
    per_summary: dict[SummaryKey, tuple[int, datetime]],
    actual: dict[SummaryKey, dict[str, tuple[datetime, int]]],
    drifts: list[dict[str, Any]],
) -> None:
    stored_rows = await tag_rows_of_campaigns(session, campaign_ids)
    stored = {key: {tag for tag, _ in rows} for key, rows in stored_rows.items()}
    rebuild: set[SummaryKey] = set()
    for key in sorted(set(stored) | set(actual)):
        want = actual.get(key, {})
        have = stored.get(key, set())
        if set(want) == have:
            continue
        drifts.append(
            drift(
                "summary", _summary_id(key), "tags", ",".join(sorted(have)), ",".join(sorted(want))
            )
        )
        await _correct_tag_set(session, key, want, have)
        rebuild.add(key)
    # The comma strings: rebuilt where the set changed, and checked everywhere else.
    keys = sorted((set(stored_summaries) | set(per_summary)) - rebuild)
    rebuild |= _drifted_tag_strings(keys, stored_rows, stored_summaries, drifts)
    if rebuild:
        await rebuild_tag_strings(session, sorted(rebuild))


async def _correct_tag_set(
    session: AsyncSession,
    key: SummaryKey,
    want: dict[str, tuple[datetime, int]],
    have: set[str],
) -> None:
    """Delete the summary's tags no log supports; add the missing ones, in first-seen
    order."""
    for extra in in_slices(have - set(want)):
        await session.execute(
            delete(ClickSummaryTag).where(
                ClickSummaryTag.campaign_id == key[0],
                ClickSummaryTag.line_id == key[1],
                ClickSummaryTag.source_campaign_id == key[2],
                ClickSummaryTag.tag.in_(extra),
            )
        )
    added = sorted((tag for tag in want if tag not in have), key=lambda t: want[t])
    if added:
        await session.execute(
            insert(ClickSummaryTag),
            [
                {
                    "campaign_id": key[0],
                    "line_id": key[1],
                    "source_campaign_id": key[2],
                    "tag": tag,
                    "first_seen_at": want[tag][0],
                    "position": want[tag][1],
                    "first_event_id": "recalibration",
                }
                for tag in added
            ],
        )


def _drifted_tag_strings(
    keys: Sequence[SummaryKey],
    rows: dict[SummaryKey, list[tuple[str, datetime]]],
    stored_summaries: dict[SummaryKey, ClickSummary],
    drifts: list[dict[str, Any]],
) -> set[SummaryKey]:
    """The summaries among `keys` whose comma string (or `tags_seen_until`) does not match
    their tag rows (`rows`, in first-seen order); each mismatch is recorded as a drift."""
    drifted: set[SummaryKey] = set()
    for key in keys:
        tags = rows.get(key, [])
        string = ",".join(tag for tag, _ in tags) or None
        until = max((seen for _, seen in tags), default=None)
        row = stored_summaries.get(key)
        for field, right in (("last_click_tag", string), ("tags_seen_until", until)):
            found = getattr(row, field) if row is not None else None
            if found != right:
                drifts.append(drift("summary", _summary_id(key), field, found, right))
                drifted.add(key)
    return drifted


async def _fix_campaign_users(
    session: AsyncSession,
    campaign_ids: Sequence[int],
    actual: dict[tuple[int, str], tuple[str, datetime]],
    drifts: list[dict[str, Any]],
) -> None:
    stored = set(
        (
            await session.execute(
                select(CampaignUser.campaign_id, CampaignUser.line_id).where(
                    CampaignUser.campaign_id.in_(campaign_ids)
                )
            )
        )
        .tuples()
        .all()
    )
    missing = sorted(set(actual) - stored)
    extra = sorted(stored - set(actual))
    for cid, uid in missing:
        drifts.append(drift("campaign_user", f"{cid}:{uid}", "exists", 0, 1))
    for cid, uid in extra:
        drifts.append(drift("campaign_user", f"{cid}:{uid}", "exists", 1, 0))
    if missing:
        await session.execute(
            insert(CampaignUser),
            [
                {
                    "campaign_id": cid,
                    "line_id": uid,
                    "first_event_id": actual[cid, uid][0],
                    "first_clicked_at": actual[cid, uid][1],
                }
                for cid, uid in missing
            ],
        )
    await _delete_campaign_users(session, extra)


async def _delete_campaign_users(session: AsyncSession, keys: Sequence[tuple[int, str]]) -> None:
    """Delete these (campaign, user) rows: per campaign, by slices of user ids (each a
    range of the primary key; a tuple IN list is planned as one OR per key)."""
    users: dict[int, list[str]] = defaultdict(list)
    for cid, uid in keys:
        users[cid].append(uid)
    for cid, uids in sorted(users.items()):
        for some in in_slices(uids):
            await session.execute(
                delete(CampaignUser).where(
                    CampaignUser.campaign_id == cid, CampaignUser.line_id.in_(some)
                )
            )
