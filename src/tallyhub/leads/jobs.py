"""Scheduled jobs of the leads domain."""

from __future__ import annotations

from tallyhub.core.recalibration import RecalibrationRun, recalibration_job
from tallyhub.core.runtime import Runtime
from tallyhub.leads import service
from tallyhub.leads.config import leads_settings


async def recalibrate_now(runtime: Runtime) -> RecalibrationRun:
    return await service.recalibrate(
        runtime.db, leads_settings(runtime.settings).recalibration_chunk
    )


recalibrate = recalibration_job(
    "leads.recalibrate",
    recalibrate_now,
    cron="0 3 * * *",
    description="Recompute all lead counters from the logs and correct drift",
)

JOBS = (recalibrate,)
