"""Recalibration (校准): recompute every counter from the accounts and the incoming log,
correct what drifted, and record each drift.

Safe while ingestion runs: for each chunk of groups the stats rows are row-locked first
(ingestion moves a group's stats row before it writes that group's logs, so it waits), and
only then are the logs counted, by statements that see every commit made before the lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Integer, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.db import Database, utcnow
from tallyhub.leads.models import (
    Group,
    GroupDailyStats,
    GroupStats,
    IncomingLog,
    LineAccount,
    LineAccountDailyStats,
    LineAccountStats,
    Recalibration,
)

ACCOUNT_FIELDS = ("total_accounts", "online_accounts", "line_accounts", "line_business_accounts")


def _count_true(column: Any) -> Any:
    return func.coalesce(func.sum(cast(column, Integer)), 0)


def _drift(entity: str, entity_id: Any, field: str, stored: int, actual: int) -> dict[str, Any]:
    return {
        "entity": entity,
        "entity_id": str(entity_id),
        "field": field,
        "stored": int(stored),
        "actual": int(actual),
    }


async def recalibrate(db: Database, chunk_size: int = 500) -> Recalibration:
    started = utcnow()
    async with db.transaction(readonly=True) as session:
        group_ids = list(await session.scalars(select(Group.id).order_by(Group.id)))
    drifts: list[dict[str, Any]] = []
    accounts_checked = 0
    for start in range(0, len(group_ids), chunk_size):
        chunk = group_ids[start : start + chunk_size]

        async def work(
            session: AsyncSession, chunk: Sequence[int] = chunk
        ) -> tuple[int, list[Any]]:
            return await _recalibrate_chunk(session, chunk)

        checked, found = await db.run(work)
        accounts_checked += checked
        drifts.extend(found)

    async def record(session: AsyncSession) -> Recalibration:
        run = Recalibration(
            started_at=started,
            finished_at=utcnow(),
            groups_checked=len(group_ids),
            accounts_checked=accounts_checked,
            drift_count=len(drifts),
            drifts=drifts,
        )
        session.add(run)
        await session.flush()
        return run

    return await db.run(record)


async def _recalibrate_chunk(
    session: AsyncSession, group_ids: Sequence[int]
) -> tuple[int, list[dict[str, Any]]]:
    drifts: list[dict[str, Any]] = []
    # Lock first, count after: in the same order ingestion touches them.
    stored_groups = {
        s.group_id: s
        for s in await session.scalars(
            select(GroupStats)
            .where(GroupStats.group_id.in_(group_ids))
            .order_by(GroupStats.group_id)
            .with_for_update()
        )
    }
    stored_accounts = {
        s.line_account_id: s
        for s in await session.scalars(
            select(LineAccountStats)
            .where(LineAccountStats.group_id.in_(group_ids))
            .order_by(LineAccountStats.line_account_id)
            .with_for_update()
        )
    }
    stored_group_days = {
        (r.group_id, r.business_date): r
        for r in await session.scalars(
            select(GroupDailyStats)
            .where(GroupDailyStats.group_id.in_(group_ids))
            .order_by(GroupDailyStats.group_id, GroupDailyStats.business_date)
            .with_for_update()
        )
    }
    stored_account_days = {
        (r.line_account_id, r.business_date): r
        for r in await session.scalars(
            select(LineAccountDailyStats)
            .where(LineAccountDailyStats.group_id.in_(group_ids))
            .order_by(LineAccountDailyStats.line_account_id, LineAccountDailyStats.business_date)
            .with_for_update()
        )
    }

    live = LineAccount.deleted_at.is_(None)
    account_counts = {
        row[0]: row[1:]
        for row in await session.execute(
            select(
                LineAccount.group_id,
                func.count(),
                _count_true(LineAccount.online_status == "online"),
                _count_true(LineAccount.platform_type == "line"),
                _count_true(LineAccount.platform_type == "line_business"),
            )
            .where(LineAccount.group_id.in_(group_ids), live)
            .group_by(LineAccount.group_id)
        )
    }
    group_incoming = {
        row[0]: row[1:]
        for row in await session.execute(
            select(IncomingLog.group_id, func.count(), _count_true(IncomingLog.is_duplicate))
            .where(IncomingLog.group_id.in_(group_ids))
            .group_by(IncomingLog.group_id)
        )
    }
    account_incoming = {
        row[0]: row[1:]
        for row in await session.execute(
            select(IncomingLog.line_account_id, func.count(), _count_true(IncomingLog.is_duplicate))
            .where(IncomingLog.group_id.in_(group_ids))
            .group_by(IncomingLog.line_account_id)
        )
    }
    group_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(
                IncomingLog.group_id,
                IncomingLog.business_date,
                func.count(),
                _count_true(IncomingLog.is_duplicate),
            )
            .where(IncomingLog.group_id.in_(group_ids))
            .group_by(IncomingLog.group_id, IncomingLog.business_date)
        )
    }
    account_days = {
        (row[0], row[1]): row[2:]
        for row in await session.execute(
            select(
                IncomingLog.line_account_id,
                IncomingLog.business_date,
                func.count(),
                _count_true(IncomingLog.is_duplicate),
                func.min(IncomingLog.group_id),
            )
            .where(IncomingLog.group_id.in_(group_ids))
            .group_by(IncomingLog.line_account_id, IncomingLog.business_date)
        )
    }

    # All-time group counters.
    for gid, stats in sorted(stored_groups.items()):
        accounts = account_counts.get(gid, (0, 0, 0, 0))
        incoming = group_incoming.get(gid, (0, 0))
        actual = dict(zip(ACCOUNT_FIELDS, accounts, strict=True))
        actual.update(total_incoming=incoming[0], duplicate_incoming=incoming[1])
        fixes = _compare("group", gid, stats, actual, drifts)
        if fixes:
            await session.execute(
                update(GroupStats).where(GroupStats.group_id == gid).values(fixes)
            )

    # All-time account counters (every account with a stats row, deleted ones included).
    for aid, account_stats in sorted(stored_accounts.items()):
        total, dup = account_incoming.get(aid, (0, 0))
        fixes = _compare(
            "line_account",
            aid,
            account_stats,
            {"total_incoming": total, "duplicate_incoming": dup},
            drifts,
        )
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
        lambda key, counts: {"group_id": key[0], "business_date": key[1]},
        drifts,
    )
    await _fix_days(
        session,
        LineAccountDailyStats,
        "line_account_day",
        stored_account_days,
        account_days,
        lambda key, counts: {
            "line_account_id": key[0],
            "business_date": key[1],
            "group_id": counts[2],
        },
        drifts,
    )
    return len(stored_accounts), drifts


def _compare(
    entity: str, entity_id: Any, stored: Any, actual: dict[str, int], drifts: list[dict[str, Any]]
) -> dict[str, int]:
    fixes = {}
    for field, value in actual.items():
        current = getattr(stored, field)
        if current != value:
            drifts.append(_drift(entity, entity_id, field, current, value))
            fixes[field] = int(value)
    return fixes


async def _fix_days(
    session: AsyncSession,
    model: Any,
    entity: str,
    stored: dict[tuple[int, date], Any],
    actual: dict[tuple[int, date], Sequence[Any]],
    key_columns: Any,
    drifts: list[dict[str, Any]],
) -> None:
    keys: Iterable[tuple[int, date]] = sorted(set(stored) | set(actual))
    missing = []
    for key in keys:
        counts = actual.get(key, (0, 0, None))
        values = {"incoming": int(counts[0]), "duplicate_incoming": int(counts[1])}
        entity_id = f"{key[0]}@{key[1].isoformat()}"
        row = stored.get(key)
        if row is None:
            for field, value in values.items():
                if value:
                    drifts.append(_drift(entity, entity_id, field, 0, value))
            missing.append({**key_columns(key, counts), **values})
            continue
        fixes = _compare(entity, entity_id, row, values, drifts)
        if fixes:
            first, second = model.__mapper__.primary_key
            await session.execute(
                update(model).where(first == key[0], second == key[1]).values(fixes)
            )
    if missing:
        await session.execute(insert(model), missing)
