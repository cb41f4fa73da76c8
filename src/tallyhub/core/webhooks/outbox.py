"""Putting a message in the outbox: in the caller's transaction, with the data it reports,
so it exists exactly when that data does. It is sent after commit: at once by this
process's deliverer when one runs, else by the next `webhooks.deliver` run (every 5 s).

A sender that wants to hear how a delivery went names itself in `source` and registers an
outcome handler for it (`on_outcome`); the handler runs in the transaction that records
each attempt, so its own rows follow the delivery's state exactly.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.columns import utcnow
from tallyhub.core.crypto import SecretBox
from tallyhub.core.db import after_commit
from tallyhub.core.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from tallyhub.core.webhooks.signing import new_secret


@dataclass(frozen=True)
class Outcome:
    """How a delivery stands after an attempt: `pending` (it will be tried again at
    `next_attempt_at`), `succeeded` or `failed` (for good)."""

    message: WebhookMessage
    endpoint_id: int
    status: str
    status_code: int | None
    response_body: str | None
    attempted_at: datetime
    attempt_count: int
    next_attempt_at: datetime | None


OutcomeHandler = Callable[[AsyncSession, Outcome], Awaitable[None]]
OUTCOMES: dict[str, OutcomeHandler] = {}
# Called after a commit that enqueued messages (this process's deliverer wakes up).
WAKE: list[Callable[[], None]] = []


def on_outcome(source: str, handler: OutcomeHandler) -> None:
    known = OUTCOMES.get(source)
    if known is not None and known is not handler:
        raise ValueError(f"two webhook outcome handlers for {source!r}")
    OUTCOMES[source] = handler


def new_message_id() -> str:
    """`msg_` + a time-ordered, random id (sortable by creation, unique without a lookup)."""
    return f"msg_{int(time.time() * 1000):013x}{secrets.token_hex(8)}"


async def ensure_endpoint(
    session: AsyncSession, box: SecretBox, url: str, owner_id: int | None, description: str = ""
) -> WebhookEndpoint:
    """The endpoint of `url` for this owner, made (with a new secret) the first time."""
    endpoint = await session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.url == url, WebhookEndpoint.owner_id == owner_id)
        .order_by(WebhookEndpoint.id)
        .limit(1)
    )
    if endpoint is None:
        endpoint = WebhookEndpoint(
            url=url, description=description, secret=box.encrypt(new_secret()), owner_id=owner_id
        )
        session.add(endpoint)
        await session.flush()
    return endpoint


async def enqueue(
    session: AsyncSession,
    *,
    endpoints: Sequence[WebhookEndpoint],
    event_type: str,
    payload: dict[str, Any],
    source: str = "",
    source_key: str = "",
    owner_id: int | None = None,
) -> WebhookMessage:
    """A message and one delivery per endpoint, due now; sent after this transaction
    commits (never if it rolls back)."""
    now = utcnow()
    message = WebhookMessage(
        id=new_message_id(),
        event_type=event_type,
        payload=payload,
        source=source,
        source_key=source_key,
        status="pending",
        owner_id=owner_id,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    for endpoint in endpoints:
        session.add(
            WebhookDelivery(
                message_id=message.id,
                endpoint_id=endpoint.id,
                status="pending" if endpoint.enabled else "failed",
                last_error=None if endpoint.enabled else "endpoint disabled",
                next_attempt_at=now if endpoint.enabled else None,
                created_at=now,
            )
        )
    await session.flush()
    for wake in WAKE:
        after_commit(session, wake)
    return message
