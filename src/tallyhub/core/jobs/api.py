"""`/api/jobs`: the registered jobs with their next and last runs, the run history, and a
run by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import (
    func,
    select,
)

from tallyhub.core.auth import AdminUser, CurrentUser, Principal, Role
from tallyhub.core.columns import utcnow
from tallyhub.core.errors import Conflict, NotFound
from tallyhub.core.http import Paging, Session, TransactionalRoute, read_only_session
from tallyhub.core.jobs.celery_runner import send_queued_run
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tallyhub.core.jobs.schedule import ScheduleOut, describe
from tallyhub.core.pagination import Page, page_of, paginate
from tallyhub.core.runtime import Runtime
from tallyhub.core.validation import ShortText

log = structlog.get_logger(__name__)


class JobOut(BaseModel):
    name: str
    schedule: str = Field(description='The cron expression, or "every N s" (for scripts)')
    schedule_parts: ScheduleOut = Field(
        description="The schedule as parts to say in words (in `timezone`)"
    )
    every_seconds: int | None = Field(description="An interval job's period")
    cron: str | None = Field(description="A cron job's expression (minute hour day month dow)")
    timezone: str = Field(description="The zone a cron expression is read in (IANA name)")
    description: str
    next_run_at: datetime
    last_run: JobRunOut | None = None


class JobRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_name: str
    scheduled_for: datetime = Field(
        description="The slot: the scheduled time it runs for (a run by hand: when asked)"
    )
    trigger: str = Field(
        description="schedule, catchup, retry (a scheduled slot run again), or manual (a run "
        "by hand, on each of its attempts)"
    )
    status: str = Field(
        description="queued (celery mode: waiting for a worker), running, succeeded, failed, "
        "interrupted or abandoned"
    )
    started_at: datetime = Field(description="When its attempt started (queued: when queued)")
    finished_at: datetime | None
    duration_ms: int | None = Field(
        description="finished_at - started_at in ms, once an attempt ran to its end "
        "(succeeded or failed); null while it runs, and for interrupted or abandoned runs, "
        "whose end was not seen"
    )
    error: str | None
    counts: dict[str, Any] | None = Field(
        description="What the job reports it did; null for operators (it covers every tenant)"
    )
    attempt: int
    heartbeat_at: datetime


JobOut.model_rebuild()

router = APIRouter(prefix="/api/jobs", tags=["jobs"], route_class=TransactionalRoute)


def _shown(run: JobRun, principal: Principal) -> JobRunOut:
    """A run as `principal` may see it: a job's counts cover every tenant's data (clicks
    replayed, drifts corrected), so an operator, who sees only what they own, gets none."""
    shown = JobRunOut.model_validate(run)
    if principal.role == Role.operator:
        shown.counts = None
    return shown


@router.get("", summary="Registered jobs with their schedule, next run and last run")
async def list_jobs(
    request: Request, session: Session, principal: CurrentUser, paging: Paging
) -> Page[JobOut]:
    tz = request.app.state.runtime.settings.timezone
    latest = select(func.max(JobRun.id)).group_by(JobRun.job_name).scalar_subquery()
    last_runs = {
        r.job_name: r for r in await session.scalars(select(JobRun).where(JobRun.id.in_(latest)))
    }
    now = utcnow()
    specs = sorted(REGISTRY.values(), key=lambda s: s.name)
    chosen = specs[paging.offset : paging.offset + paging.page_size]
    jobs = [
        JobOut(
            name=spec.name,
            schedule=spec.schedule,
            schedule_parts=describe(spec),
            every_seconds=spec.every_seconds,
            cron=spec.cron,
            timezone=tz,
            description=spec.description,
            next_run_at=spec.next_slot(now, tz),
            last_run=_shown(last_runs[spec.name], principal) if spec.name in last_runs else None,
        )
        for spec in chosen
    ]
    return page_of(jobs, len(specs), paging)


@router.get("/runs", summary="Run history, newest first")
async def list_runs(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    job: Annotated[ShortText | None, Query(description="Only this job")] = None,
    status: Annotated[
        str | None, Query(pattern="^(queued|running|succeeded|failed|abandoned|interrupted)$")
    ] = None,
    since: Annotated[
        AwareDatetime | None,
        Query(description="Only runs started at or after this instant (ISO 8601 with offset)"),
    ] = None,
) -> Page[JobRunOut]:
    query = select(JobRun)
    if job:
        query = query.where(JobRun.job_name == job)
    if status:
        query = query.where(JobRun.status == status)
    if since:
        query = query.where(JobRun.started_at >= since)
    rows, total = await paginate(
        session, query.order_by(JobRun.started_at.desc(), JobRun.id.desc()), paging
    )
    return page_of([_shown(r, principal) for r in rows], total, paging)


@router.get(
    "/runs/{run_id}",
    summary="One run: how a run by hand (or any other) is getting on",
    responses={404: {"description": "No run with this id"}},
)
async def get_run(
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: Session, principal: CurrentUser
) -> JobRunOut:
    run = await session.get(JobRun, run_id)
    if run is None:
        raise NotFound(f"no job run with id {run_id}", code="run_not_found")
    return _shown(run, principal)


@router.post(
    "/{name}/run",
    summary="Run a job now (admin)",
    responses={
        200: {"description": "Run here, in this process (embedded scheduler): how it ended"},
        202: {
            "model": JobRunOut,
            "description": "Celery mode: queued for a worker (status `queued`); follow it at "
            "`GET /api/jobs/runs/{id}`",
        },
        404: {"description": "No job of this name"},
        409: {"description": "This very instant's run of the job is taken"},
    },
)
@read_only_session
async def run_job(name: str, request: Request, response: Response, _: AdminUser) -> JobRunOut:
    """With `TALLYHUB_SCHEDULER=celery` the run is queued for a worker and answered at once
    (202); otherwise it runs in this process and is answered when it has ended. Either way
    a run whose process dies is run again by `core.recover_runs`."""
    runtime: Runtime = request.app.state.runtime
    if name not in REGISTRY:
        raise NotFound(f"no job named {name!r}", code="job_not_found")
    runner = JobRunner(runtime)
    queued = runtime.settings.scheduler == "celery"
    run_id = await (runner.queue(name) if queued else runner.run(name))
    if run_id is None:  # another runner claimed this very instant's slot
        raise Conflict(f"{name} is being run for this slot already; retry", code="slot_taken")
    if queued:
        await send_queued_run(runtime.settings, name, run_id)
        response.status_code = 202
    async with runtime.db.transaction(readonly=True) as session:
        run = await session.get(JobRun, run_id)
        return JobRunOut.model_validate(run)
