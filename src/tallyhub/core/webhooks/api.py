"""HTTP edge of the webhook outbox: the messages with their deliveries and attempts, a
resend by hand, and the endpoints (whose secret is shown once, on create and on rotate).
Operators see and change only their own; viewers read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints
from sqlalchemy import select

from tallyhub.core.auth import CurrentUser, Principal, WriterUser
from tallyhub.core.columns import utcnow
from tallyhub.core.db import after_commit
from tallyhub.core.errors import Conflict, NotFound
from tallyhub.core.http import Paging, Session, TransactionalRoute
from tallyhub.core.pagination import Page, page_of, paginate
from tallyhub.core.runtime import runtime_of
from tallyhub.core.validation import NoNul, PathId
from tallyhub.core.webhooks.delivery import update_message_status
from tallyhub.core.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from tallyhub.core.webhooks.outbox import WAKE
from tallyhub.core.webhooks.signing import new_secret

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], route_class=TransactionalRoute)

MessageId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^msg_[0-9a-f]+$")]
Status = Literal["pending", "succeeded", "failed"]


class Attempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    response_body: str | None = Field(description="The receiver's answer, cut to 4 KB")
    duration_ms: int
    error: str | None


class Delivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    endpoint_id: int
    url: str
    status: Status
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    finished_at: datetime | None
    attempts: list[Attempt] | None = Field(None, description="Only on one message's page")


class Message(BaseModel):
    id: str = Field(description="The `webhook-id` every attempt carries")
    event_type: str
    status: Status
    created_at: datetime
    payload: dict[str, Any]
    deliveries: list[Delivery]


class Endpoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str
    enabled: bool
    disabled_reason: str | None
    owner_id: int | None
    created_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="`whsec_…`: shown now only; the receiver verifies with it")


Url = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]
Description = Annotated[str, Field(max_length=200), NoNul()]


class EndpointCreate(BaseModel):
    url: Url
    description: Description = ""


class EndpointUpdate(BaseModel):
    url: Url | None = None
    description: Description | None = None
    enabled: bool | None = Field(None, description="true enables it again (after a 410)")


# ---------------------------------------------------------------- messages


async def _deliveries(
    session: Session, message_ids: list[str], with_attempts: bool
) -> dict[str, list[Delivery]]:
    found: dict[str, list[Delivery]] = {m: [] for m in message_ids}
    rows = await session.execute(
        select(WebhookDelivery, WebhookEndpoint.url)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.message_id.in_(message_ids))
        .order_by(WebhookDelivery.id)
    )
    for delivery, url in rows:
        attempts = None
        if with_attempts:
            attempts = [
                Attempt.model_validate(a)
                for a in await session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id == delivery.id)
                    .order_by(WebhookAttempt.id)
                )
            ]
        shown = Delivery.model_validate({**_columns(delivery), "url": url, "attempts": attempts})
        found[delivery.message_id].append(shown)
    return found


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def _message(message: WebhookMessage, deliveries: list[Delivery]) -> Message:
    return Message(
        id=message.id,
        event_type=message.event_type,
        status=message.status,
        created_at=message.created_at,
        payload=message.payload,
        deliveries=deliveries,
    )


@router.get("/messages", summary="Webhook messages, newest first, with their deliveries")
async def list_messages(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    status: Status | None = None,
    event: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[Message]:
    query = select(WebhookMessage).where(principal.visible(WebhookMessage.owner_id))
    if status is not None:
        query = query.where(WebhookMessage.status == status)
    if event is not None:
        query = query.where(WebhookMessage.event_type == event)
    query = query.order_by(WebhookMessage.created_at.desc(), WebhookMessage.id.desc())
    messages, total = await paginate(session, query, paging)
    deliveries = await _deliveries(session, [m.id for m in messages], with_attempts=False)
    return page_of([_message(m, deliveries[m.id]) for m in messages], total, paging)


async def _visible_message(
    session: Session, principal: Principal, message_id: str
) -> WebhookMessage:
    message = await session.scalar(
        select(WebhookMessage).where(
            WebhookMessage.id == message_id, principal.visible(WebhookMessage.owner_id)
        )
    )
    if message is None:
        raise NotFound(f"no webhook message {message_id}")
    return message


@router.get("/messages/{message_id}", summary="One message, its deliveries and their attempts")
async def get_message(session: Session, principal: CurrentUser, message_id: MessageId) -> Message:
    message = await _visible_message(session, principal, message_id)
    deliveries = await _deliveries(session, [message.id], with_attempts=True)
    return _message(message, deliveries[message.id])


@router.post(
    "/messages/{message_id}/resend",
    summary="Send a message again to its enabled endpoints, its schedule started afresh",
)
async def resend_message(session: Session, principal: WriterUser, message_id: MessageId) -> Message:
    message = await _visible_message(session, principal, message_id)
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.message_id == message.id, WebhookEndpoint.enabled.is_(True))
            .with_for_update()
        )
    )
    if not deliveries:
        raise Conflict("its endpoints are disabled: enable one first", code="endpoint_disabled")
    now = utcnow()
    for delivery in deliveries:
        delivery.status, delivery.attempt_count = "pending", 0
        delivery.next_attempt_at, delivery.finished_at = now, None
    await session.flush()
    await update_message_status(session, message.id)
    for wake in WAKE:  # this process's deliverer sends it at once after commit
        after_commit(session, wake)
    await session.refresh(message)
    shown = await _deliveries(session, [message.id], with_attempts=True)
    return _message(message, shown[message.id])


# ---------------------------------------------------------------- endpoints


async def _endpoint(session: Session, principal: Principal, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, principal.visible(WebhookEndpoint.owner_id)
        )
    )
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


@router.get("/endpoints", summary="Webhook endpoints (never their secrets)")
async def list_endpoints(
    session: Session, principal: CurrentUser, paging: Paging
) -> Page[Endpoint]:
    query = (
        select(WebhookEndpoint)
        .where(principal.visible(WebhookEndpoint.owner_id))
        .order_by(WebhookEndpoint.id)
    )
    endpoints, total = await paginate(session, query, paging)
    return page_of([Endpoint.model_validate(e) for e in endpoints], total, paging)


@router.post("/endpoints", status_code=201, summary="Add an endpoint (its secret shown once)")
async def add_endpoint(
    request: Request, session: Session, principal: WriterUser, body: EndpointCreate
) -> EndpointWithSecret:
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=str(body.url),
        description=body.description,
        secret=runtime_of(request).secret_box().encrypt(secret),
        owner_id=principal.id,
    )
    session.add(endpoint)
    await session.flush()
    return _secret_shown(endpoint, secret)


@router.patch("/endpoints/{endpoint_id}", summary="Change an endpoint's URL or description; enable")
async def update_endpoint(
    session: Session, principal: WriterUser, endpoint_id: PathId, body: EndpointUpdate
) -> Endpoint:
    endpoint = await _endpoint(session, principal, endpoint_id)
    if body.url is not None:
        endpoint.url = str(body.url)
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is not None:
        endpoint.enabled = body.enabled
        endpoint.disabled_reason = None if body.enabled else f"disabled by {principal.username}"
    endpoint.updated_at = utcnow()
    await session.flush()
    return Endpoint.model_validate(endpoint)


@router.post(
    "/endpoints/{endpoint_id}/secret",
    summary="Give an endpoint a new secret (shown once; the old one stops at once)",
)
async def rotate_endpoint_secret(
    request: Request, session: Session, principal: WriterUser, endpoint_id: PathId
) -> EndpointWithSecret:
    endpoint = await _endpoint(session, principal, endpoint_id)
    secret = new_secret()
    endpoint.secret = runtime_of(request).secret_box().encrypt(secret)
    endpoint.updated_at = utcnow()
    await session.flush()
    return _secret_shown(endpoint, secret)


@router.get("/endpoints/{endpoint_id}", summary="One endpoint")
async def get_endpoint(session: Session, principal: CurrentUser, endpoint_id: PathId) -> Endpoint:
    return Endpoint.model_validate(await _endpoint(session, principal, endpoint_id))


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=204,
    summary="Disable an endpoint (soft: its deliveries stay in the log)",
)
async def delete_endpoint(session: Session, principal: WriterUser, endpoint_id: PathId) -> None:
    endpoint = await _endpoint(session, principal, endpoint_id)
    endpoint.enabled, endpoint.disabled_reason = False, f"deleted by {principal.username}"
    endpoint.updated_at = utcnow()


def _secret_shown(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**Endpoint.model_validate(endpoint).model_dump(), secret=secret)
