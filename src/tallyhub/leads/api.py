"""HTTP edge of the leads domain: the desktop client's API, the admin API, live push."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket
from pydantic import ValidationError

from tallyhub.core import recalibration
from tallyhub.core.auth import (
    CurrentUser,
    WriterUser,
)
from tallyhub.core.errors import DomainError, Forbidden, Unauthorized
from tallyhub.core.http import (
    Days,
    Paging,
    Session,
    TransactionalRoute,
    plain_endpoint,
    read_only_session,
    validation_error_response,
)
from tallyhub.core.pagination import Page, page_of
from tallyhub.core.realtime import push_topic
from tallyhub.core.runtime import runtime_of
from tallyhub.leads import jobs, schemas, service, wiring
from tallyhub.leads.models import Group

log = structlog.get_logger(__name__)

ActivationCode = Annotated[
    str | None, Header(alias="X-Activation-Code", description="The group's activation code")
]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@asynccontextmanager
async def _code_attempt(request: Request, code: str | None) -> AsyncIterator[str]:
    """The failed-attempt check every client endpoint shares: an address that failed too
    often is refused before anything is judged; a missing code, or one the endpoint finds
    wrong (Unauthorized from inside the block), counts as a failure."""
    limiter = wiring.parts(runtime_of(request)).code_limiter
    address = _address(request)
    await limiter.check(address)
    try:
        if not code:
            raise Unauthorized("missing X-Activation-Code header", code="missing_activation_code")
        yield code
    except Unauthorized:
        await limiter.failed(address)
        raise


async def _client_group(request: Request, session: Session, code: ActivationCode = None) -> Group:
    """The group whose activation code the client presents; failures are rate-limited."""
    async with _code_attempt(request, code) as checked:
        return await service.authenticate_client(session, checked)


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
    writer = wiring.parts(runtime_of(request)).writer
    async with _code_attempt(request, code) as checked:
        results = await writer.submit_many([service.make_event(checked, r) for r in reports])
        refusals = [r for r in results if isinstance(r, Unauthorized | Forbidden)]
        if refusals and len(refusals) == len(results):
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
    writer = wiring.parts(runtime_of(request)).writer
    async with _code_attempt(request, request.headers.get("x-activation-code")) as code:
        result = await writer.submit(service.make_event(code, body))
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


recalibration.add_routes(admin, "leads", jobs.recalibrate_now, counters="counter")


# ---------------------------------------------------------------- live push


live = APIRouter(tags=["leads: live"])


@live.websocket("/ws/leads")
async def leads_socket(websocket: WebSocket, token: str = "") -> None:
    """Pushes `group_stats` and `account_stats` messages after each committed change to a
    group the signed-in user may see."""
    await push_topic(websocket, token, service.TOPIC)


routers = [hot, client, admin, live]
