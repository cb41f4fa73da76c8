"""The daily scan (the seed's DailyStatsScanner, fixed): for a day, every task with
completions gets its `task_daily_stats` row from one grouped statement per chunk of tasks
(not a Python loop over completions); completions that brought no figures get them from
the platform once (kept, so a rescan never fetches again); a row whose figures changed
puts its callback in the outbox in the same transaction; the agents' day is rebuilt.

A task whose figures cannot all be known (a video that could not be fetched) or whose
write failed is reported and left as it was; the others go on. Scanning a day again
yields the same rows and sends nothing new unless the figures changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import structlog
from sqlalchemy import case, delete, distinct, func, insert, literal, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.crypto import SecretBox
from tallyhub.core.db import Database
from tallyhub.taskstats.client import Platform, VideoFetchFailed, VideoStats, VideoStatsClient
from tallyhub.taskstats.models import (
    DAILY_FIGURES,
    PLATFORM_FIELDS,
    AgentDailyStats,
    Completion,
    Promoter,
    Task,
    TaskDailyStats,
)
from tallyhub.taskstats.service.callbacks import enqueue_callback

log = structlog.get_logger(__name__)

TASK_CHUNK = 200
Progress = Callable[[int, int], None]


@dataclass
class ScanContext:
    db: Database
    box: SecretBox
    client: VideoStatsClient
    site_name: str


@dataclass
class ScanOutcome:
    day: date
    tasks: int = 0
    ok: int = 0
    unchanged: int = 0
    callbacks: int = 0
    fetched: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "tasks": self.tasks,
            "ok": self.ok,
            "failed": len(self.errors),
            "unchanged": self.unchanged,
            "callbacks": self.callbacks,
            "fetched": self.fetched,
            "errors": self.errors,
        }


async def scan(ctx: ScanContext, day: date, progress: Progress | None = None) -> ScanOutcome:
    outcome = ScanOutcome(day)
    task_ids = await _tasks_of(ctx.db, day)
    outcome.tasks = len(task_ids)
    blocked = await _resolve_missing(ctx, day, outcome)
    outcome.errors.update({str(t): why for t, why in blocked.items()})
    ready = [t for t in task_ids if t not in blocked]
    if progress is not None:
        progress(0, len(task_ids))
    done = len(blocked)
    for start in range(0, len(ready), TASK_CHUNK):
        chunk = ready[start : start + TASK_CHUNK]
        await _write_chunk(ctx, day, chunk, outcome)
        done += len(chunk)
        if progress is not None:
            progress(done, len(task_ids))
    await ctx.db.run(lambda session: _rebuild_agents(session, day))
    outcome.ok = len(ready) - sum(1 for t in ready if str(t) in outcome.errors)
    return outcome


async def _tasks_of(db: Database, day: date) -> list[int]:
    async def read(session: AsyncSession) -> list[int]:
        rows = await session.scalars(
            select(Completion.task_id).where(Completion.completed_date == day).distinct()
        )
        return sorted(rows)

    return await db.run(read, readonly=True)


# ---------------------------------------------------------------- missing figures


async def _resolve_missing(ctx: ScanContext, day: date, outcome: ScanOutcome) -> dict[int, str]:
    """Fetch the figures of the day's completions that have none, and keep them; the tasks
    left with a completion whose figures could not be fetched, and why."""

    async def read(session: AsyncSession) -> list[tuple[int, int, Platform, str]]:
        rows = await session.execute(
            select(
                Completion.id, Completion.task_id, Completion.platform, Completion.submission_link
            )
            .where(Completion.completed_date == day, Completion.stats_source.is_(None))
            .order_by(Completion.id)
        )
        return [(r[0], r[1], cast(Platform, r[2]), r[3]) for r in rows]

    missing = await ctx.db.run(read, readonly=True)
    if not missing:
        return {}
    links = sorted({(platform, link) for _, _, platform, link in missing})
    found = await ctx.client.fetch_many(links)
    fetched = [(cid, found[(p, link)]) for cid, _, p, link in missing]
    await ctx.db.run(lambda session: _keep_figures(session, fetched))
    outcome.fetched = sum(isinstance(stats, VideoStats) for _, stats in fetched)
    blocked: dict[int, str] = {}
    for _, task_id, platform, link in missing:
        result = found[(platform, link)]
        if isinstance(result, VideoFetchFailed):
            blocked.setdefault(task_id, f"figures of {platform} {link}: {result.reason}")
    return blocked


async def _keep_figures(
    session: AsyncSession, fetched: Sequence[tuple[int, VideoStats | VideoFetchFailed]]
) -> None:
    rows = []
    for completion_id, stats in fetched:
        if isinstance(stats, VideoStats):
            rows.append(
                {
                    "id": completion_id,
                    "stats_source": "fetched",
                    "fetch_error": None,
                    "view_count": stats.view,
                    "like_count": stats.like,
                    "comment_count": stats.comment,
                    "share_count": stats.share,
                    "collect_count": stats.collect,
                }
            )
    failed = [
        {"id": cid, "fetch_error": stats.reason[:1000]}
        for cid, stats in fetched
        if isinstance(stats, VideoFetchFailed)
    ]
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(
            Completion, rows, keys=("id",), replace=tuple(rows[0])[1:] if rows else (), update=True
        ),
        RowSet(Completion, failed, keys=("id",), replace=("fetch_error",), update=True),
    )


# ---------------------------------------------------------------- the rows


def _daily_columns() -> list[Any]:
    c = Completion
    columns: list[Any] = [
        c.task_id,
        func.count(distinct(c.user_id)).label("total_account_count"),
        func.count().label("completion_count"),
    ]
    for platform, (prefix, names) in PLATFORM_FIELDS.items():
        on = c.platform == platform
        columns.append(func.count(distinct(case((on, c.user_id)))).label(f"{prefix}_account_count"))
        for name in names:
            summed = func.sum(case((on, getattr(c, f"{name}_count")), else_=0))
            columns.append(func.coalesce(summed, 0).label(f"{prefix}_{name}_count"))
    return columns


async def _figures(
    session: AsyncSession, day: date, task_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    rows = await session.execute(
        select(*_daily_columns())
        .where(Completion.completed_date == day, Completion.task_id.in_(bucketed(task_ids)))
        .group_by(Completion.task_id)
    )
    return {row.task_id: {name: int(getattr(row, name)) for name in DAILY_FIGURES} for row in rows}


async def _stored(
    session: AsyncSession, day: date, task_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    rows = await session.execute(
        select(TaskDailyStats.task_id, *(getattr(TaskDailyStats, n) for n in DAILY_FIGURES))
        .where(TaskDailyStats.stats_date == day, TaskDailyStats.task_id.in_(bucketed(task_ids)))
        .with_for_update()
    )
    return {row.task_id: {n: int(getattr(row, n)) for n in DAILY_FIGURES} for row in rows}


async def _write_chunk(
    ctx: ScanContext, day: date, task_ids: Sequence[int], outcome: ScanOutcome
) -> None:
    try:
        changed, callbacks = await ctx.db.run(lambda s: _write(ctx, s, day, task_ids))
    except SQLAlchemyError:
        if len(task_ids) == 1:
            log.error("taskstats.task_failed", task_id=task_ids[0], day=str(day), exc_info=True)
            outcome.errors[str(task_ids[0])] = "its row could not be written (see the log)"
            return
        for task_id in task_ids:  # find the one that fails; the others are written
            await _write_chunk(ctx, day, [task_id], outcome)
        return
    outcome.unchanged += len(task_ids) - changed
    outcome.callbacks += callbacks


async def _write(
    ctx: ScanContext, session: AsyncSession, day: date, task_ids: Sequence[int]
) -> tuple[int, int]:
    """Upsert the rows whose figures changed, with their callbacks; (changed, callbacks)."""
    stored = await _stored(session, day, task_ids)
    figures = await _figures(session, day, task_ids)
    changed = {t: f for t, f in figures.items() if stored.get(t) != f}
    if not changed:
        return 0, 0
    tasks = {
        t.id: t for t in await session.scalars(select(Task).where(Task.id.in_(sorted(changed))))
    }
    now, rows, callbacks = utcnow(), [], 0
    for task_id in sorted(changed):
        message_id = None
        if tasks[task_id].callback_url:
            message_id = await enqueue_callback(
                session, ctx.box, ctx.site_name, tasks[task_id], day, changed[task_id]
            )
            callbacks += 1
        rows.append(_row(task_id, day, changed[task_id], message_id, now))
    conn = await session.connection()
    resets = ("webhook_sent", "webhook_sent_at", "webhook_response", "retry_count")
    await write_rows(
        conn,
        RowSet(
            TaskDailyStats,
            rows,
            keys=("task_id", "stats_date"),
            replace=(*DAILY_FIGURES, *resets, "webhook_message_id", "scanned_at"),
        ),
    )
    return len(changed), callbacks


def _row(
    task_id: int, day: date, figures: dict[str, int], message_id: str | None, now: Any
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "stats_date": day,
        **figures,
        "webhook_sent": False,
        "webhook_sent_at": None,
        "webhook_response": None,
        "retry_count": 0,
        "webhook_message_id": message_id,
        "scanned_at": now,
    }


# ---------------------------------------------------------------- agents


async def _rebuild_agents(session: AsyncSession, day: date) -> None:
    """The agents' day, rebuilt from the day's completions in one grouped statement."""
    c, agent = Completion, func.coalesce(Promoter.agent_node, "")

    def on(platform: str) -> Any:
        return c.platform == platform

    grouped = (
        select(
            agent,
            literal(day),
            func.count(distinct(c.user_id)),
            func.count(),
            *(
                column
                for platform in ("youtube", "tiktok", "douyin")
                for column in (
                    func.sum(case((on(platform), 1), else_=0)),
                    func.coalesce(func.sum(case((on(platform), c.view_count), else_=0)), 0),
                )
            ),
            func.coalesce(func.sum(c.like_count), 0),
        )
        .join(Promoter, Promoter.id == c.user_id)
        .where(c.completed_date == day)
        .group_by(agent)
    )
    columns = [
        "agent_node",
        "stats_date",
        "user_count",
        "completion_count",
        "yt_completion_count",
        "yt_view_count",
        "tt_completion_count",
        "tt_view_count",
        "dy_completion_count",
        "dy_view_count",
        "like_count",
    ]
    await session.execute(delete(AgentDailyStats).where(AgentDailyStats.stats_date == day))
    await session.execute(insert(AgentDailyStats).from_select(columns, grouped))
