"""The simulator's HTTP layer: the upstream's routes in its envelope (with a request id),
business errors as HTTP 200 with their code, the `/__sim/` routes that drive the world, and
`create_app`, which puts them on the shared simulator kit's app."""

from __future__ import annotations

import itertools
import json
from datetime import date
from enum import Enum
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from tallyhub.core.simulation import Faults, SimClock, simulator_app
from tallyhub.douplus.simulator.contract import (
    ACCESS_TOKEN_PATH,
    LIST_PATH,
    REFRESH_TOKEN_PATH,
    REPORT_PATH,
    TOO_FREQUENT,
    ApiError,
    bad_parameter,
)
from tallyhub.douplus.simulator.queries import read_list_query, read_paging, read_report_query
from tallyhub.douplus.simulator.world import DouplusWorld


class Envelopes:
    """The upstream's envelope, with a request id that its logs (and ours) can quote."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._serial = itertools.count(1)

    def build(self, code: int, message: str, data: dict[str, Any]) -> dict[str, Any]:
        request_id = f"{self.clock.now():%Y%m%d%H%M%S}{next(self._serial):010X}"
        return {"code": code, "message": message, "request_id": request_id, "data": data}

    def error(self, code: int, message: str) -> dict[str, Any]:
        return self.build(code, message, {})

    def answer(self, envelope: dict[str, Any]) -> JSONResponse:
        return JSONResponse(envelope, headers={"X-Tt-Logid": envelope["request_id"]})

    def ok(self, data: dict[str, Any]) -> JSONResponse:
        return self.answer(self.build(0, "OK", data))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise bad_parameter("request body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_parameter("request body", "must be a JSON object")
    return body


def _api_routes(app: FastAPI, world: DouplusWorld, envelopes: Envelopes) -> None:
    @app.get(LIST_PATH, summary="DOU+ orders of an account", tags=["upstream"])
    async def order_list(
        aweme_sec_uid: str | None = None,
        page: str | None = None,
        page_size: str | None = None,
        filter_: str | None = Query(None, alias="filter"),
        order_by_field: str | None = None,
        order_by_type: str | None = None,
        access_token: str | None = Header(None, alias="Access-Token"),
    ) -> JSONResponse:
        account = world.authorize(access_token, aweme_sec_uid)
        asked = read_paging(page, page_size)
        query = read_list_query(filter_, order_by_field, order_by_type)
        return envelopes.ok(world.order_list(account, query, asked))

    @app.get(REPORT_PATH, summary="DOU+ order metrics over a date range", tags=["upstream"])
    async def order_report(
        aweme_sec_uid: str | None = None,
        stat_time: str | None = None,
        group_by: str | None = None,
        filter_: str | None = Query(None, alias="filter"),
        page: str | None = None,
        page_size: str | None = None,
        access_token: str | None = Header(None, alias="Access-Token"),
    ) -> JSONResponse:
        account = world.authorize(access_token, aweme_sec_uid)
        asked = read_paging(page, page_size)
        query = read_report_query(stat_time, group_by, filter_)
        return envelopes.ok(world.order_report(account, query, asked))

    @app.post(ACCESS_TOKEN_PATH, summary="Exchange an auth_code for tokens", tags=["upstream"])
    async def access_token(request: Request) -> JSONResponse:
        return envelopes.ok(world.exchange_auth_code(await _json_body(request)))

    @app.post(REFRESH_TOKEN_PATH, summary="Rotate the tokens", tags=["upstream"])
    async def refresh_token(request: Request) -> JSONResponse:
        return envelopes.ok(world.refresh(await _json_body(request)))


class AuthCodeRequest(BaseModel):
    aweme_sec_uid: str


class OrdersRequest(BaseModel):
    aweme_sec_uid: str
    count: int = Field(1, ge=1, le=100_000)


class ExpireRequest(BaseModel):
    aweme_sec_uid: str
    which: Literal["access", "refresh"]


def _known(world: DouplusWorld, sec_uid: str) -> str:
    if sec_uid not in world.accounts:
        raise HTTPException(404, f"no simulated account {sec_uid!r}")
    return sec_uid


def _control_routes(app: FastAPI, world: DouplusWorld) -> None:
    tags: list[str | Enum] = ["simulator control"]

    @app.get("/__sim/accounts", summary="The accounts and their current tokens", tags=tags)
    async def accounts() -> list[dict[str, Any]]:
        return world.account_views()

    @app.get("/__sim/totals", summary="An account's true order count and figures", tags=tags)
    async def totals(aweme_sec_uid: str, created_since: date | None = None) -> dict[str, Any]:
        return world.totals(_known(world, aweme_sec_uid), created_since)

    @app.post("/__sim/auth-codes", summary="Issue a single-use auth_code", tags=tags)
    async def auth_codes(body: AuthCodeRequest) -> dict[str, str]:
        return {"auth_code": world.issue_auth_code(_known(world, body.aweme_sec_uid))}

    @app.post("/__sim/orders", summary="Create orders at the clock's now", tags=tags)
    async def orders(body: OrdersRequest) -> dict[str, list[str]]:
        return {"order_ids": world.add_orders(_known(world, body.aweme_sec_uid), body.count)}

    @app.post("/__sim/tokens/expire", summary="Expire an account's tokens now", tags=tags)
    async def expire(body: ExpireRequest) -> dict[str, str]:
        sec_uid = _known(world, body.aweme_sec_uid)
        if body.which == "access":
            world.expire_access_token(sec_uid)
        else:
            world.expire_refresh_token(sec_uid)
        return {"aweme_sec_uid": sec_uid, "which": body.which}


def create_app(
    *,
    seed: int = 1,
    accounts: int = 3,
    orders_per_account: int = 40,
    clock: SimClock | None = None,
    app_id: str = "sim-app",
    app_secret: str = "sim-secret",
    access_token_ttl: int = 86400,
    refresh_token_ttl: int = 2592000,
) -> FastAPI:
    """The DOU+ simulator; its world is `app.state.world`, its clock `app.state.clock`,
    its faults `app.state.faults` (a rate limit answers 40100)."""
    clock = clock or SimClock()
    world = DouplusWorld(
        seed=seed,
        accounts=accounts,
        orders_per_account=orders_per_account,
        clock=clock,
        app_id=app_id,
        app_secret=app_secret,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
    )
    envelopes = Envelopes(clock)
    app = simulator_app(
        "Ocean Engine DOU+ simulator",
        clock=clock,
        faults=Faults(rate_limit_code=TOO_FREQUENT),
        business_error=envelopes.error,
    )
    app.state.world = world

    async def business_error(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, ApiError):  # registered for ApiError only
            raise error
        return envelopes.answer(envelopes.error(error.code, error.message))

    app.add_exception_handler(ApiError, business_error)
    _api_routes(app, world, envelopes)
    _control_routes(app, world)
    return app
