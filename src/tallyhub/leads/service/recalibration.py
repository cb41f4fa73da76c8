"""Recalibration (校准): recompute every counter from the accounts and the incoming log,
correct what drifted, and record each drift.

Safe while ingestion runs: for each chunk of groups the stats rows are row-locked first
(ingestion moves a group's stats row before it writes that group's logs, so it waits), and
only then are the logs counted, by statements that see every commit made before the lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
GROUP_FIELDS = (*ACCOUNT_FIELDS, "total_incoming", "duplicate_incoming")
INCOMING_FIELDS = ("incoming", "duplicate_incoming")


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


@dataclass(frozen=True, slots=True)
class _Stored:
    """The chunk's counters as stored."""

    groups: dict[int, Sequence[int]]
    accounts: dict[int, Sequence[int]]
    group_days: dict[tuple[int, date], Sequence[int]]
    account_days: dict[tuple[int, date], Sequence[int]]


@dataclass(frozen=True, slots=True)
class _Counted:
    """The chunk's counters counted afresh: account counters from the accounts, incoming
    counters from the log (totals are the sums of the days)."""

    accounts_by_group: dict[int, Sequence[int]]
    group_days: dict[tuple[int, date], tuple[int, int]]
    group_totals: dict[int, list[int]]
    account_days: dict[tuple[int, date], tuple[int, int]]
    account_group: dict[int, int]
    account_totals: dict[int, list[int]]


async def _recalibrate_chunk(session: AsyncSession, group_ids: Sequence[int]) -> ChunkResult:
    # Lock the chunk's group stats rows first. Every writer of a group's counters (incoming
    # batches, account reports, status changes, deletions) takes that row before anything
    # else, so while we hold it none of the group's counters or logs can change; the
    # counts below see everything committed before the lock.
    stored = await _lock_and_read_stored(session, group_ids)
    counted = await _count_afresh(session, group_ids)
    drifts: list[dict[str, Any]] = []
    await _fix_group_totals(session, stored.groups, counted, drifts)
    await _fix_account_totals(session, stored.accounts, counted.account_totals, drifts)
    await _fix_days(
        session,
        GroupDailyStats,
        "group_day",
        stored.group_days,
        counted.group_days,
        lambda key: {"group_id": key[0]},
        drifts,
    )
    await _fix_days(
        session,
        LineAccountDailyStats,
        "line_account_day",
        stored.account_days,
        counted.account_days,
        lambda key: {"line_account_id": key[0], "group_id": counted.account_group[key[0]]},
        drifts,
    )
    return {"groups": len(group_ids), "accounts": len(stored.accounts)}, drifts


async def _lock_and_read_stored(session: AsyncSession, group_ids: Sequence[int]) -> _Stored:
    """Lock the groups' stats rows (in id order), then read every stored counter."""
    groups = {
        row[0]: row[1:]
        for row in await session.execute(
            select(_GS.group_id, *(_GS[f] for f in GROUP_FIELDS))
            .where(_GS.group_id.in_(group_ids))
            .order_by(_GS.group_id)
            .with_for_update()
        )
    }
    accounts = {
        row[0]: row[1:]
        for row in await session.execute(
            select(_AS.line_account_id, _AS.total_incoming, _AS.duplicate_incoming).where(
                _AS.group_id.in_(group_ids)
            )
        )
    }
    group_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(_GD.group_id, _GD.business_date, _GD.incoming, _GD.duplicate_incoming).where(
                _GD.group_id.in_(group_ids)
            )
        )
    }
    account_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(
                _AD.line_account_id, _AD.business_date, _AD.incoming, _AD.duplicate_incoming
            ).where(_AD.group_id.in_(group_ids))
        )
    }
    return _Stored(groups, accounts, group_days, account_days)


async def _count_afresh(session: AsyncSession, group_ids: Sequence[int]) -> _Counted:
    accounts_by_group = await _count_accounts(session, group_ids)
    group_days, group_totals = await _count_group_logs(session, group_ids)
    account_days, account_group, account_totals = await _count_account_logs(session, group_ids)
    return _Counted(
        accounts_by_group, group_days, group_totals, account_days, account_group, account_totals
    )


async def _count_accounts(
    session: AsyncSession, group_ids: Sequence[int]
) -> dict[int, Sequence[int]]:
    """Per group: its live accounts, online ones, LINE ones and LINE Business ones."""
    return {
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


async def _count_group_logs(
    session: AsyncSession, group_ids: Sequence[int]
) -> tuple[dict[tuple[int, date], tuple[int, int]], dict[int, list[int]]]:
    """One scan of the log per group and day: (incoming, duplicates) by group and day,
    and by group, their sums."""
    days: dict[tuple[int, date], tuple[int, int]] = {}
    totals: dict[int, list[int]] = {}
    for gid, day, n, dup in await session.execute(
        select(_L.group_id, _L.business_date, func.count(), _count_true(_L.is_duplicate))
        .where(_L.group_id.in_(group_ids))
        .group_by(_L.group_id, _L.business_date)
    ):
        days[gid, day] = (int(n), int(dup))
        total = totals.setdefault(gid, [0, 0])
        total[0] += n
        total[1] += dup
    return days, totals


async def _count_account_logs(
    session: AsyncSession, group_ids: Sequence[int]
) -> tuple[dict[tuple[int, date], tuple[int, int]], dict[int, int], dict[int, list[int]]]:
    """One scan of the log per account and day: (incoming, duplicates) by account and day,
    each account's group, and by account, their sums."""
    days: dict[tuple[int, date], tuple[int, int]] = {}
    group_of: dict[int, int] = {}
    totals: dict[int, list[int]] = {}
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
        days[aid, day] = (int(n), int(dup))
        group_of[aid] = gid
        total = totals.setdefault(aid, [0, 0])
        total[0] += n
        total[1] += dup
    return days, group_of, totals


async def _fix_group_totals(
    session: AsyncSession,
    stored: dict[int, Sequence[int]],
    counted: _Counted,
    drifts: list[dict[str, Any]],
) -> None:
    """Record every group counter that drifted, then correct them, group by group."""
    group_fixes = []
    for gid, row in sorted(stored.items()):
        actual = (
            *counted.accounts_by_group.get(gid, (0, 0, 0, 0)),
            *counted.group_totals.get(gid, (0, 0)),
        )
        fixes = _compare("group", gid, GROUP_FIELDS, row, actual, drifts)
        if fixes:
            group_fixes.append((gid, fixes))
    for gid, fixes in group_fixes:
        await session.execute(update(GroupStats).where(GroupStats.group_id == gid).values(fixes))


async def _fix_account_totals(
    session: AsyncSession,
    stored: dict[int, Sequence[int]],
    counted: dict[int, list[int]],
    drifts: list[dict[str, Any]],
) -> None:
    for aid, row in sorted(stored.items()):
        actual = tuple(counted.get(aid, (0, 0)))
        fixes = _compare("line_account", aid, INCOMING_FIELDS, row, actual, drifts)
        if fixes:
            await session.execute(
                update(LineAccountStats)
                .where(LineAccountStats.line_account_id == aid)
                .values(fixes)
            )


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
