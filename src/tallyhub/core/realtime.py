"""WebSocket fan-out: in-process by default, through Redis pub/sub when configured.

Publishers call `hub.publish(topic, message)` after commit. Each process delivers to its
own subscribers; with Redis every process receives every message, so a client connected
to any process sees changes made by all of them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tallyhub.core import metrics

log = structlog.get_logger(__name__)

CHANNEL_PREFIX = "tallyhub:rt:"


@dataclass(eq=False)
class Subscription:
    topic: str
    accept: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0

    def offer(self, message: dict[str, Any]) -> None:
        if not self.accept(message):
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A client that does not read cannot hold the publisher up; it misses updates and
            # the drop is counted. Figures are absolute, so the next message corrects it.
            self.dropped += 1
            metrics.WS_DROPPED.inc()


class Hub:
    def __init__(self, redis: Redis | None = None) -> None:
        self.redis = redis
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, topic: str, accept: Callable[[dict[str, Any]], bool]) -> Subscription:
        subscription = Subscription(topic, accept)
        self._subscribers.setdefault(topic, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.get(subscription.topic, set()).discard(subscription)

    def wanted(self, topic: str) -> bool:
        """Whether anyone may receive `topic` (with Redis, other processes may)."""
        return self.redis is not None or bool(self._subscribers.get(topic))

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        if self.redis is not None:
            await self.redis.publish(CHANNEL_PREFIX + topic, json.dumps(message, default=str))
        else:
            self._deliver(topic, message)

    def _deliver(self, topic: str, message: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(topic, ())):
            subscription.offer(message)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.redis is None:
            yield
            return
        task = asyncio.create_task(self._listen(), name="realtime-redis-listener")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        assert self.redis is not None
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                async for raw in pubsub.listen():
                    if raw.get("type") != "pmessage":
                        continue
                    channel = raw["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    self._deliver(channel.removeprefix(CHANNEL_PREFIX), json.loads(raw["data"]))
            except RedisError:
                log.error("realtime.redis_listener_failed", exc_info=True)
                metrics.REALTIME_ERRORS.inc()
                await asyncio.sleep(1)
