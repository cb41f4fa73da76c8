"""What the task-rollup domain works with: the video-statistics client (its own per scan,
closed after) and the scan's context; and where the demo's simulator and receiver are
when `make run` starts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tallyhub.core.runtime import Runtime
from tallyhub.taskstats.client import VideoStatsClient
from tallyhub.taskstats.config import TaskstatsSettings, taskstats_settings
from tallyhub.taskstats.service import ScanContext


@dataclass(frozen=True)
class TaskstatsParts:
    """The settings this process runs with (the demo points them at its simulator)."""

    settings: TaskstatsSettings


def settings_of(runtime: Runtime) -> TaskstatsSettings:
    parts = runtime.find(TaskstatsParts)
    return parts.settings if parts is not None else taskstats_settings(runtime.settings)


@asynccontextmanager
async def scan_context(runtime: Runtime) -> AsyncIterator[ScanContext]:
    settings = settings_of(runtime)
    async with VideoStatsClient(settings) as client:
        yield ScanContext(runtime.db, runtime.secret_box(), client, settings.site_name)


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    settings = taskstats_settings(runtime.settings)
    if not settings.simulator:
        runtime.provide(TaskstatsParts(settings))
        yield
        return
    from tallyhub.taskstats import demo  # the simulator and receiver: only when asked for

    async with demo.simulated(runtime, settings) as simulated:
        runtime.provide(TaskstatsParts(simulated))
        await demo.scan_yesterday(runtime)
        yield
