"""The Celery runner for jobs: `tallyhub beat` schedules every registered job, `tallyhub
worker` runs them. Each run claims its slot in `job_runs` exactly as the embedded runner
does, so running both, or several beats, still runs a slot once (again only if the
process running it died: `core.recover_runs`)."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery
from celery.schedules import crontab

from tallyhub.core.config import CoreSettings
from tallyhub.core.jobs.registry import REGISTRY, JobSpec
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime

TASK = "tallyhub.run_job"


def _schedule(spec: JobSpec, tz: str) -> Any:
    if spec.every_seconds:
        return float(spec.every_seconds)
    assert spec.cron is not None
    minute, hour, day_of_month, month_of_year, day_of_week = spec.cron.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


async def _run(settings: CoreSettings, name: str) -> int | None:
    runtime = Runtime.build(settings)
    try:
        return await JobRunner(runtime).run_scheduled(name)
    finally:
        await runtime.stop()


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
        beat_schedule={
            spec.name: {
                "task": TASK,
                "schedule": _schedule(spec, settings.timezone),
                "args": [spec.name],
            }
            for spec in REGISTRY.values()
        },
    )

    @app.task(name=TASK, shared=False)
    def run_job(name: str) -> int | None:
        """Runs in a worker process: its own event loop and engine for the run."""
        return asyncio.run(_run(settings, name))

    return app
