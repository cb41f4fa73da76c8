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
    description="Apply the clicks spooled in this host's var/ now (idempotent)",
)
async def replay_spool(runtime: Runtime) -> dict[str, Any]:
    """Every serving process replays its own spool in a loop of its own (wiring.py),
    whatever the scheduler. This job stays for a replay by hand (`tallyhub jobs run
    clicks.replay_spool` on a host whose server is gone, or from the API), and where it
    runs on schedule it replays what lies in that host's var/: nothing, on a worker host
    that serves no clicks."""
    serving = wiring.serving_parts(runtime)
    if serving is not None:
        return await wiring.replay_once(runtime, serving)
    return await service.replay_spool(
        runtime.db,
        service.spool_directory(runtime.settings.var_dir),
        chunk_size=clicks_settings(runtime.settings).spool.replay_chunk,
        on_event=lambda outcome: TRACK_REPLAYED.labels(outcome=outcome).inc(),
        classifier=wiring.classifier_of(runtime),
    )


@job(
    "clicks.fold_breakdowns",
    every_seconds=60,
    description="Fold the click batches' breakdown deltas into the per-day breakdown rows",
)
async def fold_breakdowns(runtime: Runtime) -> dict[str, Any]:
    """Every serving process folds every few seconds (wiring.py); this job is for a fold
    by hand, and folds on schedule where no server runs (clicks replayed by a worker)."""
    return await service.fold_breakdowns(runtime.db)


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

JOBS = (replay_spool, fold_breakdowns, recalibrate)
