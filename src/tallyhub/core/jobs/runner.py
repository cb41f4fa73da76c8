"""Running jobs: slots claimed once, leases renewed while a run lasts, the run history
(its table in models.py) and the embedded scheduler."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from tallyhub.core import metrics
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import zone
from tallyhub.core.errors import NotFound
from tallyhub.core.jobs.models import JobRun
from tallyhub.core.jobs.registry import REGISTRY, JobFailed, JobSpec
from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)

T = TypeVar("T")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ATTEMPTS = 3  # a slot whose process keeps dying (out of memory, say) is given up


def _spec(name: str) -> JobSpec:
    spec = REGISTRY.get(name)
    if spec is None:
        raise NotFound(f"no job named {name!r}", code="job_not_found")
    return spec


async def _to_the_end(step: Awaitable[T]) -> T:
    """Await `step` to its end even if the awaiting task is cancelled meanwhile (a
    shutdown); the cancellation is raised once the step is done. For the writes that
    record how a run ended: cut short, they would leave it to be run again."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


def _stopped(lapsed_before: datetime) -> ColumnElement[bool]:
    """Runs whose process stopped: interrupted at shutdown, or still marked running with a
    lease last renewed before `lapsed_before`."""
    return (JobRun.status == "interrupted") | (
        (JobRun.status == "running") & (JobRun.heartbeat_at < lapsed_before)
    )


def _lost(lapsed_before: datetime) -> ColumnElement[bool]:
    """What recovery looks at: stopped runs, and manual runs queued for a worker (celery
    mode) that no worker has started by `lapsed_before` (their message was lost)."""
    return _stopped(lapsed_before) | (
        (JobRun.status == "queued") & (JobRun.heartbeat_at < lapsed_before)
    )


@dataclass(frozen=True)
class Lease:
    """A claimed slot: its row, and which attempt at it this runner holds."""

    run_id: int
    attempt: int


