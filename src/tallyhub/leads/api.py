"""HTTP edge of the leads domain: the desktop client's API, the admin API, live push."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, WebSocket
from pydantic import StringConstraints, ValidationError

from tallyhub.core import recalibration
from tallyhub.core.auth import (
    CurrentUser,
    Principal,
    WriterUser,
)
from tallyhub.core.batching import BatchWriter, WriterSaturated, WriterStopped
from tallyhub.core.errors import DomainError, Forbidden, Unauthorized, Unavailable
from tallyhub.core.http import (
    Paging,
    Session,
    TransactionalRoute,
    plain_endpoint,
    read_only_session,
    validation_error_response,
)
from tallyhub.core.openapi import Answers, dependency_of
from tallyhub.core.pagination import Page, page_of
from tallyhub.core.realtime import push_topic
from tallyhub.core.runtime import runtime_of
from tallyhub.core.validation import NoNul, PathId, ShortText
from tallyhub.leads import jobs, schemas, service, wiring
from tallyhub.leads.models import Group

log = structlog.get_logger(__name__)

Writer = BatchWriter[service.IncomingEvent, schemas.IncomingResult]

ActivationCode = Annotated[
    str | None, Header(alias="X-Activation-Code", description="The group's activation code")
]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _admitted(request: Request) -> str:
    """The request's activation code, let in by the gate (judged and counted before the
    request body is read)."""
    gate = wiring.parts(runtime_of(request)).gate
    return await gate.admit(_address(request), request.headers.get("x-activation-code"))


class ClientRoute(TransactionalRoute):
    """A desktop-client endpoint: its activation code is let in by the gate before
    FastAPI reads the body, so a body without a valid code is never parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admitted_first(request: Request) -> Response:
            await _admitted(request)
            return await handler(request)

        return admitted_first


async def _client_group(request: Request, session: Session, code: ActivationCode = None) -> Group:
    """The group whose activation code the client presents (the route's gate let it in;
    found unknown here, it was replaced meanwhile: counted as a failure)."""
    try:
        return await service.authenticate_client(session, code)
    except Unauthorized:
        await wiring.parts(runtime_of(request)).gate.refused(_address(request), code or "")
        raise


ClientGroup = Annotated[Group, Depends(_client_group)]

client = APIRouter(prefix="/api/client", tags=["leads: desktop client"], route_class=ClientRoute)


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
    line_id: Annotated[str, StringConstraints(min_length=1, max_length=128), NoNul(), Path()],
    body: schemas.StatusChange,
) -> schemas.StatusChangeResult:
    return await service.change_status(
        session, runtime_of(request).hub, group, line_id, body.online_status
    )


# ---------------------------------------------------------------- incoming leads


def _not_committed(timeout: float) -> Unavailable:
    return Unavailable(
        f"the lead was not committed within {timeout * 1000:.0f} ms; retry with the same "
        "event_id (it may have been counted meanwhile: a retry counts it once)",
        code="commit_timeout",
        headers={"Retry-After": "1"},
    )


def _expire(futures: Sequence[asyncio.Future[Any]], timeout: float) -> None:
    for future in futures:
        if not future.done():  # the writer leaves it alone, and still writes its event
            future.set_exception(_not_committed(timeout))


def _enqueued(writer: Writer, event: service.IncomingEvent) -> asyncio.Future[Any]:
    """The event's future from the writer, or one failed already if the writer takes
    nothing now (its queue full, or shutting down)."""
    try:
        return writer.enqueue(event)
    except (WriterSaturated, WriterStopped) as error:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(
            Unavailable(
                f"the lead writer takes nothing now ({type(error).__name__}); retry",
                code="overloaded",
                headers={"Retry-After": "1"},
            )
        )
        return future


async def _committed(
    request: Request, code: str, reports: Sequence[schemas.IncomingReport]
) -> list[Any]:
    """Each report's result once its batch has committed, or its error; one the writer
    has not committed within the commit timeout is answered `commit_timeout` (it may
    still commit later; a retry with its event_id counts it once). An admitted code the
    writer finds unknown is counted as a failed attempt."""
    parts = wiring.parts(runtime_of(request))
    futures = [_enqueued(parts.writer, service.make_event(code, r)) for r in reports]
    timer = asyncio.get_running_loop().call_later(
        parts.commit_timeout, _expire, futures, parts.commit_timeout
    )
    try:
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        timer.cancel()
    if any(isinstance(r, Unauthorized) for r in results):
        await parts.gate.refused(_address(request), code)
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
        429: {"description": "Too many failed activation codes from this address"},
        503: {
            "description": "Not committed in time (retry with the same event_id), or the "
            "writer is overloaded"
        },
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
    code = await _admitted(request)
    try:
        body = schemas.IncomingReport.model_validate_json(await request.body())
    except ValidationError as error:
        return validation_error_response(error.errors(include_url=False))
    (result,) = await _committed(request, code, [body])
    if isinstance(result, BaseException):
        raise result
    return Response(result.model_dump_json(), media_type="application/json")


