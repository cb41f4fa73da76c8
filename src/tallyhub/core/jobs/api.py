"""`/api/jobs`: the registered jobs with their next and last runs, the run history, and a
run by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    func,
    select,
)

from tallyhub.core.auth import AdminUser, CurrentUser
from tallyhub.core.columns import utcnow
from tallyhub.core.errors import Conflict, NotFound
from tallyhub.core.http import Paging, Session, TransactionalRoute, read_only_session
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tallyhub.core.pagination import Page, page_of, paginate
from tallyhub.core.runtime import Runtime
from tallyhub.core.validation import ShortText

log = structlog.get_logger(__name__)


class JobOut(BaseModel):
    name: str
    schedule: str
    description: str
    next_run_at: datetime
    last_run: JobRunOut | None = None


class JobRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_name: str
    scheduled_for: datetime
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None
    counts: dict[str, Any] | None
    attempt: int
    heartbeat_at: datetime


JobOut.model_rebuild()

router = APIRouter(prefix="/api/jobs", tags=["jobs"], route_class=TransactionalRoute)


@router.get("", summary="Registered jobs with their schedule, next run and last run")
async def list_jobs(request: Request, session: Session, _: CurrentUser) -> list[JobOut]:
    tz = request.app.state.runtime.settings.timezone
    latest = select(func.max(JobRun.id)).group_by(JobRun.job_name).scalar_subquery()
    last_runs = {
        r.job_name: r for r in await session.scalars(select(JobRun).where(JobRun.id.in_(latest)))
    }
    now = utcnow()
    return [
        JobOut(
            name=spec.name,
            schedule=spec.schedule,
            description=spec.description,
            next_run_at=spec.next_slot(now, tz),
            last_run=JobRunOut.model_validate(last_runs[spec.name])
            if spec.name in last_runs
            else None,
        )
        for spec in sorted(REGISTRY.values(), key=lambda s: s.name)
    ]


@router.get("/runs", summary="Run history, newest first")
async def list_runs(
    session: Session,
    _: CurrentUser,
    paging: Paging,
    job: Annotated[ShortText | None, Query(description="Only this job")] = None,
    status: Annotated[
        str | None, Query(pattern="^(running|succeeded|failed|abandoned|interrupted)$")
    ] = None,
) -> Page[JobRunOut]:
    query = select(JobRun)
    if job:
        query = query.where(JobRun.job_name == job)
    if status:
        query = query.where(JobRun.status == status)
    rows, total = await paginate(
        session, query.order_by(JobRun.started_at.desc(), JobRun.id.desc()), paging
    )
    return page_of([JobRunOut.model_validate(r) for r in rows], total, paging)


@router.post("/{name}/run", summary="Run a job now (admin)")
@read_only_session
async def run_job(name: str, request: Request, _: AdminUser) -> JobRunOut:
    runtime: Runtime = request.app.state.runtime
    if name not in REGISTRY:
        raise NotFound(f"no job named {name!r}", code="job_not_found")
    run_id = await JobRunner(runtime).run(name)
    if run_id is None:  # another runner claimed this very instant's slot
        raise Conflict(f"{name} is being run for this slot already; retry", code="slot_taken")
    async with runtime.db.transaction(readonly=True) as session:
        run = await session.get(JobRun, run_id)
        return JobRunOut.model_validate(run)
