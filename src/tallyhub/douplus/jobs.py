"""Scheduled jobs of the DOU+ domain (the seed's Celery beat, on the job registry).

Orders every 5 minutes, figures a minute after, the videos rollup a minute after that;
a full order sync nightly; and the syncs asked for (an account just connected, the sync
button) every minute and at once when asked. In Celery mode the order syncs go to queue
`douplus.orders` and the figures to `douplus.stats` (seed appendix C).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tallyhub.core.columns import utcnow
from tallyhub.core.jobs.celery_runner import send_queued_run
from tallyhub.core.jobs.registry import job
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime
from tallyhub.douplus import service
from tallyhub.douplus.wiring import DouplusParts, sync_context

ORDERS_QUEUE = "douplus.orders"
STATS_QUEUE = "douplus.stats"


@job(
    "douplus.sync_orders_incremental",
    cron="*/5 * * * *",
    queue=ORDERS_QUEUE,
    description="DOU+ orders of the last 7 days, and the state of unfinished ones",
)
async def sync_orders_incremental(runtime: Runtime) -> dict[str, Any]:
    async with sync_context(runtime) as ctx:
        return await service.sync_orders_of_all(ctx, "incremental")


@job(
    "douplus.sync_orders_full",
    cron="20 3 * * *",
    queue=ORDERS_QUEUE,
    description="DOU+ orders of the last 90 days, the whole list walked to its end",
)
async def sync_orders_full(runtime: Runtime) -> dict[str, Any]:
    async with sync_context(runtime) as ctx:
        return await service.sync_orders_of_all(ctx, "full")


@job(
    "douplus.sync_stats",
    cron="1-59/5 * * * *",
    queue=STATS_QUEUE,
    description="DOU+ order figures of the current 5-minute window",
)
async def sync_stats(runtime: Runtime) -> dict[str, Any]:
    async with sync_context(runtime) as ctx:
        return await service.sync_stats_of_all(ctx)


@job(
    "douplus.aggregate_videos",
    cron="2-59/5 * * * *",
    queue=STATS_QUEUE,
    description="DOU+ per-video rollup of the videos whose orders' figures moved",
)
async def aggregate_videos(runtime: Runtime) -> dict[str, Any]:
    return await service.aggregate_videos(runtime.db, utcnow())


@job(
    "douplus.sync_requested",
    every_seconds=60,
    queue=ORDERS_QUEUE,
    description="DOU+ syncs asked for: accounts just connected, the sync button",
)
async def sync_requested(runtime: Runtime) -> dict[str, Any]:
    async with sync_context(runtime) as ctx:
        return await service.sync_requested(ctx)


JOBS = (
    sync_orders_incremental,
    sync_orders_full,
    sync_stats,
    aggregate_videos,
    sync_requested,
)


async def start_requested(runtime: Runtime) -> int | None:
    """Start `douplus.sync_requested` now without waiting for it: on a Celery worker, or
    in this process's background. The run's id; None when this instant's run is taken
    (the requests stay for it, or for the next minute's run)."""
    runner = JobRunner(runtime)
    run_id = await runner.queue(sync_requested.name)
    if run_id is None:
        return None
    if runtime.settings.scheduler == "celery":
        await send_queued_run(runtime.settings, sync_requested.name, run_id)
        return run_id
    parts = runtime.part(DouplusParts)
    parts.keep(asyncio.create_task(runner.run_queued(run_id), name=f"douplus-sync-{run_id}"))
    return run_id


SYNC_MODES = ("full", "incremental")


async def sync_by_hand(
    runtime: Runtime, mode: str, account_id: int | None, progress: Callable[[int, int], None]
) -> dict[str, Any]:
    """`tallyhub sync douplus`: orders in `mode`, their figures and the videos rollup, of
    one account or every active one, here and now."""
    if mode not in SYNC_MODES:
        raise ValueError(f"mode must be one of {', '.join(SYNC_MODES)}, not {mode!r}")
    async with sync_context(runtime) as ctx:
        accounts = await service.active_accounts(ctx, None if account_id is None else [account_id])
        done = 0
        progress(done, len(accounts))

        def one_done(_account: int, _outcome: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            progress(done, len(accounts))

        return await service.sync_now(
            ctx, "full" if mode == "full" else "incremental", accounts, one_done
        )