hot_paths = {("POST", "/api/client/incoming"): plain_endpoint(client_incoming)}


def _batch_item(report: schemas.IncomingReport, result: Any) -> schemas.IncomingBatchItem:
    if isinstance(result, schemas.IncomingResult):
        return schemas.IncomingBatchItem(event_id=result.event_id, ok=True, result=result)
    if isinstance(result, DomainError):
        error = {"code": result.code, "message": result.message}
    else:  # logged and counted by the writer, which failed this event alone
        error = {"code": "internal_error", "message": "this lead could not be recorded"}
    return schemas.IncomingBatchItem(event_id=report.event_id, ok=False, error=error)


def _whole_batch_error(results: Sequence[Any]) -> DomainError | None:
    """The error that answers for the whole batch when every event failed alike: refused
    (401/403), or not committed in time / overloaded (503). Otherwise the batch answers
    per event."""
    for kind in ((Unauthorized, Forbidden), (Unavailable,)):
        if all(isinstance(r, kind) for r in results):
            first: DomainError = results[0]
            return first
    return None


@client.post(
    "/incoming/batch",
    summary="Report up to 1000 incoming leads; one result each",
    description="Each event is counted or refused on its own, and answers so in its item "
    "(`ok`, `result` or `error`): an item with error `commit_timeout` or `overloaded` may "
    "be retried with its event_id. When every event fails alike the whole batch answers "
    "that error instead (401/403, or 503 with Retry-After).",
    responses={
        429: {"description": "Too many failed activation codes from this address"},
        503: {"description": "No event committed in time; retry with the same event_ids"},
    },
)
@read_only_session
async def client_incoming_batch(
    request: Request, body: schemas.IncomingBatch, code: ActivationCode = None
) -> schemas.IncomingBatchResult:
    results = await _committed(request, code or "", body.events)
    whole = _whole_batch_error(results)
    if whole is not None:
        raise whole
    return schemas.IncomingBatchResult(
        results=[_batch_item(r, result) for r, result in zip(body.events, results, strict=True)]
    )


# ---------------------------------------------------------------- admin


admin = APIRouter(prefix="/api/leads", tags=["leads: admin"], route_class=TransactionalRoute)


@admin.post("/groups", status_code=201, summary="Create a group (returns its activation code)")
async def create_group(
    request: Request, session: Session, principal: WriterUser, body: schemas.GroupCreate
) -> schemas.GroupWithStats:
    runtime = runtime_of(request)
    group = await service.create_group(session, principal, body, runtime.settings.timezone)
    await service.publish_group(session, runtime.hub, group.id)  # open list pages show it
    (out,) = await service.with_stats(session, [group])
    return out


@admin.get(
    "/summary",
    summary="Today's figures over the groups you may see (the overview)",
    description="`today_incoming` and `today_duplicates` add each group's daily row for its"
    " own today (its time zone and reset time). `yesterday_same_time` counts, from the"
    " incoming log, each group's leads of its previous business day that arrived no later"
    " into that day than now is into today. Accounts are those of the same groups. Operators"
    " see only their own groups.",
)
async def leads_summary(session: Session, principal: CurrentUser) -> schemas.LeadsSummary:
    return await service.summary(session, principal)


def _shown(
    principal: Principal, groups: list[schemas.GroupWithStats]
) -> list[schemas.GroupWithStats]:
    """The groups as this user may see them: a read-only user gets no activation code (it
    would let them post leads as the group's desktop client)."""
    if principal.can_write:
        return groups
    return [g.model_copy(update={"activation_code": None}) for g in groups]


@admin.get("/groups", summary="Groups with their figures, newest first (from stats rows)")
async def list_groups(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    search: Annotated[ShortText | None, Query()] = None,
    is_active: bool | None = None,
) -> Page[schemas.GroupWithStats]:
    items, total = await service.list_groups(session, principal, paging, search, is_active)
    return page_of(_shown(principal, items), total, paging)


@admin.get("/groups/{group_id}", summary="One group with its figures")
async def get_group(
    session: Session, principal: CurrentUser, group_id: PathId
) -> schemas.GroupWithStats:
    group = await service.get_group(session, principal, group_id)
    (out,) = _shown(principal, await service.with_stats(session, [group]))
    return out


