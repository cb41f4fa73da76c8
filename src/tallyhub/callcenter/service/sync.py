"""Syncing a day from the vendor into the caches: every page read (the client follows the
vendor's own `total` and raises `IncompleteSync` at its safety cap, which leaves the old
row as it was), the figures computed, and the day's rows replaced in one transaction.

A records sync that read fewer records than the cached row of that day holds does not
overwrite it (`FewerRecords`, reported like any failure) unless asked to accept fewer:
records do not disappear from a day, so fewer means a walk that missed some.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.callcenter.client import CallcenterClient
from tallyhub.callcenter.contract import GRADE_1, GRADE_9, CallRecord, TaskStatsItem
from tallyhub.callcenter.models import AgentDay, GradeStatsCache, HourDay, TaskStatsCache
from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.db import Database
from tallyhub.core.errors import Conflict

CHINA = "Asia/Shanghai"
CONNECTED = "connected"


class FewerRecords(Conflict):
    """A walk read fewer records of a day than the cache holds: not stored."""

    code = "fewer_records"


@dataclass
class SyncContext:
    db: Database
    client: CallcenterClient


@dataclass
class RecordFigures:
    total: int
    connected: int
    grades: Counter[str]
    by_agent: dict[str, Counter[str]]
    by_hour: dict[int, Counter[str]]


def _tally(counter: Counter[str], record: CallRecord) -> None:
    counter["calls"] += 1
    if record.status == CONNECTED:
        counter["connected"] += 1
    if record.grade == GRADE_9:
        counter["grade_9"] += 1
    elif record.grade == GRADE_1:
        counter["grade_1"] += 1


def record_figures(records: Sequence[CallRecord], tz: Any) -> RecordFigures:
    """Grades, and calls by agent and by hour of day (in `tz`), from the records read."""
    figures = RecordFigures(len(records), 0, Counter(), {}, {})
    for record in records:
        figures.grades[record.grade] += 1
        figures.connected += record.status == CONNECTED
        _tally(figures.by_agent.setdefault(record.agent_id, Counter()), record)
        _tally(figures.by_hour.setdefault(record.call_time.astimezone(tz).hour, Counter()), record)
    return figures


async def sync_records(
    ctx: SyncContext, day: date, sync_type: str, tz: Any, *, accept_fewer: bool = False
) -> GradeStatsCache:
    started = time.perf_counter()
    read = await ctx.client.call_records(day)
    figures = record_figures(read.records, tz)
    elapsed = time.perf_counter() - started

    async def store(session: AsyncSession) -> GradeStatsCache:
        cached = await session.scalar(
            select(GradeStatsCache).where(GradeStatsCache.date == day).with_for_update()
        )
        if cached is not None and cached.total_records > figures.total and not accept_fewer:
            raise FewerRecords(
                f"{day}: read {figures.total} call records, fewer than the {cached.total_records} "
                "cached; kept the cache (refresh with accept_fewer to replace it)"
            )
        row = _grade_row(day, figures, read.upstream_total, elapsed, sync_type)
        await _replace_day(session, day, row, figures)
        stored = await session.scalar(
            select(GradeStatsCache)
            .where(GradeStatsCache.date == day)
            .execution_options(populate_existing=True)  # the row locked above was replaced
        )
        assert stored is not None
        return stored

    return await ctx.db.run(store)


def _grade_row(
    day: date, figures: RecordFigures, upstream_total: int, elapsed: float, sync_type: str
) -> dict[str, Any]:
    grade_9, grade_1 = figures.grades[GRADE_9], figures.grades[GRADE_1]
    return {
        "date": day,
        "grade_9": grade_9,
        "grade_1": grade_1,
        "total_success": grade_9 + grade_1,
        "total_records": figures.total,
        "connected": figures.connected,
        "grades": dict(sorted(figures.grades.items())),
        "upstream_total": upstream_total,
        "calculated_at": utcnow(),
        "elapsed_time": round(elapsed, 3),
        "sync_type": sync_type,
    }


def _breakdown(day: date, key: str, rows: dict[Any, Counter[str]]) -> list[dict[str, Any]]:
    return [
        {
            "date": day,
            key: name,
            "calls": c["calls"],
            "connected": c["connected"],
            "grade_9": c["grade_9"],
            "grade_1": c["grade_1"],
        }
        for name, c in sorted(rows.items())
    ]


async def _replace_day(
    session: AsyncSession, day: date, row: dict[str, Any], figures: RecordFigures
) -> None:
    await session.execute(delete(AgentDay).where(AgentDay.date == day))
    await session.execute(delete(HourDay).where(HourDay.date == day))
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(
            GradeStatsCache, [row], keys=("date",), replace=tuple(k for k in row if k != "date")
        ),
        RowSet(AgentDay, _breakdown(day, "agent_id", figures.by_agent)),
        RowSet(HourDay, _breakdown(day, "hour", figures.by_hour)),
    )


async def sync_tasks(ctx: SyncContext, day: date, sync_type: str) -> TaskStatsCache:
    started = time.perf_counter()
    items = await ctx.client.task_stats(day)
    row = task_row(day, items, time.perf_counter() - started, sync_type)

    async def store(session: AsyncSession) -> TaskStatsCache:
        conn = await session.connection()
        replace = tuple(k for k in row if k != "date")
        await write_rows(conn, RowSet(TaskStatsCache, [row], keys=("date",), replace=replace))
        stored = await session.scalar(select(TaskStatsCache).where(TaskStatsCache.date == day))
        assert stored is not None
        return stored

    return await ctx.db.run(store)


def task_row(
    day: date, items: Sequence[TaskStatsItem], elapsed: float, sync_type: str
) -> dict[str, Any]:
    callout = sum(i.callout_number for i in items)
    called = sum(i.called_number for i in items)
    rate = (
        (Decimal(called) / Decimal(callout)).quantize(Decimal("0.0001")) if callout else Decimal(0)
    )
    return {
        "date": day,
        "total_tasks": len(items),
        "callout_number": callout,
        "called_number": called,
        "success_number": sum(i.success_number for i in items),
        "connected_rate": rate,
        "calculated_at": utcnow(),
        "elapsed_time": round(elapsed, 3),
        "sync_type": sync_type,
    }
