"""What the bot sends TallyHub: promoters, tasks and completions. A batch of completions
is checked whole before anything is written (a bad item names its index and field, and
nothing of the batch is applied); a repeated `external_id` changes nothing and is
answered `duplicate`, decided by the unique key, not by a read before the write."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import zone
from tallyhub.core.errors import NotFound
from tallyhub.core.validation import InvalidField
from tallyhub.taskstats import schemas
from tallyhub.taskstats.client import BadLink, check_link
from tallyhub.taskstats.models import COUNTS, Completion, Promoter, Task


async def save_promoter(
    session: AsyncSession, data: schemas.PromoterCreate
) -> tuple[Promoter, bool]:
    """Add a promoter, or update the name and agent of a known external_id; whether new."""
    promoter = await session.scalar(
        select(Promoter).where(Promoter.external_id == data.external_id)
    )
    created = promoter is None
    if promoter is None:
        promoter = Promoter(external_id=data.external_id)
        session.add(promoter)
    promoter.name, promoter.agent_node = data.name, data.agent_node
    await session.flush()
    return promoter, created


async def create_task(
    session: AsyncSession, principal: Principal, data: schemas.TaskCreate
) -> Task:
    task = Task(
        project_id=data.project_id.lower(),
        title=data.title,
        duration=data.duration,
        callback_url=None if data.callback_url is None else str(data.callback_url),
        status=data.status,
        owner_id=principal.id,
    )
    session.add(task)
    await session.flush()
    return task


async def get_task(session: AsyncSession, principal: Principal, task_id: int) -> Task:
    task = await session.scalar(
        select(Task).where(Task.id == task_id, principal.visible(Task.owner_id))
    )
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


async def update_task(
    session: AsyncSession, principal: Principal, task_id: int, data: schemas.TaskUpdate
) -> Task:
    task = await get_task(session, principal, task_id)
    changes = data.model_dump(exclude_unset=True)
    if "callback_url" in changes and changes["callback_url"] is not None:
        changes["callback_url"] = str(changes["callback_url"])
    for name, value in changes.items():
        setattr(task, name, value)
    task.updated_at = utcnow()
    await session.flush()
    return task


# ---------------------------------------------------------------- completions


async def _known(session: AsyncSession, model: Any, ids: set[int], visible: Any = None) -> set[int]:
    query = select(model.id).where(model.id.in_(bucketed(ids)))
    if visible is not None:
        query = query.where(visible)
    return set(await session.scalars(query))


async def _check(
    session: AsyncSession, principal: Principal, items: Sequence[schemas.CompletionCreate]
) -> list[str]:
    """The normalized links; a 422 naming the first bad item and field."""
    tasks = await _known(
        session, Task, {i.task_id for i in items}, principal.visible(Task.owner_id)
    )
    users = await _known(session, Promoter, {i.user_id for i in items})
    links = []
    for n, item in enumerate(items):
        if item.task_id not in tasks:
            raise InvalidField(f"items[{n}].task_id", f"no task {item.task_id}")
        if item.user_id not in users:
            raise InvalidField(f"items[{n}].user_id", f"no user {item.user_id}")
        try:
            links.append(check_link(item.platform, item.submission_link))
        except BadLink as error:
            raise InvalidField(f"items[{n}].submission_link", str(error)) from error
    return links


def _row(
    item: schemas.CompletionCreate, link: str, tz: str, token: str, now: datetime
) -> dict[str, Any]:
    counts = schemas.details_counts(item.verification_details)
    details = (
        None
        if item.verification_details is None
        else item.verification_details.model_dump(exclude_none=True)
    )
    return {
        "external_id": item.external_id,
        "task_id": item.task_id,
        "user_id": item.user_id,
        "platform": item.platform,
        "submission_link": link,
        "verification_details": details,
        "completed_at": item.completed_at,
        "completed_date": item.completed_at.astimezone(zone(tz)).date(),
        "stats_source": None if counts is None else "details",
        "fetch_error": None,
        **{name: None if counts is None else counts[name] for name in COUNTS},
        "batch_token": token,
        "created_at": now,
    }


async def record_completions(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[schemas.CompletionCreate],
    tz: str,
) -> schemas.CompletionResults:
    links = await _check(session, principal, items)
    token, now = str(uuid.uuid4()), utcnow()
    first: dict[str, tuple[schemas.CompletionCreate, str]] = {}
    for item, link in zip(items, links, strict=True):
        first.setdefault(item.external_id, (item, link))  # a batch may repeat itself
    rows = [_row(item, link, tz, token, now) for item, link in first.values()]
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(Completion, sorted(rows, key=lambda r: r["external_id"]), keys=("external_id",)),
    )
    stored = {
        external_id: (row_id, row_token)
        for external_id, row_id, row_token in await session.execute(
            select(Completion.external_id, Completion.id, Completion.batch_token).where(
                Completion.external_id.in_(sorted(first))
            )
        )
    }
    results = []
    seen: set[str] = set()
    for item in items:
        row_id, row_token = stored[item.external_id]
        new = row_token == token and item.external_id not in seen
        seen.add(item.external_id)
        results.append(
            schemas.CompletionResult(
                external_id=item.external_id, id=row_id, status="created" if new else "duplicate"
            )
        )
    created = sum(r.status == "created" for r in results)
    return schemas.CompletionResults(
        items=results, created=created, duplicates=len(results) - created
    )
