"""The Ocean Engine open API v3.0 (DOU+ orders, their report, OAuth), on core/upstream.py.

Every unit conversion is here, once: `budget` comes in fen (integer), report costs in yuan
(decimal numbers, read as `Decimal`, never float); order times come as China local time.
Business errors arrive as HTTP 200 with `code != 0` and become the exceptions below.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tallyhub.core.upstream import PageResult, Retryable, UpstreamClient, UpstreamError
from tallyhub.douplus.config import DouplusSettings

CHINA = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
RANK = Decimal("0.0001")

ORDER_LIST = "/open_api/v3.0/douplus/order/list/"
ORDER_REPORT = "/open_api/v3.0/douplus/order/report/"
ACCESS_TOKEN = "/open_api/oauth2/access_token/"
REFRESH_TOKEN = "/open_api/oauth2/refresh_token/"

TOO_FREQUENT = 40100
SYSTEM_ERROR = 50000
ACCESS_TOKEN_EXPIRED = 40102
REFRESH_TOKEN_EXPIRED = 40103
INVALID_ACCESS_TOKEN = (40104, 40105)
INVALID_REFRESH_TOKEN = 40107
BAD_PARAMETER = 40001


class AccessTokenExpired(UpstreamError):
    kind = "access_token_expired"


class AccessTokenInvalid(UpstreamError):
    kind = "access_token_invalid"


class ReauthNeeded(UpstreamError):
    """The refresh token expired (40103) or is not valid (40107): only the account's owner
    granting access again helps."""

    kind = "reauth_needed"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int | None


@dataclass(frozen=True)
class Order:
    order_id: str
    task_id: str
    item_id: str
    title: str
    status: str
    budget: Decimal  # yuan
    created_at: datetime  # UTC


@dataclass(frozen=True)
class OrderFigures:
    """An order's figures over the report's date range."""

    order_id: str
    item_id: str
    stat_cost: Decimal  # yuan
    total_play: int
    custom_like: int
    dy_share: int
    dy_comment: int
    dp_target_convert_cnt: int
    custom_convert_cost: Decimal  # yuan
    play_duration_5s_rank: Decimal


def yuan_from_fen(fen: int) -> Decimal:
    return (Decimal(int(fen)) / 100).quantize(CENT)


def yuan(value: Decimal | int | str) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def china_time(text: str) -> datetime:
    """ "2026-01-26 12:00:00" (China local time) as UTC."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).astimezone(UTC)