@admin.patch("/groups/{group_id}", summary="Change a group's settings")
async def update_group(
    request: Request,
    session: Session,
    principal: WriterUser,
    group_id: PathId,
    body: schemas.GroupUpdate,
) -> schemas.GroupWithStats:
    group = await service.update_group(session, principal, group_id, body)
    await service.publish_group(session, runtime_of(request).hub, group.id)
    (out,) = await service.with_stats(session, [group])
    return out


@admin.delete("/groups/{group_id}", status_code=204, summary="Delete a group (soft)")
async def delete_group(
    request: Request, session: Session, principal: WriterUser, group_id: PathId
) -> Response:
    group = await service.delete_group(session, principal, group_id)
    await service.publish_group_deleted(session, runtime_of(request).hub, group)
    return Response(status_code=204)


@admin.post("/groups/{group_id}/activation-code", summary="Issue a new activation code")
async def new_activation_code(
    session: Session, principal: WriterUser, group_id: PathId
) -> schemas.GroupWithStats:
    group = await service.rotate_activation_code(session, principal, group_id)
    (out,) = await service.with_stats(session, [group])
    return out


@admin.get(
    "/groups/{group_id}/accounts",
    summary="The group's accounts: online first, then by total incoming",
)
async def list_accounts(
    session: Session, principal: CurrentUser, group_id: PathId, paging: Paging
) -> Page[schemas.AccountWithStats]:
    group = await service.get_group(session, principal, group_id)
    accounts = await service.list_accounts(session, group)  # at most the group's few
    chosen = accounts[paging.offset : paging.offset + paging.page_size]
    return page_of(chosen, len(accounts), paging)


@admin.delete("/accounts/{account_id}", status_code=204, summary="Delete an account (soft)")
async def delete_account(
    request: Request, session: Session, principal: WriterUser, account_id: PathId
) -> Response:
    await service.delete_account(session, runtime_of(request).hub, principal, account_id)
    return Response(status_code=204)


FirstDay = Annotated[
    date | None,
    Query(
        alias="from", description="First business day (YYYY-MM-DD); default: the first with leads"
    ),
]
LastDay = Annotated[
    date | None,
    Query(alias="to", description="Last business day (YYYY-MM-DD); default: the group's today"),
]


@admin.get(
    "/groups/{group_id}/daily",
    summary="One row per business day: a complete range, days without leads as zeros",
    description="A complete range: every business day of the group (its time zone and reset"
    " time) from `from` (default: the group's first day with leads) to `to` (default: the"
    " group's today) inclusive, in order, none left out; a day without leads is a row of"
    f" zeros. At most {service.MAX_DAILY_DAYS} days at once (an open `from` starts no"
    " earlier); `from` after `to`, or a longer range, answers 422 `bad_day_range` naming"
    " the parameter.",
    responses={422: {"description": "`from` after `to`, or the range is too long"}},
)
async def group_daily(
    session: Session,
    principal: CurrentUser,
    group_id: PathId,
    start: FirstDay = None,
    end: LastDay = None,
) -> list[schemas.GroupDaily]:
    group = await service.get_group(session, principal, group_id)
    return await service.daily(session, group, start, end)


@admin.get("/groups/{group_id}/incoming", summary="Incoming log, newest first")
async def group_incoming(
    session: Session, principal: CurrentUser, group_id: PathId, paging: Paging
) -> Page[schemas.IncomingLogOut]:
    group = await service.get_group(session, principal, group_id)
    rows, total = await service.incoming_page(session, group, paging)
    return page_of([schemas.IncomingLogOut.model_validate(r) for r in rows], total, paging)


recalibration.add_routes(admin, "leads", jobs.recalibrate_now, counters="counter")


# ---------------------------------------------------------------- live push


live = APIRouter(tags=["leads: live"])


@live.websocket("/ws/leads")
async def leads_socket(websocket: WebSocket, token: str = "") -> None:
    """Pushes `group_stats` (also when a group is created or changed), `account_stats` and
    `group_deleted` messages after each committed change to a group the signed-in user may
    see."""
    await push_topic(websocket, token, service.TOPIC)


routers = [hot, client, admin, live]

# For OpenAPI: the desktop client's activation code is wrong (401, rate-limited: 429), or
# its group inactive (403).
error_answers: Answers = {
    dependency_of(ClientGroup): (401, 403, 429),
    client_incoming: (429,),
    client_incoming_batch: (401, 403, 429),
    client_accounts: (400, 409),
}
