"""Scheduled jobs of the clicks domain."""

from __future__ import annotations

from typing import Any

from tallyhub.clicks import service
from tallyhub.clicks.api import RECORDER, SPOOL
from tallyhub.clicks.service.recording import TRACK_REPLAYED
from tallyhub.core.jobs import job
from tallyhub.core.recalibration import job_counts
from tallyhub.core.runtime import Runtime


@job(
    "clicks.replay_spool",
    every_seconds=10,
    description="Apply clicks spooled while the database was unreachable (idempotent)",
)
async def replay_spool(runtime: Runtime) -> dict[str, Any]:
    # The API lifespan registers the live spool and recorder; a Celery worker has neither.
    own: service.ClickSpool | None = runtime.parts.get(SPOOL)
    counts = await service.replay_spool(
        runtime.db,
        service.spool_directory(runtime.settings.var_dir),
        chunk_size=runtime.settings.clicks.spool.replay_chunk,
        own=own,
        on_event=lambda outcome: TRACK_REPLAYED.labels(outcome=outcome).inc(),
    )
    recorder: service.ClickRecorder | None = runtime.parts.get(RECORDER)
    if recorder is not None:
        recorder.reset()  # the database answered: stop spooling straight away
    return counts


@job(
    "clicks.recalibrate",
    cron="30 3 * * *",
    description="Recompute click counters, summaries and tag sets from the logs; fix drift",
)
async def recalibrate(runtime: Runtime) -> dict[str, Any]:
    run = await service.recalibrate(runtime.db, runtime.settings.clicks.recalibration_chunk)
    return job_counts(run)
