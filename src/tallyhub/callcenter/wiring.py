"""What the call-center domain builds at start-up: where the vendor is (the simulator's
address when `TALLYHUB_CALLCENTER__SIMULATOR` starts one in-process), the single flight
that makes two refreshes of one day compute once, and the sync context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tallyhub.callcenter.client import CallcenterClient
from tallyhub.callcenter.config import callcenter_settings
from tallyhub.callcenter.service import SyncContext
from tallyhub.core.runtime import Runtime
from tallyhub.core.singleflight import SingleFlight


@dataclass
class CallcenterParts:
    base_url: str
    flights: SingleFlight = field(default_factory=SingleFlight)


def parts(runtime: Runtime) -> CallcenterParts:
    found = runtime.find(CallcenterParts)
    if found is None:  # a CLI or worker process: its own, for this process
        found = CallcenterParts(callcenter_settings(runtime.settings).base_url)
        runtime.provide(found)
    return found


@asynccontextmanager
async def sync_context(runtime: Runtime) -> AsyncIterator[SyncContext]:
    settings = callcenter_settings(runtime.settings)
    async with CallcenterClient(settings, base_url=parts(runtime).base_url) as client:
        yield SyncContext(runtime.db, client)


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    settings = callcenter_settings(runtime.settings)
    if not settings.simulator:
        runtime.provide(CallcenterParts(settings.base_url))
        yield
        return
    from tallyhub.callcenter import demo  # the simulator: only when asked for

    async with demo.simulated(runtime, settings) as url:
        runtime.provide(CallcenterParts(url))
        await demo.fill(runtime)
        yield
