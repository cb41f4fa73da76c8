"""The read side: task days, one task's days, the agents' day, the overview tile; all read
from the rows the scan keeps."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.pagination import Page, PageParams, page_of, paginate
from tallyhub.core.webhooks import WebhookMessage
from tallyhub.taskstats import schemas
from tallyhub.taskstats.models import AgentDailyStats, Task, TaskDailyStats
from tallyhub.taskstats.service.inputs import get_task


def _visible_tasks(principal: Principal) -> Select[tuple[int]]:
    return select(Task.id).where(principal.visible(Task.owner_id))


async def daily(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    day: date | None,
    task_id: int | None,
    project_id: str | None,
) -> Page[schemas.DailyStats]:
    query = select(TaskDailyStats).where(TaskDailyStats.task_id.in_(_visible_tasks(principal)))
    if day is not None:
        query = query.where(TaskDailyStats.stats_date == day)
    if task_id is not None:
        query = query.where(TaskDailyStats.task_id == task_id)
    if project_id is not None:
        query = query.where(
            TaskDailyStats.task_id.in_(select(Task.id).where(Task.project_id == project_id.lower()))
        )
    query = query.order_by(TaskDailyStats.stats_date.desc(), TaskDailyStats.task_id)
    rows, total = await paginate(session, query, params)
    return page_of([schemas.DailyStats.model_validate(r) for r in rows], total, params)


async def task_days(
    session: AsyncSession, principal: Principal, task_id: int, start: date | None, end: date | None
) -> list[schemas.DailyStats]:
    task = await get_task(session, principal, task_id)
    query = select(TaskDailyStats).where(TaskDailyStats.task_id == task.id)
    if start is not None:
        query = query.where(TaskDailyStats.stats_date >= start)
    if end is not None:
        query = query.where(TaskDailyStats.stats_date <= end)
    rows = await session.scalars(query.order_by(TaskDailyStats.stats_date))
    return [schemas.DailyStats.model_validate(r) for r in rows]


async def agents(session: AsyncSession, day: date) -> list[schemas.AgentDaily]:
    rows = await session.scalars(
        select(AgentDailyStats)
        .where(AgentDailyStats.stats_date == day)
        .order_by(AgentDailyStats.agent_node)
    )
    return [schemas.AgentDaily.model_validate(r) for r in rows]


async def summary(session: AsyncSession, principal: Principal) -> schemas.Summary:
    visible = _visible_tasks(principal)
    tasks = await session.scalar(
        select(func.count()).select_from(Task).where(principal.visible(Task.owner_id))
    )
    latest = await session.scalar(
        select(func.max(TaskDailyStats.stats_date)).where(TaskDailyStats.task_id.in_(visible))
    )
    sums: Any = (0, 0)
    if latest is not None:
        sums = (
            await session.execute(
                select(
                    func.coalesce(func.sum(TaskDailyStats.completion_count), 0),
                    func.coalesce(func.sum(TaskDailyStats.total_account_count), 0),
                ).where(TaskDailyStats.stats_date == latest, TaskDailyStats.task_id.in_(visible))
            )
        ).one()
    callbacks = dict(
        (status, count)
        for status, count in await session.execute(
            select(WebhookMessage.status, func.count())
            .where(WebhookMessage.event_type == "task.daily_stats")
            .where(principal.visible(WebhookMessage.owner_id))
            .group_by(WebhookMessage.status)
        )
    )
    return schemas.Summary(
        tasks=int(tasks or 0),
        latest_date=latest,
        completions=int(sums[0]),
        accounts=int(sums[1]),
        callbacks_pending=int(callbacks.get("pending", 0)),
        callbacks_failed=int(callbacks.get("failed", 0)),
    )
