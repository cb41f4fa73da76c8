"""HTTP edge of the leads domain: the desktop client's API, the admin API, live push."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from tallyhub.core import metrics, recalibration
from tallyhub.core.auth import (
    CurrentUser,
    FailureLimiter,
    SocketCredential,
    WriterUser,
)
from tallyhub.core.batching import BatchWriter
from tallyhub.core.http import (
    Days,
    DomainError,
    Forbidden,
    Page,
    Paging,
    Session,
    TransactionalRoute,
    Unauthorized,
    page_of,
    plain_endpoint,
    read_only_session,
    validation_error_response,
)
from tallyhub.core.runtime import Runtime, runtime_of
from tallyhub.leads import schemas, service
from tallyhub.leads.models import Group

log = structlog.get_logger(__name__)

WRITER = "leads.incoming_writer"
LIMITER = "leads.code_limiter"

ActivationCode = Annotated[
    str | None, Header(alias="X-Activation-Code", description="The group's activation code")
]


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Start the group-commit writer for incoming leads; drain it on shutdown."""
    batching = runtime.settings.leads.batching
    hub = runtime.hub

    async def apply(session: Any, events: Sequence[service.IncomingEvent]) -> Any:
        return await service.apply_incoming(session, hub, events)

    writer: BatchWriter[service.IncomingEvent, schemas.IncomingResult] = BatchWriter(
        "leads.incoming",
        runtime.db,
        apply,
        enabled=batching.enabled,
        max_batch=batching.max_batch,
        max_wait_ms=batching.max_wait_ms,
        queue_size=batching.queue_size,
        retries=batching.retries,
        concurrency=batching.concurrency,
    )
    auth = runtime.settings.auth
    runtime.parts[LIMITER] = FailureLimiter(
        "activation_code", auth.failed_code_limit, auth.failed_code_window_seconds, runtime.redis
    )
    runtime.parts[WRITER] = writer
    await writer.start()
    try:
        yield
    finally:
        await writer.stop()


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter = runtime_of(request).parts[LIMITER]
    return limiter


async def _client_group(request: Request, session: Session, code: ActivationCode = None) -> Group:
    """The group whose activation code the client presents; failures are rate-limited."""
    limiter = _limiter(request)
    await limiter.check(_address(request))
    try:
        return await service.authenticate_client(session, code)
    except Unauthorized:
        await limiter.failed(_address(request))
        raise


ClientGroup = Annotated[Group, Depends(_client_group)]

client = APIRouter(
    prefix="/api/client", tags=["leads: desktop client"], route_class=TransactionalRoute
)


@client.post("/login", summary="Sign the desktop client in; returns the group's figures")
async def client_login(session: Session, group: ClientGroup) -> schemas.ClientSummary:
    return await service.login(session, group)


@client.put("/accounts", summary="Report the client's LINE accounts (create new, apply changes)")
async def client_accounts(
    request: Request, session: Session, group: ClientGroup, body: schemas.AccountSync
) -> schemas.AccountSyncResult:
    return await service.sync_accounts(session, runtime_of(request).hub, group, body.accounts)


@client.post("/accounts/{line_id}/status", summary="Report an account going online or offline")
async def client_status(
    request: Request,
    session: Session,
    group: ClientGroup,
    line_id: str,
    body: schemas.StatusChange,
) -> schemas.StatusChangeResult:
    return await service.change_status(
        session, runtime_of(request).hub, group, line_id, body.online_status
    )


async def _submit(
    request: Request, code: str | None, reports: Sequence[schemas.IncomingReport]
) -> list[Any]:
    limiter = _limiter(request)
    await limiter.check(_address(request))
    if not code:
        await limiter.failed(_address(request))
        raise Unauthorized("missing X-Activation-Code header", code="missing_activation_code")
    writer: BatchWriter[service.IncomingEvent, schemas.IncomingResult] = runtime_of(request).parts[
        WRITER
    ]
    results = await writer.submit_many([service.make_event(code, r) for r in reports])
    refusals = [r for r in results if isinstance(r, Unauthorized | Forbidden)]
    if refusals and len(refusals) == len(results):
        if isinstance(refusals[0], Unauthorized):
            await limiter.failed(_address(request))
        raise refusals[0]
    return results


