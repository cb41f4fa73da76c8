"""Recalibration (校准): recompute every counter from the accounts and the incoming log,
correct what drifted, and record each drift.

Safe while ingestion runs: for each chunk of groups the stats rows are row-locked first
(ingestion moves a group's stats row before it writes that group's logs, so it waits), and
only then are the logs counted, by statements that see every commit made before the lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Integer, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.db import Database
from tallyhub.core.recalibration import ChunkResult, RecalibrationRun, drift, recalibrate_in_chunks
from tallyhub.leads.models import (
    Group,
    GroupDailyStats,
    GroupStats,
    IncomingLog,
    LineAccount,
    LineAccountDailyStats,
    LineAccountStats,
)

ACCOUNT_FIELDS = ("total_accounts", "online_accounts", "line_accounts", "line_business_accounts")


def _count_true(column: Any) -> Any:
    return func.coalesce(func.sum(cast(column, Integer)), 0)


async def recalibrate(db: Database, chunk_size: int = 500) -> RecalibrationRun:
    async with db.transaction(readonly=True) as session:
        group_ids = list(await session.scalars(select(Group.id).order_by(Group.id)))
    return await recalibrate_in_chunks(db, "leads", group_ids, chunk_size, _recalibrate_chunk)


_GS = GroupStats.__table__.c
_AS = LineAccountStats.__table__.c
_GD = GroupDailyStats.__table__.c
_AD = LineAccountDailyStats.__table__.c
_A = LineAccount.__table__.c
_L = IncomingLog.__table__.c


async def _recalibrate_chunk(session: AsyncSession, group_ids: Sequence[int]) -> ChunkResult:
    drifts: list[dict[str, Any]] = []
    # Lock the chunk's group stats rows first. Every writer of a group's counters (incoming
    # batches, account reports, status changes, deletions) takes that row before anything
    # else, so while we hold it none of the group's counters or logs can change; the
    # counts below see everything committed before the lock.
    stored_groups = {
        row[0]: row[1:]
        for row in await session.execute(
            select(_GS.group_id, *(_GS[f] for f in GROUP_FIELDS))
            .where(_GS.group_id.in_(group_ids))
            .order_by(_GS.group_id)
            .with_for_update()
        )
    }
    stored_accounts = {
        row[0]: row[1:]
        for row in await session.execute(
            select(_AS.line_account_id, _AS.total_incoming, _AS.duplicate_incoming).where(
                _AS.group_id.in_(group_ids)
            )
        )
    }
    stored_group_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(_GD.group_id, _GD.business_date, _GD.incoming, _GD.duplicate_incoming).where(
                _GD.group_id.in_(group_ids)
            )
        )
    }
    stored_account_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(
                _AD.line_account_id, _AD.business_date, _AD.incoming, _AD.duplicate_incoming
            ).where(_AD.group_id.in_(group_ids))
        )
    }

    account_counts = {
        row[0]: row[1:]
        for row in await session.execute(
            select(
                _A.group_id,
                func.count(),
                _count_true(_A.online_status == "online"),
                _count_true(_A.platform_type == "line"),
                _count_true(_A.platform_type == "line_business"),
            )
            .where(_A.group_id.in_(group_ids), _A.deleted_at.is_(None))
            .group_by(_A.group_id)
        )
    }
    # Two scans of the log: per group and day (group totals are their sums), and per
    # account and day (account totals likewise).
    group_days: dict[tuple[int, date], tuple[int, int]] = {}
    group_totals: dict[int, list[int]] = {}
    for gid, day, n, dup in await session.execute(
        select(_L.group_id, _L.business_date, func.count(), _count_true(_L.is_duplicate))
        .where(_L.group_id.in_(group_ids))
        .group_by(_L.group_id, _L.business_date)
    ):
        group_days[gid, day] = (int(n), int(dup))
        total = group_totals.setdefault(gid, [0, 0])
        total[0] += n
        total[1] += dup
    account_days: dict[tuple[int, date], tuple[int, int]] = {}
    account_group: dict[int, int] = {}
    account_totals: dict[int, list[int]] = {}
    for aid, day, gid, n, dup in await session.execute(
        select(
            _L.line_account_id,
            _L.business_date,
            func.min(_L.group_id),
            func.count(),
            _count_true(_L.is_duplicate),
        )
        .where(_L.group_id.in_(group_ids))
        .group_by(_L.line_account_id, _L.business_date)
    ):
        account_days[aid, day] = (int(n), int(dup))
        account_group[aid] = gid
        total = account_totals.setdefault(aid, [0, 0])
        total[0] += n
        total[1] += dup

    group_fixes = []
    for gid, stored in sorted(stored_groups.items()):
        actual = (*account_counts.get(gid, (0, 0, 0, 0)), *group_totals.get(gid, (0, 0)))
        fixes = _compare("group", gid, GROUP_FIELDS, stored, actual, drifts)
        if fixes:
            group_fixes.append((gid, fixes))
    for gid, fixes in group_fixes:
        await session.execute(update(GroupStats).where(GroupStats.group_id == gid).values(fixes))

    for aid, stored in sorted(stored_accounts.items()):
        actual = tuple(account_totals.get(aid, (0, 0)))
        fixes = _compare("line_account", aid, INCOMING_FIELDS, stored, actual, drifts)
        if fixes:
            await session.execute(
                update(LineAccountStats)
                .where(LineAccountStats.line_account_id == aid)
                .values(fixes)
            )

    await _fix_days(
        session,
        GroupDailyStats,
        "group_day",
        stored_group_days,
        group_days,
        lambda key: {"group_id": key[0]},
        drifts,
    )
    await _fix_days(
        session,
        LineAccountDailyStats,
        "line_account_day",
        stored_account_days,
        account_days,
        lambda key: {"line_account_id": key[0], "group_id": account_group[key[0]]},
        drifts,
    )
    return {"groups": len(group_ids), "accounts": len(stored_accounts)}, drifts


GROUP_FIELDS = (*ACCOUNT_FIELDS, "total_incoming", "duplicate_incoming")
INCOMING_FIELDS = ("incoming", "duplicate_incoming")


def _compare(
    entity: str,
    entity_id: Any,
    fields: Sequence[str],
    stored: Sequence[int],
    actual: Sequence[int],
    drifts: list[dict[str, Any]],
) -> dict[str, int]:
    if tuple(stored) == tuple(actual):
        return {}
    fixes = {}
    for field, current, value in zip(fields, stored, actual, strict=True):
        if current != value:
            drifts.append(drift(entity, entity_id, field, current, value))
            fixes[field] = int(value)
    return fixes


async def _fix_days(
    session: AsyncSession,
    model: Any,
    entity: str,
    stored: dict[tuple[int, date], Sequence[int]],
    actual: dict[tuple[int, date], tuple[int, int]],
    owner_columns: Any,
    drifts: list[dict[str, Any]],
) -> None:
    first, second = model.__mapper__.primary_key
    missing = []
    for key in sorted(stored.keys() | actual.keys()):
        counts = actual.get(key, (0, 0))
        row = stored.get(key)
        if row is not None and tuple(row) == counts:
            continue
        entity_id = f"{key[0]}@{key[1].isoformat()}"
        fixes = _compare(entity, entity_id, INCOMING_FIELDS, row or (0, 0), counts, drifts)
        if row is None:
            missing.append(
                {
                    **owner_columns(key),
                    "business_date": key[1],
                    "incoming": counts[0],
                    "duplicate_incoming": counts[1],
                }
            )
        elif fixes:
            await session.execute(
                update(model).where(first == key[0], second == key[1]).values(fixes)
            )
    if missing:
        await session.execute(insert(model), missing)