class DouplusClient(UpstreamClient):
    name = "douplus"
    request_id_header = "x-tt-logid"

    def __init__(
        self,
        settings: DouplusSettings,
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url or settings.base_url, settings.upstream, transport=transport)
        self.app_id = settings.app_id
        self.app_secret = settings.app_secret

    # ------------------------------------------------------------ envelope

    def check(self, response: httpx.Response, endpoint: str) -> None:
        super().check(response, endpoint)
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError as error:
            raise UpstreamError(
                f"douplus {endpoint}: not JSON: {response.text[:200]}", endpoint=endpoint
            ) from error
        code = int(body.get("code", -1))
        request_id = body.get("request_id") or response.headers.get(self.request_id_header)
        if code != 0:
            raise _business_error(code, str(body.get("message", "")), endpoint, request_id)
        response.extensions["envelope"] = body

    async def _data(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Access-Token": token} if token else None
        response = await self.request(
            method, path, endpoint=endpoint, params=params, json=json_body, headers=headers
        )
        data: dict[str, Any] = response.extensions["envelope"].get("data") or {}
        return data

    # ------------------------------------------------------------ orders

    async def list_orders(
        self,
        token: str,
        aweme_sec_uid: str,
        *,
        page: int,
        page_size: int,
        ascending: bool = False,
        order_ids: Sequence[str] = (),
    ) -> PageResult[Order]:
        params: dict[str, Any] = {
            "aweme_sec_uid": aweme_sec_uid,
            "page": page,
            "page_size": page_size,
            "order_by_field": "CREATE_TIME",
            "order_by_type": "ASC" if ascending else "DESC",
        }
        if order_ids:
            params["filter"] = json.dumps({"order_id": list(order_ids)})
        data = await self._data(
            "GET", ORDER_LIST, endpoint="order_list", params=params, token=token
        )
        items = [_order(entry) for entry in data.get("order_list") or []]
        return _page(items, data, page)

    async def order_report(
        self,
        token: str,
        aweme_sec_uid: str,
        *,
        begin: date,
        end: date,
        order_ids: Sequence[str],
        page: int,
        page_size: int,
    ) -> PageResult[OrderFigures]:
        params = {
            "aweme_sec_uid": aweme_sec_uid,
            "stat_time": json.dumps({"begin_time": begin.isoformat(), "end_time": end.isoformat()}),
            "group_by": json.dumps(["GROUP_BY_AD_ID"]),
            "filter": json.dumps({"order_ids": list(order_ids)}),
            "page": page,
            "page_size": page_size,
        }
        data = await self._data(
            "GET", ORDER_REPORT, endpoint="order_report", params=params, token=token
        )
        items = [_figures(row) for row in data.get("order_metrics") or []]
        return _page(items, data, page)

    # ------------------------------------------------------------ OAuth

    async def access_token(self, auth_code: str) -> Tokens:
        body = {
            "app_id": self.app_id,
            "secret": self.app_secret,
            "grant_type": "auth_code",
            "auth_code": auth_code,
        }
        return _tokens(
            await self._data("POST", ACCESS_TOKEN, endpoint="access_token", json_body=body)
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        body = {
            "app_id": self.app_id,
            "secret": self.app_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        data = await self._data("POST", REFRESH_TOKEN, endpoint="refresh_token", json_body=body)
        return _tokens(data)


def _business_error(code: int, message: str, endpoint: str, request_id: str | None) -> Exception:
    kw: dict[str, Any] = {"upstream": "douplus", "endpoint": endpoint, "request_id": request_id}
    text = f"douplus {endpoint}: code {code}: {message}"
    if code in (TOO_FREQUENT, SYSTEM_ERROR):
        error = Retryable(text, code=code, **kw)
        error.kind = f"code_{code}"
        return error
    if code == ACCESS_TOKEN_EXPIRED:
        return AccessTokenExpired(text, code=code, **kw)
    if code in INVALID_ACCESS_TOKEN:
        return AccessTokenInvalid(text, code=code, **kw)
    if code in (REFRESH_TOKEN_EXPIRED, INVALID_REFRESH_TOKEN):
        return ReauthNeeded(text, code=code, **kw)
    return UpstreamError(text, code=code, **kw)


def _page(items: list[Any], data: dict[str, Any], page: int) -> PageResult[Any]:
    info = data.get("page_info") or {}
    total_pages = info.get("total_page")
    return PageResult(
        items=items,
        total=None if info.get("total_number") is None else int(info["total_number"]),
        total_pages=None if total_pages is None else int(total_pages),
        page=page,
    )


def _order(entry: dict[str, Any]) -> Order:
    order = entry["order"]
    items = entry.get("item_info_list") or [{}]
    return Order(
        order_id=str(order["order_id"]),
        task_id=str(order.get("task_id", "")),
        item_id=str(items[0].get("aweme_item_id", "")),
        title=str(items[0].get("aweme_item_title", ""))[:500],
        status=str(order["task_status"]),
        budget=yuan_from_fen(order["budget"]),
        created_at=china_time(order["order_create_time"]),
    )


def _figures(row: dict[str, Any]) -> OrderFigures:
    dims, m = row["dimension_data"], row["metrics_data"]
    return OrderFigures(
        order_id=str(dims["order_id"]),
        item_id=str(dims.get("item_id", "")),
        stat_cost=yuan(m.get("stat_cost", 0)),
        total_play=int(m.get("total_play", 0)),
        custom_like=int(m.get("custom_like", 0)),
        dy_share=int(m.get("dy_share", 0)),
        dy_comment=int(m.get("dy_comment", 0)),
        dp_target_convert_cnt=int(m.get("dp_target_convert_cnt", 0)),
        custom_convert_cost=yuan(m.get("custom_convert_cost", 0)),
        play_duration_5s_rank=Decimal(str(m.get("play_duration_5s_rank", 0))).quantize(RANK),
    )


def _tokens(data: dict[str, Any]) -> Tokens:
    refresh_expires = data.get("refresh_token_expires_in")
    return Tokens(
        access_token=str(data["access_token"]),
        expires_in=int(data["expires_in"]),
        refresh_token=str(data["refresh_token"]),
        refresh_token_expires_in=None if refresh_expires is None else int(refresh_expires),
    )
