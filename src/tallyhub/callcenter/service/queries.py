"""The read side: the caches of a day, both caches per day over a range, the agent
ranking and the hour-of-day figures summed from the per-day rows, and the export's rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.callcenter.models import AgentDay, GradeStatsCache, HourDay, TaskStatsCache

AGENT_SORTS = ("grade_9", "grade_1", "calls", "connected")
EXPORT_COLUMNS = (
    "date",
    "total_tasks",
    "callout_number",
    "called_number",
    "success_number",
    "connected_rate",
    "grade_9",
    "grade_1",
    "total_success",
    "total_records",
    "tasks_calculated_at",
    "grades_calculated_at",
)


async def grade_cache(session: AsyncSession, day: date) -> GradeStatsCache | None:
    return await session.scalar(select(GradeStatsCache).where(GradeStatsCache.date == day))


async def task_cache(session: AsyncSession, day: date) -> TaskStatsCache | None:
    return await session.scalar(select(TaskStatsCache).where(TaskStatsCache.date == day))


async def daily(session: AsyncSession, start: date, end: date) -> list[dict[str, Any]]:
    """Both caches of each day of the range that has either, oldest first."""
    tasks = {
        r.date: r
        for r in await session.scalars(
            select(TaskStatsCache).where(TaskStatsCache.date.between(start, end))
        )
    }
    grades = {
        r.date: r
        for r in await session.scalars(
            select(GradeStatsCache).where(GradeStatsCache.date.between(start, end))
        )
    }
    return [_day(d, tasks.get(d), grades.get(d)) for d in sorted(set(tasks) | set(grades))]


def _day(day: date, task: TaskStatsCache | None, grade: GradeStatsCache | None) -> dict[str, Any]:
    return {
        "date": day,
        "total_tasks": task.total_tasks if task else None,
        "callout_number": task.callout_number if task else None,
        "called_number": task.called_number if task else None,
        "success_number": task.success_number if task else None,
        "connected_rate": task.connected_rate if task else None,
        "grade_9": grade.grade_9 if grade else None,
        "grade_1": grade.grade_1 if grade else None,
        "total_success": grade.total_success if grade else None,
        "total_records": grade.total_records if grade else None,
        "tasks_calculated_at": task.calculated_at if task else None,
        "grades_calculated_at": grade.calculated_at if grade else None,
    }


def _sums(model: Any) -> list[Any]:
    return [
        func.sum(model.calls).label("calls"),
        func.sum(model.connected).label("connected"),
        func.sum(model.grade_9).label("grade_9"),
        func.sum(model.grade_1).label("grade_1"),
    ]


async def agents(
    session: AsyncSession, start: date, end: date, sort: str, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(AgentDay.agent_id, *_sums(AgentDay))
        .where(AgentDay.date.between(start, end))
        .group_by(AgentDay.agent_id)
    )
    rows = [dict(r._mapping) for r in await session.execute(query)]
    rows.sort(key=lambda r: (-int(r[sort] or 0), r["agent_id"]))
    return [{k: v if k == "agent_id" else int(v or 0) for k, v in r.items()} for r in rows[:limit]]


async def hours(session: AsyncSession, start: date, end: date) -> list[dict[str, Any]]:
    query = (
        select(HourDay.hour, *_sums(HourDay))
        .where(HourDay.date.between(start, end))
        .group_by(HourDay.hour)
    )
    found = {r.hour: r for r in await session.execute(query)}
    return [
        {
            "hour": hour,
            **{k: int(getattr(found[hour], k) or 0) if hour in found else 0 for k in _KEYS},
        }
        for hour in range(24)
    ]


_KEYS = ("calls", "connected", "grade_9", "grade_1")
