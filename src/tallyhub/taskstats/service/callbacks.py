"""The partner callback of a task's day (the seed's X2C payload) through the webhook
outbox, and the outcome handler that keeps the row's `webhook_*` fields in step with the
delivery."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.crypto import SecretBox
from tallyhub.core.webhooks import Outcome, enqueue, ensure_endpoint
from tallyhub.taskstats.models import PLATFORM_FIELDS, Task, TaskDailyStats

EVENT = "task.daily_stats"
SOURCE = "taskstats.daily_stats"
RESPONSE_LIMIT = 1000


def stat_item(task: Task, day: date, figures: dict[str, int]) -> dict[str, Any]:
    """One task's day as the partner reads it: only the platforms that had completions,
    and of those only the fields that are not zero (the seed's examples 1 and 2)."""
    item: dict[str, Any] = {
        "project_id": task.project_id,
        "task_id": task.id,
        "duration": task.duration,
        "stats_date": day.isoformat(),
        "account_count": figures["total_account_count"],
    }
    for prefix, names in PLATFORM_FIELDS.values():
        if figures[f"{prefix}_account_count"] == 0:
            continue
        for name in ("account", *names):
            value = figures[f"{prefix}_{name}_count"]
            if value:
                item[f"{prefix}_{name}_count"] = value
    return item


def payload(site_name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"site_name": site_name, "event": EVENT, "stats": items}


async def enqueue_callback(
    session: AsyncSession,
    box: SecretBox,
    site_name: str,
    task: Task,
    day: date,
    figures: dict[str, int],
) -> str:
    """Put the day's callback in the outbox (sent once this transaction commits); its id."""
    assert task.callback_url is not None
    endpoint = await ensure_endpoint(
        session, box, task.callback_url, task.owner_id, description=f"task {task.id} callbacks"
    )
    message = await enqueue(
        session,
        endpoints=[endpoint],
        event_type=EVENT,
        payload=payload(site_name, [stat_item(task, day, figures)]),
        source=SOURCE,
        source_key=f"{task.id}:{day.isoformat()}",
        owner_id=task.owner_id,
    )
    return message.id


async def follow_delivery(session: AsyncSession, outcome: Outcome) -> None:
    """The row of the callback's task and day follows each attempt: sent when delivered,
    the receiver's answer, and how many times it was tried again."""
    task_id, day = outcome.message.source_key.split(":")
    answer = " ".join(
        part for part in (str(outcome.status_code or ""), outcome.response_body or "") if part
    )
    succeeded = outcome.status == "succeeded"
    await session.execute(
        update(TaskDailyStats)
        .where(
            TaskDailyStats.task_id == int(task_id),
            TaskDailyStats.stats_date == date.fromisoformat(day),
            TaskDailyStats.webhook_message_id == outcome.message.id,
        )
        .values(
            webhook_sent=succeeded,
            webhook_sent_at=outcome.attempted_at if succeeded else None,
            webhook_response=answer[:RESPONSE_LIMIT] or None,
            retry_count=max(0, outcome.attempt_count - 1),
        )
    )
