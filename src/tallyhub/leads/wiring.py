"""What the leads domain builds at start-up (the incoming writer, the activation-code
gate and its limiter), and typed access to it for the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.batching import BatchWriter
from tallyhub.core.limiter import FailureLimiter
from tallyhub.core.runtime import Runtime
from tallyhub.leads import schemas, service
from tallyhub.leads.config import leads_settings


@dataclass(frozen=True)
class LeadParts:
    writer: BatchWriter[service.IncomingEvent, schemas.IncomingResult]
    gate: service.CodeGate
    commit_timeout: float  # seconds a request waits for its leads' commit


def parts(runtime: Runtime) -> LeadParts:
    return runtime.part(LeadParts)


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Start the group-commit writer for incoming leads; drain it on shutdown."""
    hub = runtime.hub

    async def apply(session: AsyncSession, events: Sequence[service.IncomingEvent]) -> Any:
        return await service.apply_incoming(session, hub, events)

    settings = leads_settings(runtime.settings)
    writer: BatchWriter[service.IncomingEvent, schemas.IncomingResult] = BatchWriter.from_settings(
        "leads.incoming", runtime.db, apply, settings.batching
    )
    auth = runtime.settings.auth
    limiter = FailureLimiter(
        "activation_code", auth.failed_code_limit, auth.failed_code_window_seconds, runtime.redis
    )
    gate = service.CodeGate(runtime.db, limiter, cache_seconds=settings.code_cache_seconds)
    runtime.provide(LeadParts(writer, gate, settings.commit_timeout_ms / 1000))
    await writer.start()
    try:
        yield
    finally:
        await writer.stop()