# The hot path: a plain route (no per-request session or transaction, no dependency
# resolution, no response re-validation) that hands the event to the group-commit writer.
hot = APIRouter(prefix="/api/client", tags=["leads: desktop client"])


@hot.post(
    "/incoming",
    summary="Report one incoming lead",
    response_model=None,
    responses={
        200: {"model": schemas.IncomingResult, "description": "Counted (or a retry of it)"},
        401: {"description": "Missing or unknown activation code"},
        403: {"description": "The group is inactive or deleted"},
        404: {"description": "Unknown account in this group"},
        422: {"description": "A field is missing or invalid"},
    },
    openapi_extra={
        "parameters": [
            {
                "name": "X-Activation-Code",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IncomingReport"}}
            },
        },
    },
)
async def client_incoming(request: Request) -> Response:
    """Also served by core.http.HotPathsApp ahead of FastAPI (see `hot_paths`)."""
    try:
        body = schemas.IncomingReport.model_validate_json(await request.body())
    except ValidationError as error:
        return validation_error_response(error.errors(include_url=False))
    limiter = _limiter(request)
    address = _address(request)
    await limiter.check(address)
    code = request.headers.get("x-activation-code")
    if not code:
        await limiter.failed(address)
        raise Unauthorized("missing X-Activation-Code header", code="missing_activation_code")
    writer: BatchWriter[service.IncomingEvent, schemas.IncomingResult] = runtime_of(request).parts[
        WRITER
    ]
    try:
        result = await writer.submit(service.make_event(code, body))
    except Unauthorized:
        await limiter.failed(address)
        raise
    return Response(result.model_dump_json(), media_type="application/json")


hot_paths = {("POST", "/api/client/incoming"): plain_endpoint(client_incoming)}


@client.post("/incoming/batch", summary="Report up to 1000 incoming leads; one result each")
@read_only_session
async def client_incoming_batch(
    request: Request, body: schemas.IncomingBatch, code: ActivationCode = None
) -> schemas.IncomingBatchResult:
    results = await _submit(request, code, body.events)
    items = []
    for report, result in zip(body.events, results, strict=True):
        if isinstance(result, schemas.IncomingResult):
            items.append(
                schemas.IncomingBatchItem(event_id=result.event_id, ok=True, result=result)
            )
        elif isinstance(result, DomainError):
            items.append(
                schemas.IncomingBatchItem(
                    event_id=report.event_id,
                    ok=False,
                    error={"code": result.code, "message": result.message},
                )
            )
        else:
            raise result
    return schemas.IncomingBatchResult(results=items)


# ---------------------------------------------------------------- admin


admin = APIRouter(prefix="/api/leads", tags=["leads: admin"], route_class=TransactionalRoute)


@admin.post("/groups", status_code=201, summary="Create a group (returns its activation code)")
async def create_group(
    request: Request, session: Session, principal: WriterUser, body: schemas.GroupCreate
) -> schemas.GroupWithStats:
    group = await service.create_group(
        session, principal, body, runtime_of(request).settings.timezone
    )
    (out,) = await service.with_stats(session, [group])
    return out


@admin.get("/groups", summary="Groups with their figures, newest first (from stats rows)")
async def list_groups(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    search: Annotated[str | None, Query(max_length=200)] = None,
    is_active: bool | None = None,
) -> Page[schemas.GroupWithStats]:
    items, total = await service.list_groups(session, principal, paging, search, is_active)
    return page_of(items, total, paging)


@admin.get("/groups/{group_id}", summary="One group with its figures")
async def get_group(
    session: Session, principal: CurrentUser, group_id: int
) -> schemas.GroupWithStats:
    group = await service.get_group(session, principal, group_id)
    (out,) = await service.with_stats(session, [group])
    return out


@admin.patch("/groups/{group_id}", summary="Change a group's settings")
async def update_group(
    session: Session, principal: WriterUser, group_id: int, body: schemas.GroupUpdate
) -> schemas.GroupWithStats:
    group = await service.update_group(session, principal, group_id, body)
    (out,) = await service.with_stats(session, [group])
    return out


