"""Core's own jobs: pruning the run history, and recovering the runs whose process
stopped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from tallyhub.core.columns import utcnow
from tallyhub.core.jobs.registry import job
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tallyhub.core.runtime import Runtime
from tallyhub.core.webhooks import jobs as webhook_jobs


@job(
    "core.prune_job_runs",
    cron="15 4 * * *",
    description="Delete finished job runs older than the kept history",
)
async def prune_job_runs(runtime: Runtime) -> dict[str, Any]:
    """Interval jobs (the click spool replay runs every 10 s) add thousands of rows a day."""
    cutoff = utcnow() - timedelta(days=runtime.settings.job_history_days)

    async def prune(session: Any) -> int:
        result = await session.execute(
            delete(JobRun).where(JobRun.started_at < cutoff, JobRun.status != "running")
        )
        return int(result.rowcount or 0)

    return {"deleted": await runtime.db.run(prune)}


@job(
    "core.recover_runs",
    every_seconds=30,
    description="Run again the latest slots whose process stopped; mark older ones abandoned",
)
async def recover_runs(runtime: Runtime) -> dict[str, Any]:
    """A process killed mid-run leaves its slot held until the lease lapses; one stopped
    at shutdown frees it at once. Either way some runner, this one or another process's,
    picks it up here within 30 s of that."""
    return await JobRunner(runtime).recover()


CORE_JOBS = (prune_job_runs, recover_runs, webhook_jobs.deliver)
