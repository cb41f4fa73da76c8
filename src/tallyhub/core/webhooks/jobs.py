"""The deliverer: `webhooks.deliver` every 5 s (whichever runner runs jobs), and in a
process that runs the embedded scheduler, a deliverer woken by each commit that enqueued
messages, so the first attempt goes out at once rather than within 5 s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog

from tallyhub.core.jobs.registry import job
from tallyhub.core.runtime import Runtime
from tallyhub.core.webhooks.delivery import deliver_due
from tallyhub.core.webhooks.outbox import WAKE

log = structlog.get_logger(__name__)


# Its own Celery queue: a 5-second job must not keep a default-queue worker busy (with
# a slow database its runs would follow one another and starve every other job there).
QUEUE = "webhooks"


@job(
    "webhooks.deliver",
    every_seconds=5,
    queue=QUEUE,
    description="Send the webhook deliveries that are due",
)
async def deliver(runtime: Runtime) -> dict[str, Any]:
    return await deliver_due(runtime.db, runtime.secret_box())


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """The on-commit deliverer (embedded scheduler only: elsewhere the job is the way)."""
    if runtime.settings.scheduler != "embedded":
        yield
        return
    woken = asyncio.Event()
    task = asyncio.create_task(_deliver_when_woken(runtime, woken), name="webhooks-on-commit")
    WAKE.append(woken.set)
    try:
        yield
    finally:
        WAKE.remove(woken.set)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _deliver_when_woken(runtime: Runtime, woken: asyncio.Event) -> None:
    while True:
        await woken.wait()
        woken.clear()
        try:
            await deliver_due(runtime.db, runtime.secret_box())
        except Exception:
            # What was not sent stays due: the 5-s job sends it. Logged, counted by the
            # job's own metrics when it runs, and this loop goes on waiting.
            log.error("webhooks.on_commit_failed", exc_info=True)
