"""Scheduled jobs: a registry, run slots claimed once, run history, and runners.

A job is an async function of the Runtime registered next to its domain code with
`@job("leads.recalibrate", cron="0 3 * * *")`. Before running, a runner claims the slot
(job name, scheduled time) by inserting a unique `job_runs` row; a second scheduler or
worker trying the same slot gets nothing. The row records status, timing, error and the
job's own counts. Missed slots within the grace window run once at start.

A claim is a lease: while the job runs, its runner renews `heartbeat_at` every third of
`job_lease_seconds`. A process that stops mid-run (killed, redeployed) leaves a `running`
row whose lease lapses. A runner claiming that slot again (the catch-up at start, a
scheduler's tick) takes it over as the next attempt; lapsed rows nobody takes over are
marked `abandoned` (at start and by the nightly prune). A runner that lost its lease (it
stalled past it, and another took over) records nothing when it ends.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from croniter import croniter
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core import metrics
from tallyhub.core.auth import AdminUser, CurrentUser
from tallyhub.core.daywindow import zone
from tallyhub.core.db import Base, UTCDateTime, utcnow
from tallyhub.core.http import (
    Conflict,
    NotFound,
    Page,
    Paging,
    Session,
    TransactionalRoute,
    page_of,
    paginate,
    read_only_session,
)
from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)

JobFunction = Callable[[Runtime], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: JobFunction
    cron: str | None = None
    every_seconds: int | None = None
    description: str = ""

    @property
    def schedule(self) -> str:
        return self.cron if self.cron else f"every {self.every_seconds} s"

    def last_slot(self, now: datetime, tz: str) -> datetime:
        """The latest scheduled time at or before `now` (UTC)."""
        if self.every_seconds:
            epoch = int(now.timestamp()) // self.every_seconds * self.every_seconds
            return datetime.fromtimestamp(epoch, UTC)
        assert self.cron is not None
        local = now.astimezone(zone(tz)) + timedelta(microseconds=1)
        prev: datetime = croniter(self.cron, local).get_prev(datetime)
        return prev.astimezone(UTC)

    def next_slot(self, now: datetime, tz: str) -> datetime:
        if self.every_seconds:
            return self.last_slot(now, tz) + timedelta(seconds=self.every_seconds)
        assert self.cron is not None
        nxt: datetime = croniter(self.cron, now.astimezone(zone(tz))).get_next(datetime)
        return nxt.astimezone(UTC)


REGISTRY: dict[str, JobSpec] = {}


def job(
    name: str, *, cron: str | None = None, every_seconds: int | None = None, description: str = ""
) -> Callable[[JobFunction], JobFunction]:
    if (cron is None) == (every_seconds is None):
        raise ValueError(f"job {name}: give exactly one of cron= or every_seconds=")
    if cron is not None and not croniter.is_valid(cron):
        raise ValueError(f"job {name}: invalid cron expression {cron!r}")

    def register(function: JobFunction) -> JobFunction:
        REGISTRY[name] = JobSpec(
            name,
            function,
            cron,
            every_seconds,
            description or (function.__doc__ or "").strip().split("\n")[0],
        )
        return function

    return register


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_name", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_name: Mapped[str] = mapped_column(String(100), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the lease, renewed
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


@dataclass(frozen=True)
class Lease:
    """A claimed slot: its row, and which attempt at it this runner holds."""

    run_id: int
    attempt: int


class JobRunner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tz = runtime.settings.timezone
        self.lease_seconds = runtime.settings.job_lease_seconds

    async def claim(self, name: str, scheduled_for: datetime, trigger: str) -> Lease | None:
        """Insert the slot's row, or take over a slot whose lease has lapsed; None when
        another runner holds it (or has run it)."""

        async def insert(session: Any) -> Lease:
            now = utcnow()
            run = JobRun(
                job_name=name,
                scheduled_for=scheduled_for,
                trigger=trigger,
                status="running",
                started_at=now,
                heartbeat_at=now,
                attempt=1,
            )
            session.add(run)
            await session.flush()
            return Lease(run.id, 1)

        try:
            return await self.runtime.db.run(insert)
        except IntegrityError:
            lease = await self.runtime.db.run(
                lambda session: self._take_over(session, name, scheduled_for, trigger)
            )
            if lease is None:
                log.info("job.slot_taken", job=name, scheduled_for=scheduled_for.isoformat())
            return lease

    async def _take_over(
        self, session: Any, name: str, scheduled_for: datetime, trigger: str
    ) -> Lease | None:
        """The slot's row, as the next attempt, if its lease has lapsed. One conditional
        UPDATE: of runners racing for it, the first to change the row wins, and the others
        no longer match."""
        now = utcnow()
        taken = await session.execute(
            update(JobRun)
            .where(
                JobRun.job_name == name,
                JobRun.scheduled_for == scheduled_for,
                JobRun.status.in_(("running", "abandoned")),
                JobRun.heartbeat_at < now - timedelta(seconds=self.lease_seconds),
            )
            .values(
                trigger=trigger,
                status="running",
                started_at=now,
                heartbeat_at=now,
                attempt=JobRun.attempt + 1,
                finished_at=None,
                duration_ms=None,
                error=None,
                counts=None,
            )
        )
        if taken.rowcount != 1:
            return None
        row = (
            await session.execute(
                select(JobRun.id, JobRun.attempt).where(
                    JobRun.job_name == name, JobRun.scheduled_for == scheduled_for
                )
            )
        ).one()
        log.warning(
            "job.taken_over",
            job=name,
            scheduled_for=scheduled_for.isoformat(),
            run_id=row.id,
            attempt=row.attempt,
        )
        return Lease(row.id, row.attempt)

    async def _keep(self, name: str, lease: Lease) -> None:
        """Renew the lease until cancelled. A renewal that fails is logged and tried again
        at the next turn; one that finds the row taken over stops."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)

            async def renew(session: Any) -> int:
                result = await session.execute(
                    update(JobRun)
                    .where(JobRun.id == lease.run_id, JobRun.attempt == lease.attempt)
                    .values(heartbeat_at=utcnow())
                )
                return int(result.rowcount or 0)

            try:
                renewed = await self.runtime.db.run(renew)
            except Exception:
                log.error("job.lease_renewal_failed", job=name, run_id=lease.run_id, exc_info=True)
                continue
            if not renewed:
                log.error("job.lease_lost", job=name, run_id=lease.run_id, attempt=lease.attempt)
                return

    async def sweep(self) -> int:
        """Mark `abandoned` every running slot whose lease has lapsed; its last renewal
        becomes its end."""
        stale_before = utcnow() - timedelta(seconds=self.lease_seconds)

        async def mark(session: Any) -> list[str]:
            stale = (
                await session.execute(
                    select(JobRun.id, JobRun.job_name)
                    .where(JobRun.status == "running", JobRun.heartbeat_at < stale_before)
                    .with_for_update()
                )
            ).all()
            if stale:
                await session.execute(
                    update(JobRun)
                    .where(JobRun.id.in_([row.id for row in stale]))
                    .values(
                        status="abandoned",
                        finished_at=JobRun.heartbeat_at,
                        error="abandoned: the process running it stopped renewing its lease "
                        "(finished_at is its last renewal)",
                    )
                    .execution_options(synchronize_session=False)
                )
            return [row.job_name for row in stale]

        abandoned = await self.runtime.db.run(mark)
        for name in abandoned:
            metrics.JOB_RUNS.labels(job=name, status="abandoned").inc()
        if abandoned:
            log.warning("job.runs_abandoned", count=len(abandoned), jobs=sorted(set(abandoned)))
        return len(abandoned)

    async def run(
        self, name: str, *, scheduled_for: datetime | None = None, trigger: str = "manual"
    ) -> int | None:
        """Claim the slot and run the job; returns the run id, or None if the slot was taken.
        A failing job is recorded as failed, never raised to the scheduler."""
        spec = REGISTRY.get(name)
        if spec is None:
            raise NotFound(f"no job named {name!r}", code="job_not_found")
        slot = scheduled_for or utcnow()
        lease = await self.claim(name, slot, trigger)
        if lease is None:
            return None
        run_id = lease.run_id
        keeper = asyncio.create_task(self._keep(name, lease), name=f"job-lease-{name}")
        started = time.perf_counter()
        status, error, counts = "succeeded", None, None
        try:
            counts = await spec.function(self.runtime)
        except Exception as failure:
            status, error = "failed", "".join(traceback.format_exception(failure))[-4000:]
            log.error("job.failed", job=name, run_id=run_id, exc_info=True)
        finally:
            keeper.cancel()
            await asyncio.wait([keeper])
        duration = int((time.perf_counter() - started) * 1000)

        async def finish(session: Any) -> int:
            result = await session.execute(
                update(JobRun)
                .where(JobRun.id == run_id, JobRun.attempt == lease.attempt)
                .values(
                    status=status,
                    finished_at=utcnow(),
                    heartbeat_at=utcnow(),
                    duration_ms=duration,
                    error=error,
                    counts=counts,
                )
            )
            return int(result.rowcount or 0)

        if not await self.runtime.db.run(finish):
            # Another runner took the slot over while this one stalled: its attempt stands.
            log.error("job.lease_lost", job=name, run_id=run_id, attempt=lease.attempt)
            status = "lease_lost"
        metrics.JOB_RUNS.labels(job=name, status=status).inc()
        # Interval jobs succeed every few seconds; their runs are in job_runs, not the log.
        quiet = spec.every_seconds is not None and status == "succeeded"
        (log.debug if quiet else log.info)(
            "job.finished", job=name, run_id=run_id, status=status, duration_ms=duration
        )
        return run_id

    async def run_scheduled(self, name: str) -> int | None:
        """Run the slot that is due now; a slot another runner claimed is skipped."""
        slot = REGISTRY[name].last_slot(utcnow() + timedelta(seconds=1), self.tz)
        return await self.run(name, scheduled_for=slot, trigger="schedule")

    async def catch_up(self) -> None:
        """Run, once, each job whose latest slot was missed within the grace window."""
        await self.sweep()
        now = utcnow()
        grace = timedelta(seconds=self.runtime.settings.job_grace_seconds)
        for spec in REGISTRY.values():
            slot = spec.last_slot(now, self.tz)
            if now - slot <= grace:
                await self.run(spec.name, scheduled_for=slot, trigger="catchup")

    @asynccontextmanager
    async def embedded(self) -> AsyncIterator[None]:
        """APScheduler inside the serving process."""
        scheduler = AsyncIOScheduler(timezone=zone(self.tz))
        for spec in REGISTRY.values():
            trigger: CronTrigger | IntervalTrigger
            if spec.cron:
                trigger = CronTrigger.from_crontab(spec.cron, timezone=zone(self.tz))
            else:
                trigger = IntervalTrigger(seconds=spec.every_seconds or 60)
            scheduler.add_job(
                self.run_scheduled,
                trigger,
                args=[spec.name],
                id=spec.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=60,
            )
        scheduler.start()
        scheduler.add_job(self.catch_up, id="catch-up")
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)


@job(
    "core.prune_job_runs",
    cron="15 4 * * *",
    description="Delete finished job runs older than the kept history",
)
async def prune_job_runs(runtime: Runtime) -> dict[str, Any]:
    """Interval jobs (the click spool replay runs every 10 s) add thousands of rows a day.
    Runs abandoned by a stopped process are marked first, so they are pruned in turn."""
    abandoned = await JobRunner(runtime).sweep()
    cutoff = utcnow() - timedelta(days=runtime.settings.job_history_days)

    async def prune(session: Any) -> int:
        result = await session.execute(
            delete(JobRun).where(JobRun.started_at < cutoff, JobRun.status != "running")
        )
        return int(result.rowcount or 0)

    return {"deleted": await runtime.db.run(prune), "abandoned": abandoned}


# ---------------------------------------------------------------- API


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
    job: Annotated[str | None, Query(description="Only this job")] = None,
    status: Annotated[str | None, Query(pattern="^(running|succeeded|failed|abandoned)$")] = None,
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