@admin.delete("/groups/{group_id}", status_code=204, summary="Delete a group (soft)")
async def delete_group(session: Session, principal: WriterUser, group_id: int) -> Response:
    await service.delete_group(session, principal, group_id)
    return Response(status_code=204)


@admin.post("/groups/{group_id}/activation-code", summary="Issue a new activation code")
async def new_activation_code(
    session: Session, principal: WriterUser, group_id: int
) -> schemas.GroupWithStats:
    group = await service.rotate_activation_code(session, principal, group_id)
    (out,) = await service.with_stats(session, [group])
    return out


@admin.get(
    "/groups/{group_id}/accounts",
    summary="The group's accounts: online first, then by total incoming",
)
async def list_accounts(
    session: Session, principal: CurrentUser, group_id: int
) -> list[schemas.AccountWithStats]:
    group = await service.get_group(session, principal, group_id)
    return await service.list_accounts(session, group)


@admin.delete("/accounts/{account_id}", status_code=204, summary="Delete an account (soft)")
async def delete_account(
    request: Request, session: Session, principal: WriterUser, account_id: int
) -> Response:
    await service.delete_account(session, runtime_of(request).hub, principal, account_id)
    return Response(status_code=204)


@admin.get("/groups/{group_id}/daily", summary="One row per business day")
async def group_daily(
    session: Session, principal: CurrentUser, group_id: int, days: Days
) -> list[schemas.GroupDaily]:
    group = await service.get_group(session, principal, group_id)
    return await service.daily(session, group, days.start, days.end)


@admin.get("/groups/{group_id}/incoming", summary="Incoming log, newest first")
async def group_incoming(
    session: Session, principal: CurrentUser, group_id: int, paging: Paging
) -> Page[schemas.IncomingLogOut]:
    group = await service.get_group(session, principal, group_id)
    rows, total = await service.incoming_page(session, group, paging)
    return page_of([schemas.IncomingLogOut.model_validate(r) for r in rows], total, paging)


recalibration.add_routes(
    admin,
    "leads",
    lambda runtime: service.recalibrate(runtime.db, runtime.settings.leads.recalibration_chunk),
    counters="counter",
)


# ---------------------------------------------------------------- live push


live = APIRouter(tags=["leads: live"])


@live.websocket("/ws/leads")
async def leads_socket(websocket: WebSocket, token: str = "") -> None:
    """Pushes `group_stats` and `account_stats` messages after each committed change to a
    group the signed-in user may see."""
    runtime: Runtime = websocket.app.state.runtime
    try:
        credential = SocketCredential.of(websocket, token)
        async with runtime.db.transaction(readonly=True) as session:
            principal = await credential.principal(session, runtime.secret_key)
    except Unauthorized as refused:
        await websocket.close(code=4401, reason=refused.message)
        return
    await websocket.accept()
    subscription = runtime.hub.subscribe(service.TOPIC, lambda m: principal.owns(m.get("owner_id")))
    metrics.WS_CONNECTIONS.inc()

    async def forward() -> None:
        while True:
            message = await subscription.queue.get()
            await websocket.send_text(
                json.dumps({k: v for k, v in message.items() if k != "owner_id"})
            )

    async def receive() -> None:
        with suppress(WebSocketDisconnect):  # the client leaving is the normal end
            while True:
                await websocket.receive_text()

    async def recheck() -> str:
        """Why the sign-in no longer holds (the token expired, the user was disabled, or
        the account changed), once it doesn't: checked every recheck interval, and at
        the token's expiry if that comes first."""
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

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(forward())
    checker = asyncio.create_task(recheck())
    tasks = (receiver, sender, checker)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                log.error("ws.failed", exc_info=task.exception())
        if checker in done and checker.exception() is None:
            # Closed here only, after receiving and sending have stopped: the client signs
            # in or reconnects anew.
            receiver.cancel()
            sender.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
            await websocket.close(code=4401, reason=checker.result())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        runtime.hub.unsubscribe(subscription)
        metrics.WS_CONNECTIONS.dec()


routers = [hot, client, admin, live]
