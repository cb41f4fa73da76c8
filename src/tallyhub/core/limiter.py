"""A failed-attempt limiter: refuses an address after too many failures in a window (sign-in,
activation codes). In-process by default; with Redis the count is shared by every process."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import NoReturn

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tallyhub.core import metrics
from tallyhub.core.errors import TooManyRequests, Unauthorized

log = structlog.get_logger(__name__)


# Decrement a count that is still there and above zero; leave anything else alone.
_TAKE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class FailureLimiter:
    """Refuses an address after `limit` failures within `window` seconds.

    In-process by default; with Redis the count is shared by every process."""

    def __init__(self, name: str, limit: int, window: int, redis: Redis | None = None) -> None:
        self.name, self.limit, self.window, self.redis = name, limit, window, redis
        self._local: dict[str, deque[float]] = {}

    async def check(self, address: str) -> None:
        if await self._count(address) >= self.limit:
            self._refuse()

    async def failed(self, address: str) -> None:
        metrics.AUTH_FAILURES.labels(kind=self.name).inc()
        await self._add(address)

    @asynccontextmanager
    async def attempt(self, address: str) -> AsyncIterator[None]:
        """Count an attempt before it is judged, so that attempts sent side by side cannot
        all pass the check before any of them has failed: at most `limit` are judged in a
        window. An attempt that is refused (Unauthorized) stays counted; one that succeeds,
        or ends in any other error, is taken back."""
        stamp = time.monotonic()
        if await self._add(address, stamp) > self.limit:
            await self._take_back(address, stamp)
            self._refuse()
        try:
            yield
        except Unauthorized:
            metrics.AUTH_FAILURES.labels(kind=self.name).inc()
            raise
        except BaseException:
            await self._take_back(address, stamp)
            raise
        await self._take_back(address, stamp)

    def _refuse(self) -> NoReturn:
        metrics.AUTH_FAILURES.labels(kind=f"{self.name}_throttled").inc()
        raise TooManyRequests(
            f"too many failed attempts from this address; retry in {self.window} s",
            headers={"Retry-After": str(self.window)},
        )

    def _key(self, address: str) -> str:
        return f"tallyhub:fail:{self.name}:{address}"

    async def _add(self, address: str, stamp: float | None = None) -> int:
        """Count one more attempt; the count in the window, this one included."""
        if self.redis is not None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(self._key(address))
                pipe.expire(self._key(address), self.window, nx=True)
                count, _ = await pipe.execute()
            return int(count)
        now = time.monotonic() if stamp is None else stamp
        hits = self._local.setdefault(address, deque())
        hits.append(now)
        self._trim(hits, now)
        return len(hits)

    async def _take_back(self, address: str, stamp: float) -> None:
        """Uncount the attempt made at `stamp`, if its window still holds it. Never below
        zero, and the key keeps its expiry: a DECR after the window ended would leave a
        negative count (extra guesses in the next window) that never expires."""
        if self.redis is not None:
            try:
                await self.redis.eval(_TAKE_BACK, 1, self._key(address))
            except RedisError:  # the attempt stays counted: the safe side
                log.warning("limiter.take_back_failed", limiter=self.name, exc_info=True)
            return
        hits = self._local.get(address)
        if hits is not None:
            with suppress(ValueError):  # already out of the window
                hits.remove(stamp)
            if not hits:
                del self._local[address]

    async def _count(self, address: str) -> int:
        if self.redis is not None:
            value = await self.redis.get(f"tallyhub:fail:{self.name}:{address}")
            return int(value or 0)
        hits = self._local.get(address)
        if not hits:
            return 0
        self._trim(hits, time.monotonic())
        return len(hits)

    def _trim(self, hits: deque[float], now: float) -> None:
        while hits and now - hits[0] > self.window:
            hits.popleft()