class JobRunner:
    def __init__(self, runtime: Runtime, *, clock: Callable[[], datetime] = utcnow) -> None:
        """`clock` tells the runner the time: for its slots, and to stamp and judge leases.
        Tests move it by hand rather than wait for a lease to lapse."""
        self.runtime = runtime
        self.clock = clock
        self.tz = runtime.settings.timezone
        self.lease_seconds = runtime.settings.job_lease_seconds
        self._active: set[asyncio.Task[Any]] = set()  # runs in progress, for shutdown

    async def claim(self, name: str, scheduled_for: datetime, trigger: str) -> Lease | None:
        """Insert the slot's row, or take over a slot whose lease has lapsed; None when
        another runner holds it (or has run it)."""

        async def insert(session: Any) -> Lease:
            now = self.clock()
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
        """The slot's row, as the next attempt, if its process stopped (and attempts are
        left). One conditional UPDATE: of runners racing for it, the first to change the
        row wins, and the others no longer match."""
        now = self.clock()
        taken = await session.execute(
            update(JobRun)
            .where(
                JobRun.job_name == name,
                JobRun.scheduled_for == scheduled_for,
                JobRun.attempt < MAX_ATTEMPTS,
                _stopped(now - timedelta(seconds=self.lease_seconds)),
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

    async def _keep(self, name: str, lease: Lease, work: asyncio.Future[Any]) -> bool:
        """Renew the lease until cancelled. A renewal that fails is logged and tried again
        at the next turn. One that finds the slot taken over (this runner stalled past its
        lease) cancels the job and returns True: two attempts must not run side by side."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)

            async def renew(session: Any) -> int:
                result = await session.execute(
                    update(JobRun)
                    .where(
                        JobRun.id == lease.run_id,
                        JobRun.attempt == lease.attempt,
                        JobRun.status.in_(("running", "abandoned")),
                    )
                    # Still running: if a stall got the run marked abandoned, it is not.
                    .values(
                        heartbeat_at=self.clock(), status="running", finished_at=None, error=None
                    )
                )
                return int(result.rowcount or 0)

            try:
                renewed = await self.runtime.db.run(renew)
            except Exception:
                log.error("job.lease_renewal_failed", job=name, run_id=lease.run_id, exc_info=True)
                continue
            if not renewed:
                log.error("job.lease_lost", job=name, run_id=lease.run_id, attempt=lease.attempt)
                work.cancel()
                return True

    async def _release(self, name: str, lease: Lease) -> None:
        """The run was cancelled (its process is shutting down): free the slot at once for
        `recover()` instead of leaving it held until the lease lapses."""

        async def release(session: Any) -> None:
            await session.execute(
                update(JobRun)
                .where(JobRun.id == lease.run_id, JobRun.attempt == lease.attempt)
                .values(
                    status="interrupted",
                    finished_at=self.clock(),
                    error="interrupted: its process stopped it (shutdown) before it ended",
                )
            )

        try:
            await _to_the_end(self.runtime.db.run(release))
        except Exception:
            log.error("job.release_failed", job=name, run_id=lease.run_id, exc_info=True)
        metrics.JOB_RUNS.labels(job=name, status="interrupted").inc()
        log.warning("job.interrupted", job=name, run_id=lease.run_id, attempt=lease.attempt)

    async def recover(self) -> dict[str, int]:
        """Runs whose process stopped: those interrupted at shutdown, and running ones whose
        lease has lapsed; and manual runs queued for a worker that none started within a
        lease (their message was lost). A scheduled slot that is still its job's latest,
        and any manual run, is run again, up to MAX_ATTEMPTS in all, here and one after
        another; the others (a newer slot has come since, or the attempts are used up) are
        marked `abandoned`."""
        stale_before = self.clock() - timedelta(seconds=self.lease_seconds)

        async def lost(session: Any) -> list[Any]:
            query = select(
                JobRun.id,
                JobRun.job_name,
                JobRun.scheduled_for,
                JobRun.attempt,
                JobRun.trigger,
                JobRun.status,
            )
            return list(
                (await session.execute(query.where(_lost(stale_before)).order_by(JobRun.id))).all()
            )

        done = [await self._recover_one(row) for row in await self.runtime.db.run(lost)]
        return {"retried": done.count("retried"), "abandoned": done.count("abandoned")}

    async def _recover_one(self, row: Any) -> str:
        """Run `row` again, or mark it abandoned; says which was done ("retried",
        "abandoned", or "left" when another runner got to it first)."""
        # The clock is read anew for every row: a retry before it may have taken long.
        now = self.clock()
        stale_before = now - timedelta(seconds=self.lease_seconds)
        spec = REGISTRY.get(row.job_name)
        manual = row.trigger == "manual"
        wanted = spec is not None and (manual or spec.last_slot(now, self.tz) == row.scheduled_for)
        if wanted and row.status == "queued":
            ran = await self.run_queued(row.id)
        elif wanted and row.attempt < MAX_ATTEMPTS:
            # A manual run stays `manual` through its attempts (`attempt` counts them).
            trigger = "manual" if manual else "retry"
            ran = await self.run(row.job_name, scheduled_for=row.scheduled_for, trigger=trigger)
        elif await self.runtime.db.run(
            partial(self._abandon, run_id=row.id, attempt=row.attempt, before=stale_before)
        ):
            metrics.JOB_RUNS.labels(job=row.job_name, status="abandoned").inc()
            log.warning("job.abandoned", job=row.job_name, run_id=row.id, attempt=row.attempt)
            return "abandoned"
        else:
            return "left"
        return "retried" if ran is not None else "left"

    @staticmethod
    async def _abandon(session: Any, *, run_id: int, attempt: int, before: datetime) -> int:
        """A lost run that will not be run again. A lapsed one's last renewal becomes its
        end; an interrupted one keeps its end and its error."""
        result = await session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.attempt == attempt, _lost(before))
            .values(
                status="abandoned",
                finished_at=func.coalesce(JobRun.finished_at, JobRun.heartbeat_at),
                error=func.coalesce(
                    JobRun.error,
                    "abandoned: the process running it stopped renewing its lease "
                    "(finished_at is its last renewal)",
                ),
            )
        )
        return int(result.rowcount or 0)

    async def run(
        self, name: str, *, scheduled_for: datetime | None = None, trigger: str = "manual"
    ) -> int | None:
        """Claim the slot and run the job; returns the run id, or None if the slot was taken.
        A failing job is recorded as failed, not raised to the scheduler; a cancelled one is
        recorded as interrupted, and the cancellation goes on."""
        spec = _spec(name)
        lease = await self.claim(name, scheduled_for or self.clock(), trigger)
        if lease is None:
            return None
        await self._execute(spec, lease)
        return lease.run_id

    async def queue(self, name: str) -> int | None:
        """Record a manual run of `name` as `queued`, for a worker to start (`run_queued`);
        None if this very instant's slot is taken. Until a worker starts it, its
        `started_at` and `heartbeat_at` say when it was queued: one that no worker started
        within a lease is started by `recover()` instead."""
        _spec(name)

        async def insert(session: Any) -> int:
            now = self.clock()
            run = JobRun(
                job_name=name,
                scheduled_for=now,
                trigger="manual",
                status="queued",
                started_at=now,
                heartbeat_at=now,
                attempt=1,
            )
            session.add(run)
            await session.flush()
            return run.id

        try:
            return await self.runtime.db.run(insert)
        except IntegrityError:
            # The unique (job, slot) row says another run took this instant: the caller
            # answers 409 and the client retries, so it is logged, not raised.
            log.info("job.manual_slot_taken", job=name)
            return None

    async def run_queued(self, run_id: int) -> int | None:
        """Start the queued manual run `run_id` and run it; None if it is not queued any
        more (another worker, or recovery, started it)."""

        async def start(session: Any) -> Any:
            now = self.clock()
            started = await session.execute(
                update(JobRun)
                .where(JobRun.id == run_id, JobRun.status == "queued")
                .values(status="running", started_at=now, heartbeat_at=now)
            )
            if started.rowcount != 1:
                return None
            query = select(JobRun.job_name, JobRun.attempt).where(JobRun.id == run_id)
            return (await session.execute(query)).one()

        row = await self.runtime.db.run(start)
        if row is None:
            log.info("job.run_not_queued", run_id=run_id)
            return None
        await self._execute(_spec(row.job_name), Lease(run_id, row.attempt))
        return run_id

    async def _execute(self, spec: JobSpec, lease: Lease) -> None:
        """Run the job of a claimed lease, renewing the lease meanwhile, and record how the
        run ended."""
        name, run_id = spec.name, lease.run_id
        current = asyncio.current_task()
        if current is not None:
            self._active.add(current)
            current.add_done_callback(self._active.discard)
        work = asyncio.ensure_future(spec.function(self.runtime))
        keeper = asyncio.create_task(self._keep(name, lease, work), name=f"job-lease-{name}")
        started = time.perf_counter()
        status, error, counts = "succeeded", None, None
        try:
            counts = await work
        except asyncio.CancelledError:
            stopped_by_keeper = keeper.done() and not keeper.cancelled() and keeper.result()
            if not stopped_by_keeper or (current is not None and current.cancelling()):
                keeper.cancel()  # first, so that no renewal lands after the release
                await _to_the_end(asyncio.wait([keeper]))
                await self._release(name, lease)
                raise
            status = "lease_lost"  # the keeper stopped it: the other attempt's result stands
        except JobFailed as failure:
            status, error, counts = "failed", str(failure)[-4000:], failure.counts
            log.error("job.failed", job=name, run_id=run_id, error=str(failure), counts=counts)
        except Exception as failure:
            status, error = "failed", "".join(traceback.format_exception(failure))[-4000:]
            log.error("job.failed", job=name, run_id=run_id, exc_info=True)
        finally:
            keeper.cancel()
            await _to_the_end(asyncio.wait([keeper]))
        duration = int((time.perf_counter() - started) * 1000)
        if status != "lease_lost":
            status = await self._finish(name, lease, status, duration, error, counts)
        metrics.JOB_RUNS.labels(job=name, status=status).inc()
        # Interval jobs succeed every few seconds; their runs are in job_runs, not the log.
        quiet = spec.every_seconds is not None and status == "succeeded"
        (log.debug if quiet else log.info)(
            "job.finished", job=name, run_id=run_id, status=status, duration_ms=duration
        )

    async def _finish(
        self,
        name: str,
        lease: Lease,
        status: str,
        duration: int,
        error: str | None,
        counts: dict[str, Any] | None,
    ) -> str:
        """Record the end of a run; "lease_lost" if another runner took its slot over after
        this attempt ended (its attempt stands)."""

        async def finish(session: Any) -> int:
            now = self.clock()
            # The run's duration is what its row says it lasted (finished_at - started_at,
            # claim and bookkeeping included), not only the job function's own time.
            started_at = await session.scalar(
                select(JobRun.started_at).where(JobRun.id == lease.run_id)
            )
            elapsed = duration if started_at is None else _milliseconds(now - started_at)
            result = await session.execute(
                update(JobRun)
                .where(JobRun.id == lease.run_id, JobRun.attempt == lease.attempt)
                .values(
                    status=status,
                    finished_at=now,
                    heartbeat_at=now,
                    duration_ms=elapsed,
                    error=error,
                    counts=counts,
                )
            )
            return int(result.rowcount or 0)

        # A job that ran to its end is recorded even if its task is being stopped now
        # (otherwise its lapsed lease would have it run again).
        if await _to_the_end(self.runtime.db.run(finish)):
            return status
        log.error("job.lease_lost", job=name, run_id=lease.run_id, attempt=lease.attempt)
        return "lease_lost"

    async def run_scheduled(self, name: str) -> int | None:
        """Run the slot that is due now; a slot another runner claimed is skipped."""
        slot = REGISTRY[name].last_slot(self.clock() + timedelta(seconds=1), self.tz)
        return await self.run(name, scheduled_for=slot, trigger="schedule")

    async def run_slot(self, name: str, scheduled_for: datetime, trigger: str) -> int | None:
        """Run the slot a scheduler fired for (Celery beat sends it with the task), unless a
        newer slot of the job has come since: a message that waited in the queue past its
        job's next slot is coalesced into that one, as the embedded scheduler coalesces."""
        latest = _spec(name).last_slot(self.clock(), self.tz)
        if scheduled_for < latest:
            metrics.JOB_RUNS.labels(job=name, status="slot_passed").inc()
            log.info(
                "job.slot_passed",
                job=name,
                scheduled_for=scheduled_for.isoformat(),
                latest=latest.isoformat(),
            )
            return None
        return await self.run(name, scheduled_for=scheduled_for, trigger=trigger)

    async def catch_up(self) -> None:
        """Run, once, each job whose latest slot was missed within the grace window."""
        now = self.clock()
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
                # From the epoch, as `JobSpec.last_slot` counts: runs fall on the slots that
                # `GET /api/jobs` shows as next_run_at, not on multiples from the start.
                trigger = IntervalTrigger(
                    seconds=spec.every_seconds or 60, start_date=EPOCH, timezone=UTC
                )
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
            # Stop the runs in progress while the database is still there, so that each
            # frees its slot for the next process (`interrupted`) instead of holding it
            # until its lease lapses.
            for task in list(self._active):
                task.cancel()
            if self._active:
                await asyncio.wait(list(self._active), timeout=10)


def _milliseconds(span: timedelta) -> int:
    return max(0, round(span / timedelta(milliseconds=1)))
