"""Scheduled jobs of the clicks domain."""

from __future__ import annotations

from typing import Any

from tallyhub.clicks import service, wiring
from tallyhub.clicks.config import clicks_settings
from tallyhub.clicks.service.recording import TRACK_REPLAYED
from tallyhub.core.jobs.registry import job
from tallyhub.core.recalibration import RecalibrationRun, recalibration_job
from tallyhub.core.runtime import Runtime


@job(
    "clicks.replay_spool",
    every_seconds=10,
    description="Apply clicks spooled while the database was unreachable (idempotent)",
)
async def replay_spool(runtime: Runtime) -> dict[str, Any]:
    # A serving process has a live spool and recorder; a Celery worker has neither.
    serving = wiring.serving_parts(runtime)
    counts = await service.replay_spool(
        runtime.db,
        service.spool_directory(runtime.settings.var_dir),
        chunk_size=clicks_settings(runtime.settings).spool.replay_chunk,
        own=serving.spool if serving is not None else None,
        on_event=lambda outcome: TRACK_REPLAYED.labels(outcome=outcome).inc(),
    )
    if serving is not None:
        serving.recorder.reset()  # the database answered: stop spooling straight away
    return counts


async def recalibrate_now(runtime: Runtime) -> RecalibrationRun:
    return await service.recalibrate(
        runtime.db, clicks_settings(runtime.settings).recalibration_chunk
    )


recalibrate = recalibration_job(
    "clicks.recalibrate",
    recalibrate_now,
    cron="30 3 * * *",
    description="Recompute click counters, summaries and tag sets from the logs; fix drift",
)

JOBS = (replay_spool, recalibrate)
