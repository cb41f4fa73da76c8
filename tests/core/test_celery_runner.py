"""The Celery runner: a real worker on the Redis broker runs a registered job, and the
run is recorded in job_runs through the same slot claim as the embedded runner."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from tallyhub.core.db import Database
from tallyhub.core.jobs.celery_runner import TASK, celery_app
from tallyhub.core.jobs.registry import REGISTRY, job
from tallyhub.core.jobs.runner import JobRun
from tallyhub.core.runtime import Runtime
from tests.conftest import TestDatabase, make_settings, unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def counted_job() -> Iterator[list[str]]:
    calls: list[str] = []

    @job("test.celery_counted", every_seconds=3600)
    async def counted(runtime: Runtime) -> dict[str, Any]:
        calls.append(runtime.settings.database_url)
        return {"calls": len(calls)}

    REGISTRY.add(counted)

    yield calls
    REGISTRY.pop("test.celery_counted", None)


def _redis_or_unavailable() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unavailable(f"Redis unreachable at {REDIS_URL}: {error!r}")


async def test_worker_runs_a_job_once_per_slot(
    test_db: TestDatabase, tmp_path: Path, counted_job: list[str]
) -> None:
    _redis_or_unavailable()
    settings = make_settings(test_db.url, tmp_path, redis_url=REDIS_URL, scheduler="celery")
    app = celery_app(settings)
    queue = f"tallyhub-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    assert "test.celery_counted" in app.conf.beat_schedule

    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
        # Two deliveries of the same scheduled slot (two beats, say): one run.
        app.send_task(TASK, args=["test.celery_counted"], queue=queue)
        app.send_task(TASK, args=["test.celery_counted"], queue=queue)
        db = Database(test_db.url)
        try:
            runs: list[JobRun] = []
            for _ in range(100):
                async with db.transaction(readonly=True) as session:
                    runs = list(
                        await session.scalars(
                            select(JobRun).where(JobRun.job_name == "test.celery_counted")
                        )
                    )
                if runs and all(r.status != "running" for r in runs) and len(counted_job) >= 1:
                    await asyncio.sleep(0.3)  # give a second (wrong) run the chance to show
                    async with db.transaction(readonly=True) as session:
                        runs = list(
                            await session.scalars(
                                select(JobRun).where(JobRun.job_name == "test.celery_counted")
                            )
                        )
                    break
                await asyncio.sleep(0.1)
        finally:
            await db.dispose()

    assert len(runs) == 1
    assert runs[0].status == "succeeded"
    assert runs[0].trigger == "schedule"
    assert runs[0].counts == {"calls": 1}
    assert counted_job == [test_db.url]


def test_celery_needs_a_broker(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite:///x.db", tmp_path, scheduler="celery")
    with pytest.raises(RuntimeError, match="TALLYHUB_REDIS_URL"):
        celery_app(settings)
