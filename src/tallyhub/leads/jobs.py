"""Scheduled jobs of the leads domain."""

from __future__ import annotations

from typing import Any

from tallyhub.core.jobs import job
from tallyhub.core.recalibration import job_counts
from tallyhub.core.runtime import Runtime
from tallyhub.leads import service


@job(
    "leads.recalibrate",
    cron="0 3 * * *",
    description="Recompute all lead counters from the logs and correct drift",
)
async def recalibrate(runtime: Runtime) -> dict[str, Any]:
    run = await service.recalibrate(runtime.db, runtime.settings.leads.recalibration_chunk)
    return job_counts(run)
