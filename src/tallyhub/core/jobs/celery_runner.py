"""The Celery runner for jobs: `tallyhub beat` schedules every registered job, `tallyhub
worker` runs them. Each run claims its slot in `job_runs` exactly as the embedded runner
does, so running both, or several beats, still runs a slot once (again only if the
process running it died: `core.recover_runs`).

Beat fires each job on the slots `JobSpec` counts (cron in the configured time zone,
intervals from the epoch), the ones `GET /api/jobs` shows as `next_run_at`, and sends
the slot it fired for with the task: the worker records and claims that slot, whatever
its own clock says. At start, beat sends once each job's latest slot if it was missed by
at most `TALLYHUB_JOB_GRACE_SECONDS` (the catch-up; a slot that ran already is not run
again). A manual run from the API is queued here too, as a `queued` row the worker starts.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery import Celery
from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import BaseSchedule, schedstate
from kombu.exceptions import OperationalError

from tallyhub.core import metrics
from tallyhub.core.config import CoreSettings
from tallyhub.core.jobs.registry import REGISTRY, JobSpec
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)

TASK = "tallyhub.run_job"
# Beat wakes 10 ms ahead of what a schedule asks (Celery's drift); asking this much later
# wakes it just after the slot instead of spinning on "not yet" for those 10 ms.
_WAKE_AFTER_SLOT = 0.02


def _utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


class SlotSchedule(BaseSchedule):
    """A job's schedule as beat sees it: due once each slot of its `JobSpec` has come."""

    def __init__(self, job_name: str, tz: str, nowfun: Any = None, app: Any = None) -> None:
        super().__init__(nowfun=nowfun, app=app)
        self.job_name = job_name
        self.zone_name = tz

    @property
    def spec(self) -> JobSpec:
        return REGISTRY[self.job_name]

    def due_slot(self, last_run_at: datetime) -> tuple[datetime | None, float]:
        """The slot due now (the latest one, if it came after `last_run_at`), and the
        seconds until the next one."""
        now = _utc(self.now())
        slot = self.spec.last_slot(now, self.zone_name)
        until_next = (self.spec.next_slot(now, self.zone_name) - now).total_seconds()
        due = slot if slot > _utc(last_run_at) else None
        return due, max(until_next, 0.0) + _WAKE_AFTER_SLOT

    def is_due(self, last_run_at: datetime) -> Any:
        slot, until_next = self.due_slot(last_run_at)
        return schedstate(slot is not None, until_next)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return timedelta(seconds=self.due_slot(last_run_at)[1])

    def __reduce__(self) -> tuple[Any, ...]:  # stored in beat's schedule file
        return (self.__class__, (self.job_name, self.zone_name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SlotSchedule):
            return NotImplemented
        return (self.job_name, self.zone_name) == (other.job_name, other.zone_name)

    def __hash__(self) -> int:
        return hash((self.job_name, self.zone_name))

    def __repr__(self) -> str:
        return f"<slots of {self.job_name}: {self.spec.schedule} ({self.zone_name})>"


class SlotScheduler(PersistentScheduler):
    """Celery beat's scheduler for jobs: sends each task with the slot it fired for, and
    catches up at start. Its file (`TALLYHUB_BEAT_SCHEDULE_FILE`) is Celery's bookkeeping
    only: which slots ran is in `job_runs`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._due: dict[str, datetime] = {}
        self._caught_up = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        # A slot missed while beat was down is the catch-up's (within the grace only),
        # not a due entry's (however old).
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self.sync()

    def is_due(self, entry: ScheduleEntry) -> Any:
        if not isinstance(entry.schedule, SlotSchedule):
            return super().is_due(entry)
        slot, until_next = entry.schedule.due_slot(entry.last_run_at)
        if slot is not None:
            self._due[entry.name] = slot  # sent by apply_async, which comes next
        return schedstate(slot is not None, until_next)

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if not isinstance(entry.schedule, SlotSchedule):
            return super().apply_async(entry, producer, advance, **kwargs)
        slot = self._due.pop(entry.name, None)
        if slot is None:  # sent without a tick (by hand): the slot due now
            slot = entry.schedule.spec.last_slot(_utc(self.app.now()), entry.schedule.zone_name)
        if advance:
            entry = self.reserve(entry)
        sent = copy.copy(entry)  # the stored entry keeps its own kwargs
        sent.kwargs = {**entry.kwargs, "scheduled_for": slot.isoformat()}
        return super().apply_async(sent, producer, False, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> Any:
        if not self._caught_up:
            self._caught_up = self._catch_up()
        return super().tick(*args, **kwargs)

    def _catch_up(self) -> bool:
        """Send once each job's latest slot that was missed within the grace; False if
        the broker could not take them (tried again at the next tick)."""
        now = _utc(self.app.now())
        grace = timedelta(seconds=self.app.conf.tallyhub_job_grace_seconds)
        missed = [
            (entry.schedule.job_name, entry.schedule.spec.last_slot(now, entry.schedule.zone_name))
            for entry in self.schedule.values()
            if isinstance(entry.schedule, SlotSchedule)
        ]
        try:
            for name, slot in missed:
                if now - slot <= grace:
                    self.send_task(
                        TASK,
                        args=[name],
                        kwargs={"scheduled_for": slot.isoformat(), "trigger": "catchup"},
                        queue=queue_of(name, self.app.conf.task_default_queue),
                        producer=self.producer,
                    )
                    log.info("job.catch_up_sent", job=name, scheduled_for=slot.isoformat())
        except OperationalError:
            metrics.JOB_RUNS.labels(job="*", status="catch_up_not_sent").inc()
            log.error("job.catch_up_not_sent", exc_info=True)
            return False
        return True


async def _run(
    settings: CoreSettings,
    name: str,
    scheduled_for: str | None,
    trigger: str,
    run_id: int | None,
) -> int | None:
    runtime = Runtime.build(settings)
    try:
        runner = JobRunner(runtime)
        if run_id is not None:
            return await runner.run_queued(run_id)
        if scheduled_for is None:  # sent by the beat of an earlier release: the slot due now
            return await runner.run_scheduled(name)
        return await runner.run_slot(name, datetime.fromisoformat(scheduled_for), trigger)
    finally:
        await runtime.stop()


def queue_of(name: str, default: str) -> str:
    """The queue a job's runs go to: its own (`JobSpec.queue`), else the default one."""
    spec = REGISTRY.get(name)
    return spec.queue if spec is not None and spec.queue else default


def celery_app(settings: CoreSettings) -> Celery:
    if not settings.redis_url:
        raise RuntimeError("TALLYHUB_SCHEDULER=celery needs TALLYHUB_REDIS_URL (the broker)")
    app = Celery("tallyhub", broker=settings.redis_url)
    app.conf.update(
        timezone=settings.timezone,
        enable_utc=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.job_queue,
        # Our log lines keep their own level: not captured from stdout as WARNING lines.
        worker_redirect_stdouts=False,
        beat_scheduler=SlotScheduler,
        beat_schedule_filename=str(settings.resolved_beat_schedule_file()),
        beat_schedule={
            spec.name: {
                "task": TASK,
                "schedule": SlotSchedule(spec.name, settings.timezone),
                "args": [spec.name],
                "options": {"queue": queue_of(spec.name, settings.job_queue)},
            }
            for spec in REGISTRY.values()
        },
        tallyhub_job_grace_seconds=settings.job_grace_seconds,
    )

    @app.task(name=TASK, shared=False)
    def run_job(
        name: str,
        scheduled_for: str | None = None,
        trigger: str = "schedule",
        run_id: int | None = None,
    ) -> int | None:
        """Runs in a worker process: its own event loop and engine for the run."""
        return asyncio.run(_run(settings, name, scheduled_for, trigger, run_id))

    return app


def _send_queued(settings: CoreSettings, name: str, run_id: int) -> None:
    app = celery_app(settings)
    with app.connection_for_write() as connection:
        app.send_task(
            TASK,
            args=[name],
            kwargs={"run_id": run_id},
            connection=connection,
            queue=queue_of(name, settings.job_queue),
        )


async def send_queued_run(settings: CoreSettings, name: str, run_id: int) -> bool:
    """Put the queued manual run `run_id` on the workers' queue; False (logged) if the
    broker did not take it: the run stays `queued`, and `core.recover_runs` starts it
    once its lease has lapsed."""
    try:
        await asyncio.to_thread(_send_queued, settings, name, run_id)
    except OperationalError:
        metrics.JOB_RUNS.labels(job=name, status="not_queued").inc()
        log.error("job.not_queued", job=name, run_id=run_id, exc_info=True)
        return False
    return True
