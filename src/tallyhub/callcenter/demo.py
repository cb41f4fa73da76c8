"""`make run`'s call-center days: the vendor simulator started inside `serve` (its time
following the wall clock, so today's records keep arriving), and the last ten days and
today synced in the background through the jobs themselves (so the job history shows
them), oldest first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from tallyhub.callcenter import simulator
from tallyhub.callcenter.config import CallcenterSettings
from tallyhub.core.columns import utcnow
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime
from tallyhub.core.simulation import SimClock, running

log = structlog.get_logger(__name__)

TICK_SECONDS = 30.0
FIRST_JOBS = (
    "callcenter.tasks_t10",
    "callcenter.records_t10",
    "callcenter.tasks_today",
    "callcenter.records_today",
)
_background: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def simulated(runtime: Runtime, settings: CallcenterSettings) -> AsyncIterator[str]:
    clock = SimClock()
    app = simulator.create_app(
        seed=3,
        records_per_day=settings.simulator_records_per_day,
        clock=clock,
        api_key=settings.api_key,
    )
    with running(app) as url:
        log.info("callcenter.simulator_started", url=url)
        ticking = asyncio.create_task(_follow_wall_clock(clock))
        try:
            yield url
        finally:
            ticking.cancel()
            for task in list(_background):
                task.cancel()
            await asyncio.gather(ticking, *_background, return_exceptions=True)


async def _follow_wall_clock(clock: SimClock) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        clock.set(utcnow())


async def fill(runtime: Runtime) -> None:
    """Run the first syncs in the background (serve answers meanwhile)."""

    async def run() -> None:
        runner = JobRunner(runtime)
        for name in FIRST_JOBS:
            await runner.run(name)

    task = asyncio.create_task(run(), name="callcenter-demo-fill")
    _background.add(task)
    task.add_done_callback(_background.discard)
