"""What the DOU+ domain builds at start-up: where its upstream is (the simulator's address
when `TALLYHUB_DOUPLUS__SIMULATOR` starts one in-process), the syncs it started in the
background, and the sync context every job and sync command works in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from tallyhub.core.runtime import Runtime
from tallyhub.douplus.client import DouplusClient
from tallyhub.douplus.config import DouplusSettings, douplus_settings
from tallyhub.douplus.service import SyncContext

log = structlog.get_logger(__name__)


@dataclass
class DouplusParts:
    base_url: str
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a background sync until it ends (and let shutdown wait for it)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def base_url(runtime: Runtime, settings: DouplusSettings) -> str:
    parts = runtime.find(DouplusParts)
    return parts.base_url if parts is not None else settings.base_url


@asynccontextmanager
async def sync_context(runtime: Runtime) -> AsyncIterator[SyncContext]:
    """A sync's context: its own client (closed after), the database, the secret box."""
    settings = douplus_settings(runtime.settings)
    async with DouplusClient(settings, base_url=base_url(runtime, settings)) as client:
        yield SyncContext(runtime.db, runtime.secret_box(), client, settings)


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    settings = douplus_settings(runtime.settings)
    if settings.simulator:
        from tallyhub.douplus import demo  # the simulator: only when asked for

        async with demo.simulated_upstream(runtime, settings) as url:
            parts = DouplusParts(url)
            runtime.provide(parts)
            await demo.connect_simulated_accounts(runtime, url)
            async with _draining(parts):
                yield
        return
    parts = DouplusParts(settings.base_url)
    runtime.provide(parts)
    async with _draining(parts):
        yield


@asynccontextmanager
async def _draining(parts: DouplusParts) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for task in list(parts.background):
            task.cancel()  # its run is recorded interrupted, and run again on recovery
        if parts.background:
            await asyncio.wait(list(parts.background), timeout=10)
