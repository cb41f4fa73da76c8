"""What a running process holds: settings, the database, the realtime hub, and what each
domain built at start-up (its writers, spools, caches).

One Runtime per process, built by app.py (or the CLI) and handed to routers through
`request.app.state.runtime` and to jobs as their context. A domain's lifespan `provide()`s
one object of its own type (its parts); its `wiring.py` reads it back, typed, with `part()`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from redis.asyncio import Redis

from tallyhub.core.config import CoreSettings
from tallyhub.core.crypto import SecretBox, secret_box
from tallyhub.core.db import Database
from tallyhub.core.realtime import Hub

Extension = Callable[["Runtime"], AbstractAsyncContextManager[None]]
P = TypeVar("P")


@dataclass
class Runtime:
    settings: CoreSettings
    db: Database
    hub: Hub
    redis: Redis | None = None
    secret_key: str = ""
    # What the domains' lifespans built, one object per type (see `provide`).
    _parts: dict[type, Any] = field(default_factory=dict)
    _stack: AsyncExitStack | None = None
    _box: SecretBox | None = None

    @classmethod
    def build(cls, settings: CoreSettings) -> Runtime:
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

    def secret_box(self) -> SecretBox:
        """Encryption of stored third-party secrets (core/crypto.py), made on first use."""
        if self._box is None:
            self._box = secret_box(self.settings)
        return self._box

    def provide(self, parts: object) -> None:
        """Hold `parts` for this process, found again by its type."""
        self._parts[type(parts)] = parts

    def part(self, kind: type[P]) -> P:
        """What was provided of type `kind`; a KeyError names what was not started."""
        found: P | None = self._parts.get(kind)
        if found is None:
            raise KeyError(f"{kind.__name__} was not started in this process")
        return found

    def find(self, kind: type[P]) -> P | None:
        """What was provided of type `kind`, or None in a process that has none (a job
        worker has no HTTP-side parts)."""
        found: P | None = self._parts.get(kind)
        return found

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
