"""What the clicks domain builds at start-up (writer, spool, campaign cache, recorder,
tracker), and typed access to it for the API and the jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import service
from tallyhub.clicks.config import clicks_settings
from tallyhub.clicks.service.recording import count_error
from tallyhub.clicks.track import Tracker
from tallyhub.core.batching import BatchWriter
from tallyhub.core.cache import OnceWindow
from tallyhub.core.runtime import Runtime

TOPIC = "clicks.campaigns"  # hub topic: a campaign's settings changed


@dataclass(frozen=True)
class ClickParts:
    writer: BatchWriter[service.ClickEvent, str]
    spool: service.ClickSpool
    rules: service.CampaignRules
    recorder: service.ClickRecorder
    tracker: Tracker


def parts(runtime: Runtime) -> ClickParts:
    """The parts of a process that serves HTTP (its lifespan started them)."""
    return runtime.part(ClickParts)


def serving_parts(runtime: Runtime) -> ClickParts | None:
    """The parts if this process serves HTTP; None in a job worker, which has none."""
    return runtime.find(ClickParts)


def _build(runtime: Runtime) -> ClickParts:
    settings = clicks_settings(runtime.settings)
    known = service.KnownRows()

    async def apply(session: AsyncSession, events: Sequence[service.ClickEvent]) -> Any:
        return await service.apply_clicks(
            session, events, known=known, may_be_recorded=recorder.may_be_recorded
        )

    writer: BatchWriter[service.ClickEvent, str] = BatchWriter.from_settings(
        "clicks", runtime.db, apply, settings.batching
    )
    spool = service.ClickSpool(
        service.spool_directory(runtime.settings.var_dir),
        flush_ms=settings.spool.flush_ms,
        rotate_seconds=settings.spool.rotate_seconds,
    )
    recorder = service.ClickRecorder(
        writer,
        spool,
        commit_timeout_ms=settings.commit_timeout_ms,
        breaker_seconds=settings.spool.breaker_seconds,
    )
    rules = service.CampaignRules(runtime.db, settings.campaign_cache_seconds)
    dedup = OnceWindow(
        "clicks.dedup",
        settings.dedup_window_ms,
        runtime.redis,
        on_backend_error=lambda error: count_error("dedup", error),
    )
    tracker = Tracker(rules, dedup, recorder, service.link_key(runtime.secret_key))
    return ClickParts(writer, spool, rules, recorder, tracker)


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Start the click writer, the spool and the campaign cache; drain on shutdown."""
    built = _build(runtime)
    runtime.provide(built)
    subscription = runtime.hub.subscribe(TOPIC, lambda _: True)

    async def invalidate() -> None:
        while True:
            message = await subscription.queue.get()
            built.rules.invalidate(int(message["campaign_id"]))

    invalidator = asyncio.create_task(invalidate(), name="clicks-campaign-invalidation")
    await built.spool.start()
    await built.writer.start()
    try:
        yield
    finally:
        invalidator.cancel()
        with suppress(asyncio.CancelledError):
            await invalidator
        runtime.hub.unsubscribe(subscription)
        await built.writer.stop()  # clicks already submitted commit (or go to the spool)
        await built.spool.stop()
