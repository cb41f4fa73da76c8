"""HTTP edge of the DOU+ domain: connected accounts (tokens by hand or OAuth), syncs on
demand and their state, and the order, video and account figures. Operators see only
their own accounts and what was synced for them."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select

from tallyhub.core.auth import CurrentUser, Principal, WriterUser
from tallyhub.core.columns import utcnow
from tallyhub.core.db import after_commit
from tallyhub.core.errors import UpstreamFailed
from tallyhub.core.http import Paging, Session, TransactionalRoute
from tallyhub.core.jobs.models import JobRun
from tallyhub.core.openapi import Answers
from tallyhub.core.pagination import Page
from tallyhub.core.runtime import Runtime, runtime_of
from tallyhub.core.upstream import UpstreamError
from tallyhub.core.validation import PathId
from tallyhub.douplus import jobs, schemas, service
from tallyhub.douplus.client import DouplusClient, Tokens
from tallyhub.douplus.config import douplus_settings
from tallyhub.douplus.wiring import base_url

router = APIRouter(prefix="/api/douplus", tags=["douplus"], route_class=TransactionalRoute)

OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
ItemId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


def _start_sync_after_commit(request: Request, session: Session) -> None:
    runtime = runtime_of(request)

    async def start() -> None:
        await jobs.start_requested(runtime)

    after_commit(session, start)


async def _connect(
    request: Request,
    session: Session,
    principal: Principal,
    sec_uid: str,
    nickname: str | None,
    tokens: Tokens,
    response: Response,
) -> schemas.Account:
    runtime = runtime_of(request)
    account, created = await service.save_account(
        session, principal, runtime.secret_box(), sec_uid, nickname, tokens
    )
    await service.request_sync(session, principal, "full", account.id, utcnow())
    _start_sync_after_commit(request, session)
    response.status_code = 201 if created else 200
    await session.refresh(account)
    return await service.account_out(session, account)


KNOWN_ACCOUNT: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.Account, "description": "Known already: new tokens"}
}


@router.post(
    "/accounts",
    status_code=201,
    responses=KNOWN_ACCOUNT,
    summary="Connect an account with its tokens (201; 200 when it was known: new tokens)",
    description="Its orders of the last 90 days and their figures are synced at once, in "
    "the background. The tokens are stored encrypted and never shown again.",
)
async def add_account(
    request: Request,
    response: Response,
    session: Session,
    principal: WriterUser,
    body: schemas.AccountCreate,
) -> schemas.Account:
    tokens = Tokens(
        body.access_token, body.expires_in, body.refresh_token, body.refresh_token_expires_in
    )
    return await _connect(
        request, session, principal, body.aweme_sec_uid, body.nickname, tokens, response
    )


@router.get(
    "/oauth/authorize-url",
    summary="Where the account's owner grants access (with a signed state)",
)
async def authorize_url(
    request: Request,
    principal: WriterUser,
    aweme_sec_uid: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^\S+$")],
) -> schemas.AuthorizeUrl:
    runtime = runtime_of(request)
    settings = douplus_settings(runtime.settings)
    state = service.oauth_state(runtime.secret_key, principal, aweme_sec_uid)
    query = urlencode(
        {"app_id": settings.app_id, "state": state, "redirect_uri": settings.redirect_uri}
    )
    return schemas.AuthorizeUrl(url=f"{settings.authorize_url}?{query}", state=state)


@router.post(
    "/oauth/callback",
    status_code=201,
    responses=KNOWN_ACCOUNT,
    summary="Finish OAuth: exchange the auth_code for tokens and connect the account",
)
async def oauth_callback(
    request: Request,
    response: Response,
    session: Session,
    principal: WriterUser,
    body: schemas.OAuthCallback,
) -> schemas.Account:
    runtime = runtime_of(request)
    sec_uid = service.read_oauth_state(runtime.secret_key, principal, body.state)
    tokens = await _exchange(runtime, body.auth_code)
    return await _connect(request, session, principal, sec_uid, None, tokens, response)


async def _exchange(runtime: Runtime, auth_code: str) -> Tokens:
    settings = douplus_settings(runtime.settings)
    async with DouplusClient(settings, base_url=base_url(runtime, settings)) as client:
        try:
            return await client.access_token(auth_code)
        except UpstreamError as error:
            raise UpstreamFailed(f"Ocean Engine refused the auth_code: {error}") from error


@router.get("/accounts", summary="Connected accounts: status, last sync per stream (no tokens)")
async def list_accounts(
    session: Session, principal: CurrentUser, paging: Paging
) -> Page[schemas.Account]:
    return await service.list_accounts(session, principal, paging)


@router.get("/accounts/{account_id}", summary="One connected account")
async def get_account(
    session: Session, principal: CurrentUser, account_id: PathId
) -> schemas.Account:
    return await service.account_out(
        session, await service.get_account(session, principal, account_id)
    )


@router.delete(
    "/accounts/{account_id}",
    status_code=204,
    summary="Disconnect an account and forget what was synced for it",
)
async def delete_account(session: Session, principal: WriterUser, account_id: PathId) -> None:
    await service.delete_account(session, principal, account_id)


@router.get(
    "/accounts/{account_id}/stats",
    summary="An account's orders placed in the period, and their figures so far",
)
async def account_stats(
    request: Request,
    session: Session,
    principal: CurrentUser,
    account_id: PathId,
    period: schemas.Period = "today",
) -> schemas.AccountStats:
    tz = douplus_settings(runtime_of(request).settings).timezone
    return await service.account_stats(session, principal, account_id, period, tz, utcnow())


@router.get("/summary", summary="Accounts and today's DOU+ orders (the overview tile)")
async def summary(request: Request, session: Session, principal: CurrentUser) -> schemas.Summary:
    tz = douplus_settings(runtime_of(request).settings).timezone
    return await service.summary(session, principal, tz, utcnow())


# ---------------------------------------------------------------- syncs


@router.post(
    "/sync",
    status_code=202,
    summary="Sync now: one account, or every active account you see",
    description="Orders (full: 90 days; incremental: 7 days and unfinished ones), then "
    "their figures and the videos rollup, in the background.",
)
async def start_sync(
    request: Request, session: Session, principal: WriterUser, body: schemas.SyncRequest
) -> schemas.SyncStarted:
    ids = await service.request_sync(session, principal, body.mode, body.account_id, utcnow())
    await session.commit()  # the run must see the request
    run_id = await jobs.start_requested(runtime_of(request)) if ids else None
    return schemas.SyncStarted(run_id=run_id, mode=body.mode, account_ids=ids)


@router.get("/sync/status", summary="Each account's sync streams, and DOU+ jobs running now")
async def sync_status(
    session: Session, principal: CurrentUser, paging: Paging
) -> schemas.SyncStatus:
    accounts = await service.list_accounts(session, principal, paging)
    running = await session.scalars(
        select(JobRun.job_name)
        .where(JobRun.job_name.like("douplus.%"), JobRun.status.in_(("running", "queued")))
        .distinct()
    )
    return schemas.SyncStatus(accounts=accounts.items, running=sorted(running))


# ---------------------------------------------------------------- figures


@router.get("/orders", summary="Orders with their own current figures (never their video's)")
async def list_orders(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    account_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z_]+$")] = None,
    item_id: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z_-]+$")] = None,
    sort: schemas.OrderSort = "-order_create_time",
) -> Page[schemas.Order]:
    return await service.list_orders(
        session, principal, paging, account_id=account_id, status=status, item_id=item_id, sort=sort
    )


@router.get("/orders/{order_id}", summary="One order and its figures per 5-minute window")
async def get_order(
    session: Session, principal: CurrentUser, order_id: OrderId
) -> schemas.OrderDetail:
    return await service.order_detail(session, principal, order_id)


@router.get("/videos", summary="Videos ranked by their orders' summed figures (latest window)")
async def list_videos(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    account_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    sort: schemas.VideoSort = "total_cost",
) -> Page[schemas.Video]:
    return await service.list_videos(session, principal, paging, account_id=account_id, sort=sort)


@router.get("/videos/{item_id}/windows", summary="A video's summed figures per window")
async def video_windows(
    session: Session, principal: CurrentUser, item_id: ItemId
) -> list[schemas.VideoWindow]:
    return await service.video_windows(session, principal, item_id)


routers = [router]

error_answers: Answers = {
    add_account: (409,),
    oauth_callback: (400, 409, 502),
    get_account: (404,),
    delete_account: (404,),
    account_stats: (404,),
    start_sync: (404,),
    get_order: (404,),
    video_windows: (404,),
}
