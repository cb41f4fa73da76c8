"""What a running process holds: settings, the database, the realtime hub, writers.

One Runtime per process, built by app.py (or the CLI) and handed to routers through
`request.app.state.runtime` and to jobs as their context.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from redis.asyncio import Redis

from tallyhub.core.db import Database
from tallyhub.core.realtime import Hub
from tallyhub.settings import Settings

Extension = Callable[["Runtime"], AbstractAsyncContextManager[None]]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    hub: Hub
    redis: Redis | None = None
    secret_key: str = ""
    # Per-domain live objects (writers, caches), registered by the domain's lifespan.
    parts: dict[str, Any] = field(default_factory=dict)
    _stack: AsyncExitStack | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        db = Database(
            settings.database_url,
            pool_size=settings.pool.size,
            max_overflow=settings.pool.max_overflow,
            pool_timeout=settings.pool.timeout_seconds,
            echo=settings.pool.echo,
        )
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        return cls(
            settings=settings,
            db=db,
            hub=Hub(redis),
            redis=redis,
            secret_key=settings.resolved_secret_key(),
        )

    async def start(self, extensions: list[Extension]) -> None:
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        await self._stack.enter_async_context(self.hub.running())
        for extension in extensions:
            await self._stack.enter_async_context(extension(self))

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.__aexit__(None, None, None)
            self._stack = None
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
