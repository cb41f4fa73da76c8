"""WebSocket fan-out: in-process by default, through Redis pub/sub when configured, and
`push_topic()`, the loop that serves one browser's WebSocket for any domain.

Publishers call `hub.publish(topic, message)` after commit. Each process delivers to its
own subscribers; with Redis every process receives every message, so a client connected
to any process sees changes made by all of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import WebSocket
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from tallyhub.core import metrics
from tallyhub.core.auth import Principal, SocketCredential
from tallyhub.core.errors import Unauthorized

if TYPE_CHECKING:
    from tallyhub.core.runtime import Runtime

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


# ---------------------------------------------------------------- pushing to a browser


async def push_topic(websocket: WebSocket, token: str, topic: str) -> None:
    """Serve one WebSocket: sign it in (cookie or `token`), then forward each message of
    `topic` whose `owner_id` the user may see (without that field), until the client
    leaves or the sign-in no longer holds (closed with 4401)."""
    runtime: Runtime = websocket.app.state.runtime
    try:
        credential = SocketCredential.of(websocket, token)
        async with runtime.db.transaction(readonly=True) as session:
            principal = await credential.principal(session, runtime.secret_key)
    except Unauthorized as refused:
        await websocket.close(code=4401, reason=refused.message)
        return
    await websocket.accept()
    subscription = runtime.hub.subscribe(topic, lambda m: principal.owns(m.get("owner_id")))
    metrics.WS_CONNECTIONS.inc()
    tasks = (
        asyncio.create_task(_receive(websocket)),
        asyncio.create_task(_forward(websocket, subscription)),
        asyncio.create_task(_recheck(runtime, credential, principal)),
    )
    try:
        await _until_one_ends(websocket, *tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        runtime.hub.unsubscribe(subscription)
        metrics.WS_CONNECTIONS.dec()


async def _receive(websocket: WebSocket) -> None:
    with suppress(WebSocketDisconnect):  # the client leaving is the normal end
        while True:
            await websocket.receive_text()


async def _forward(websocket: WebSocket, subscription: Subscription) -> None:
    while True:
        message = await subscription.queue.get()
        await websocket.send_text(json.dumps({k: v for k, v in message.items() if k != "owner_id"}))


async def _recheck(runtime: Runtime, credential: SocketCredential, principal: Principal) -> str:
    """Why the sign-in no longer holds (the token expired, the user was disabled, or the
    account changed), once it doesn't: checked every recheck interval, and at the token's
    expiry if that comes first."""
    interval = runtime.settings.auth.socket_recheck_seconds
    while True:
        left = credential.expires_at - time.time()
        await asyncio.sleep(max(0.0, min(interval, left + 0.05)))
        try:
            async with runtime.db.transaction(readonly=True) as session:
                now = await credential.principal(session, runtime.secret_key)
        except Unauthorized as ended:
            return ended.message
        except Exception:  # the database out of reach: keep the socket, try again
            log.warning("ws.recheck_failed", exc_info=True)
            continue
        if now != principal:
            return "the account changed; reconnect"


async def _until_one_ends(
    websocket: WebSocket,
    receiver: asyncio.Task[None],
    sender: asyncio.Task[None],
    checker: asyncio.Task[str],
) -> None:
    done, _ = await asyncio.wait((receiver, sender, checker), return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task.exception() is not None:
            log.error("ws.failed", exc_info=task.exception())
    if checker in done and checker.exception() is None:
        # Closed here only, after receiving and sending have stopped: the client signs in
        # or reconnects anew.
        receiver.cancel()
        sender.cancel()
        await asyncio.gather(receiver, sender, return_exceptions=True)
        await websocket.close(code=4401, reason=checker.result())
