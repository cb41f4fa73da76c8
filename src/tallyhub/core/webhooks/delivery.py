"""Sending what the outbox holds. A deliverer takes due deliveries in one short
transaction (`FOR UPDATE SKIP LOCKED` where the database has it; SQLite has one writer)
and moves each a lease ahead, so no other deliverer takes it; it posts them signed, then
records each attempt and its consequence in a transaction of its own.

The schedule (Standard Webhooks'): at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h after each failure; 2xx is success, 410 disables the endpoint, anything else (3xx
too) is tried again, and after the last attempt the delivery has failed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.columns import utcnow
from tallyhub.core.crypto import SecretBox
from tallyhub.core.db import Database
from tallyhub.core.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from tallyhub.core.webhooks.outbox import OUTCOMES, Outcome
from tallyhub.core.webhooks.signing import sign

log = structlog.get_logger(__name__)

# Seconds before attempt n + 1 after attempt n failed (the first is at once).
SCHEDULE = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 15.0
BODY_LIMIT = 4096

ATTEMPTS = Counter("webhook_attempts_total", "Webhook delivery attempts, by outcome", ["outcome"])
FAILED = Counter("webhook_deliveries_failed_total", "Webhook deliveries that failed for good")
QUEUE_AGE = Gauge(
    "webhook_queue_age_seconds", "How long the oldest due webhook delivery has waited"
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Due:
    delivery_id: int
    attempt_count: int
    message_id: str
    payload: dict[str, Any]
    url: str
    secret: str  # encrypted


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    body: str | None
    duration_ms: int
    error: str | None


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes sent and signed: compact JSON, UTF-8, keys in the payload's order."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def claim(db: Database, now: datetime, limit: int) -> list[Due]:
    """Take up to `limit` due deliveries; each is moved a lease ahead before commit."""

    async def take(session: AsyncSession) -> list[Due]:
        ids = list(
            await session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(next_attempt_at=now + LEASE)
        )
        rows = await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.attempt_count,
                WebhookMessage.id,
                WebhookMessage.payload,
                WebhookEndpoint.url,
                WebhookEndpoint.secret,
            )
            .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(ids))
            .order_by(WebhookDelivery.id)
        )
        return [Due(*row) for row in rows]

    return await db.run(take)


async def send(http: httpx.AsyncClient, box: SecretBox, due: Due) -> Answer:
    body = body_of(due.payload)
    headers = sign(box.decrypt(due.secret), due.message_id, body)
    headers["content-type"] = "application/json"
    started = time.perf_counter()
    try:
        response = await http.post(due.url, content=body, headers=headers)
    except httpx.HTTPError as error:
        elapsed = int((time.perf_counter() - started) * 1000)
        return Answer(None, None, elapsed, f"{type(error).__name__}: {error}"[:1000])
    elapsed = int((time.perf_counter() - started) * 1000)
    return Answer(response.status_code, response.text[:BODY_LIMIT], elapsed, None)


def _verdict(answer: Answer, attempts: int) -> str:
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        return "succeeded"
    if code == 410:
        return "gone"
    return "failed" if attempts >= len(SCHEDULE) else "pending"


async def record(db: Database, due: Due, answer: Answer, now: datetime) -> str | None:
    """Record one attempt and what follows from it; None if another deliverer recorded
    this attempt already (its lease had passed)."""

    async def save(session: AsyncSession) -> str | None:
        delivery = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == due.delivery_id).with_for_update()
        )
        if delivery is None or delivery.attempt_count != due.attempt_count:
            return None
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=answer.status_code,
                response_body=answer.body,
                duration_ms=answer.duration_ms,
                error=answer.error,
            )
        )
        delivery.attempt_count += 1
        verdict = _verdict(answer, delivery.attempt_count)
        await _apply(session, delivery, verdict, answer, now)
        await _tell_sender(session, delivery, answer, now)
        return verdict

    return await db.run(save)


async def _apply(
    session: AsyncSession, delivery: WebhookDelivery, verdict: str, answer: Answer, now: datetime
) -> None:
    delivery.last_status_code = answer.status_code
    delivery.last_error = answer.error
    if verdict == "pending":
        delivery.next_attempt_at = now + timedelta(seconds=SCHEDULE[delivery.attempt_count])
        return
    delivery.status = "succeeded" if verdict == "succeeded" else "failed"
    delivery.next_attempt_at, delivery.finished_at = None, now
    if verdict == "gone":
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == delivery.endpoint_id)
            .values(enabled=False, disabled_reason=f"410 Gone at {now.isoformat()}", updated_at=now)
        )
    if delivery.status == "failed":
        FAILED.inc()
    await session.flush()
    await update_message_status(session, delivery.message_id)


async def update_message_status(session: AsyncSession, message_id: str) -> None:
    """A message is pending while one of its deliveries is, failed if one failed, else
    succeeded."""
    statuses = set(
        await session.scalars(
            select(WebhookDelivery.status).where(WebhookDelivery.message_id == message_id)
        )
    )
    status = (
        "pending" if "pending" in statuses else "failed" if "failed" in statuses else "succeeded"
    )
    await session.execute(
        update(WebhookMessage).where(WebhookMessage.id == message_id).values(status=status)
    )


async def _tell_sender(
    session: AsyncSession, delivery: WebhookDelivery, answer: Answer, now: datetime
) -> None:
    message = await session.get(WebhookMessage, delivery.message_id)
    if message is None or message.source not in OUTCOMES:
        return
    await OUTCOMES[message.source](
        session,
        Outcome(
            message=message,
            endpoint_id=delivery.endpoint_id,
            status=delivery.status,
            status_code=answer.status_code,
            response_body=answer.body or answer.error,
            attempted_at=now,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at,
        ),
    )


async def _queue_age(db: Database, now: datetime) -> None:
    async def oldest(session: AsyncSession) -> datetime | None:
        return await session.scalar(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now
            )
        )

    due_since = await db.run(oldest, readonly=True)
    QUEUE_AGE.set(0 if due_since is None else (now - due_since).total_seconds())


async def deliver_due(
    db: Database,
    box: SecretBox,
    *,
    clock: Clock = utcnow,
    batch: int = 100,
    concurrency: int = 8,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, int]:
    """Send every delivery due now, `batch` at a time, `concurrency` at once; counts."""
    counts = {"succeeded": 0, "pending": 0, "failed": 0, "gone": 0}
    gate = asyncio.Semaphore(concurrency)
    timeout = httpx.Timeout(TIMEOUT_SECONDS)
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, transport=transport
    ) as http:
        await _queue_age(db, clock())
        while taken := await claim(db, clock(), batch):
            for verdict in await asyncio.gather(
                *(_one(db, box, http, gate, d, clock) for d in taken)
            ):
                if verdict is not None:
                    counts[verdict] += 1
            if len(taken) < batch:
                break
    return counts


async def _one(
    db: Database,
    box: SecretBox,
    http: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    due: Due,
    clock: Clock,
) -> str | None:
    async with gate:  # the send and its record: no more connections than deliveries at once
        answer = await send(http, box, due)
        verdict = await record(db, due, answer, clock())
    ATTEMPTS.labels("retry" if verdict == "pending" else verdict or "lost_lease").inc()
    if verdict in ("pending", "failed", "gone"):
        log.warning(
            "webhook.attempt_failed",
            message_id=due.message_id,
            url=due.url,
            status_code=answer.status_code,
            error=answer.error,
            verdict=verdict,
        )
    return verdict


def schedule_offsets() -> Sequence[int]:
    """Seconds from the first attempt to each attempt, for the docs and tests."""
    total, offsets = 0, []
    for pause in SCHEDULE:
        total += pause
        offsets.append(total)
    return offsets
