"""HTTP edge of the task-rollup domain: the bot's inputs (promoters, tasks, completions),
scans by hand, and the daily rows per task and per agent."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from tallyhub.core.auth import CurrentUser, WriterUser
from tallyhub.core.http import Days, Paging, Session, TransactionalRoute, read_only_session
from tallyhub.core.openapi import Answers
from tallyhub.core.pagination import Page, page_of, paginate
from tallyhub.core.runtime import runtime_of
from tallyhub.core.validation import PathId
from tallyhub.taskstats import jobs, schemas, service
from tallyhub.taskstats.models import Promoter, Task

router = APIRouter(prefix="/api/taskstats", tags=["taskstats"], route_class=TransactionalRoute)


@router.post(
    "/users",
    status_code=201,
    responses={200: {"model": schemas.Promoter, "description": "Known already: updated"}},
    summary="Add a promoter (201), or update a known external_id's name and agent (200)",
)
async def add_promoter(
    response: Response, session: Session, _: WriterUser, body: schemas.PromoterCreate
) -> schemas.Promoter:
    promoter, created = await service.save_promoter(session, body)
    response.status_code = 201 if created else 200
    return schemas.Promoter.model_validate(promoter)


@router.get("/users", summary="Promoters, oldest first")
async def list_promoters(
    session: Session,
    _: CurrentUser,
    paging: Paging,
    agent_node: Annotated[str | None, Query(max_length=255)] = None,
) -> Page[schemas.Promoter]:
    query = select(Promoter).order_by(Promoter.id)
    if agent_node is not None:
        query = query.where(Promoter.agent_node == agent_node)
    rows, total = await paginate(session, query, paging)
    return page_of([schemas.Promoter.model_validate(r) for r in rows], total, paging)


@router.post("/tasks", status_code=201, summary="Add a task")
async def add_task(
    session: Session, principal: WriterUser, body: schemas.TaskCreate
) -> schemas.Task:
    return schemas.Task.model_validate(await service.create_task(session, principal, body))


@router.get("/tasks", summary="Tasks, newest first")
async def list_tasks(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    project_id: Annotated[str | None, Query(max_length=36)] = None,
) -> Page[schemas.Task]:
    query = select(Task).where(principal.visible(Task.owner_id)).order_by(Task.id.desc())
    if project_id is not None:
        query = query.where(Task.project_id == project_id.lower())
    rows, total = await paginate(session, query, paging)
    return page_of([schemas.Task.model_validate(r) for r in rows], total, paging)


@router.get("/tasks/{task_id}", summary="One task")
async def get_task(session: Session, principal: CurrentUser, task_id: PathId) -> schemas.Task:
    return schemas.Task.model_validate(await service.get_task(session, principal, task_id))


@router.patch("/tasks/{task_id}", summary="Change a task (title, duration, callback URL, status)")
async def update_task(
    session: Session, principal: WriterUser, task_id: PathId, body: schemas.TaskUpdate
) -> schemas.Task:
    return schemas.Task.model_validate(await service.update_task(session, principal, task_id, body))


@router.post(
    "/completions",
    summary="Record completions: one, or {items: [...]} (≤ 1000); all or nothing",
    description="A repeated `external_id` changes nothing and is answered `duplicate`. An "
    "unknown task or user, or a link that is not a video of its platform, is a 422 naming "
    "`items[n].field`, and nothing of the batch is applied.",
)
async def add_completions(
    request: Request,
    session: Session,
    principal: WriterUser,
    body: schemas.CompletionCreate | schemas.CompletionBatch,
) -> schemas.CompletionResults:
    items = body.items if isinstance(body, schemas.CompletionBatch) else [body]
    tz = runtime_of(request).settings.timezone
    return await service.record_completions(session, principal, items, tz)


@router.post(
    "/scan",
    summary="Roll up a day now (figures fetched where missing; callbacks to the outbox)",
)
@read_only_session
async def scan_now(
    request: Request, _: WriterUser, body: schemas.ScanRequest
) -> schemas.ScanResult:
    outcome = await jobs.scan_day(runtime_of(request), body.date)
    return schemas.ScanResult(**{**outcome.counts(), "date": outcome.day})


@router.get("/daily", summary="Task days, newest first (from the rows the scan keeps)")
async def daily(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    day: Annotated[date | None, Query(alias="date")] = None,
    task_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    project_id: Annotated[str | None, Query(max_length=36)] = None,
) -> Page[schemas.DailyStats]:
    return await service.daily(
        session, principal, paging, day=day, task_id=task_id, project_id=project_id
    )


@router.get("/tasks/{task_id}/daily", summary="One task's days, oldest first")
async def task_daily(
    session: Session, principal: CurrentUser, task_id: PathId, days: Days
) -> list[schemas.DailyStats]:
    return await service.task_days(session, principal, task_id, days.start, days.end)


@router.get("/agents/daily", summary="Per agent: promoters, completions and figures of a day")
async def agents_daily(
    session: Session, _: CurrentUser, day: Annotated[date, Query(alias="date")]
) -> list[schemas.AgentDaily]:
    return await service.agents(session, day)


@router.get("/summary", summary="The latest scanned day over the tasks you see (overview tile)")
async def summary(session: Session, principal: CurrentUser) -> schemas.Summary:
    return await service.summary(session, principal)


routers = [router]

error_answers: Answers = {
    get_task: (404,),
    update_task: (404,),
    task_daily: (404, 422),
}
