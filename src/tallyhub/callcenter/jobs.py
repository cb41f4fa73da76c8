"""The seed's tiered schedule as jobs (server time zone): the last ten days each morning,
the last three four times a day, today hourly (task dimension) and every ten minutes
(call records) through the working day; and the nightly pruning of old days. A day that
fails does not stop the others; the run is recorded failed with each day's outcome, a
metric counts it, and an alert endpoint, when set, gets a signed `callcenter.sync_failed`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.callcenter import service
from tallyhub.callcenter.config import callcenter_settings
from tallyhub.callcenter.models import AgentDay, GradeStatsCache, HourDay, TaskStatsCache
from tallyhub.callcenter.wiring import parts, sync_context
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import zone
from tallyhub.core.jobs.registry import JobFailed, job
from tallyhub.core.runtime import Runtime
from tallyhub.core.upstream import SYNC_LAG, SYNC_LAST_SUCCESS, UpstreamError
from tallyhub.core.webhooks import enqueue, ensure_endpoint

log = structlog.get_logger(__name__)

SYNC_FAILURES = Counter(
    "callcenter_sync_failures_total", "Call-center days that failed to sync", ["kind"]
)
FAILURES = (UpstreamError, service.FewerRecords, SQLAlchemyError, httpx.HTTPError)
ALERT_EVENT = "callcenter.sync_failed"


def today(runtime: Runtime) -> date:
    return utcnow().astimezone(zone(runtime.settings.timezone)).date()


def days_back(runtime: Runtime, farthest: int) -> list[date]:
    """T-farthest … yesterday, oldest first."""
    now = today(runtime)
    return [now - timedelta(days=n) for n in range(farthest, 0, -1)]


async def sync_day(
    runtime: Runtime, kind: str, day: date, sync_type: str, *, accept_fewer: bool = False
) -> Any:
    """One day of one dimension, once per process at a time (a second caller gets the
    first's row)."""

    async def work() -> Any:
        async with sync_context(runtime) as ctx:
            if kind == "tasks":
                return await service.sync_tasks(ctx, day, sync_type)
            tz = zone(runtime.settings.timezone)
            return await service.sync_records(ctx, day, sync_type, tz, accept_fewer=accept_fewer)

    return await parts(runtime).flights.run((kind, day), work)


def configured(runtime: Runtime) -> bool:
    return bool(parts(runtime).base_url)


async def _sync_days(
    runtime: Runtime, kind: str, days: list[date], sync_type: str
) -> dict[str, Any]:
    if not configured(runtime):
        return {"days": 0, "skipped": "TALLYHUB_CALLCENTER__BASE_URL is not set"}
    outcomes: dict[str, Any] = {}
    for day in days:
        try:
            row = await sync_day(runtime, kind, day, sync_type)
        except FAILURES as error:
            outcomes[str(day)] = {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}"[:500],
            }
            await _failed(runtime, kind, day, sync_type, outcomes[str(day)]["error"])
            continue
        size = row.total_records if kind == "records" else row.total_tasks
        outcomes[str(day)] = {"status": "ok", kind: size, "elapsed_time": row.elapsed_time}
        SYNC_LAST_SUCCESS.labels("callcenter", f"{kind}_{sync_type}", "all").set(
            utcnow().timestamp()
        )
        SYNC_LAG.labels("callcenter", f"{kind}_{sync_type}", "all").set(0)
    failed = [d for d, o in outcomes.items() if o["status"] == "failed"]
    counts = {"days": len(days), "failed": len(failed), "by_day": outcomes}
    if failed:
        raise JobFailed(f"{kind} {sync_type}: {len(failed)} of {len(days)} days failed", counts)
    return counts


async def _failed(runtime: Runtime, kind: str, day: date, sync_type: str, error: str) -> None:
    SYNC_FAILURES.labels(kind).inc()
    log.error("callcenter.sync_failed", kind=kind, day=str(day), sync_type=sync_type, error=error)
    url = callcenter_settings(runtime.settings).alert_url
    if not url:
        return

    async def alert(session: AsyncSession) -> None:
        endpoint = await ensure_endpoint(
            session, runtime.secret_box(), url, None, "call-center alerts"
        )
        payload = {
            "event": ALERT_EVENT,
            "kind": kind,
            "date": day.isoformat(),
            "sync_type": sync_type,
            "error": error,
            "at": utcnow().isoformat(),
        }
        await enqueue(session, endpoints=[endpoint], event_type=ALERT_EVENT, payload=payload)

    await runtime.db.run(alert)


def _job(name: str, cron: str, kind: str, farthest: int | None, description: str) -> Any:
    sync_type = "today" if farthest is None else f"t{farthest}"

    async def run(runtime: Runtime) -> dict[str, Any]:
        days = [today(runtime)] if farthest is None else days_back(runtime, farthest)
        return await _sync_days(runtime, kind, days, sync_type)

    run.__name__ = name.replace(".", "_")
    return job(name, cron=cron, description=description)(run)


tasks_t10 = _job(
    "callcenter.tasks_t10", "0 7 * * *", "tasks", 10, "Call-center tasks, T-10 … yesterday"
)
records_t10 = _job(
    "callcenter.records_t10", "5 7 * * *", "records", 10, "Call records, T-10 … yesterday"
)
tasks_t3 = _job(
    "callcenter.tasks_t3", "0 1,10,15,21 * * *", "tasks", 3, "Call-center tasks, T-3 … yesterday"
)
records_t3 = _job(
    "callcenter.records_t3", "5 1,10,15,21 * * *", "records", 3, "Call records, T-3 … yesterday"
)
tasks_today = _job(
    "callcenter.tasks_today", "0 9-23 * * *", "tasks", None, "Call-center tasks, today"
)
records_today = _job(
    "callcenter.records_today", "*/10 9-23 * * *", "records", None, "Call records, today"
)


@job("callcenter.prune", cron="40 4 * * *", description="Delete call-center days past retention")
async def prune(runtime: Runtime) -> dict[str, Any]:
    cutoff = today(runtime) - timedelta(days=callcenter_settings(runtime.settings).retention_days)

    async def delete_old(session: AsyncSession) -> int:
        deleted = 0
        for model in (TaskStatsCache, GradeStatsCache, AgentDay, HourDay):
            result = await session.execute(delete(model).where(model.date < cutoff))
            deleted += int(getattr(result, "rowcount", 0) or 0)
        return deleted

    return {"before": cutoff.isoformat(), "deleted": await runtime.db.run(delete_old)}


JOBS = (tasks_t10, records_t10, tasks_t3, records_t3, tasks_today, records_today, prune)
