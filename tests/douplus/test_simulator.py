"""The DOU+ simulator keeps the Ocean Engine v3.0 contract the client is written against:
envelope, exact paging, parameter checks, tokens, growing metrics and the report's ranges."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tallyhub.core.simulation import SimClock, running
from tallyhub.douplus.simulator import (
    FINAL_STATUSES,
    LIST_PATH,
    REFRESH_TOKEN_PATH,
    REPORT_PATH,
    STATUSES,
    DouplusWorld,
    create_app,
)

ACCESS_TOKEN_PATH = "/open_api/oauth2/access_token/"
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # noon in Shanghai
TODAY = date(2026, 3, 1)
APP = {"app_id": "sim-app", "secret": "sim-secret"}
# Upstream order of a status's life; a later phase never goes back to an earlier one.
PHASE = {
    "UNPAID": 0,
    "AUDITING": 1,
    "WAIT_TO_START": 2,
    "TIME_NO_REACH": 2,
    "DELIVERING": 3,
    "AUDIT_PAUSE": 3,
    "DELIVERIED": 4,
    "UNDELIVERIED": 4,
    "OFFLINE_AUDIT": 4,
}
COUNTS = (
    "total_play",
    "custom_like",
    "dy_share",
    "dy_comment",
    "show_cnt",
    "dy_follow",
    "dy_home_visited",
    "dp_target_convert_cnt",
)


def _query(params: dict[str, Any]) -> dict[str, Any]:
    """JSON query fields (filter, stat_time, group_by) as the real API takes them."""
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}


@dataclass
class Sim:
    app: FastAPI
    http: httpx.Client
    clock: SimClock

    @property
    def world(self) -> DouplusWorld:
        world: DouplusWorld = self.app.state.world
        return world

    def accounts(self) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self.http.get("/__sim/accounts").json()
        return accounts

    def call(self, path: str, account: dict[str, Any], **params: Any) -> dict[str, Any]:
        params.setdefault("aweme_sec_uid", account["aweme_sec_uid"])
        headers = {"Access-Token": params.pop("token", account["access_token"])}
        answer = self.http.get(path, params=_query(params), headers=headers)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    def oauth(self, path: str, **body: Any) -> dict[str, Any]:
        answer = self.http.post(path, json={**APP, **body})
        assert answer.status_code == 200
        envelope: dict[str, Any] = answer.json()
        return envelope

    def refreshed(self, account: dict[str, Any]) -> dict[str, Any]:
        """The account with new tokens, as a client gets them once its access token expired."""
        data = self.oauth(
            REFRESH_TOKEN_PATH, grant_type="refresh_token", refresh_token=account["refresh_token"]
        )["data"]
        return account | {key: data[key] for key in ("access_token", "refresh_token")}

    def totals(self, account: dict[str, Any], **params: Any) -> dict[str, Any]:
        params["aweme_sec_uid"] = account["aweme_sec_uid"]
        totals: dict[str, Any] = self.http.get("/__sim/totals", params=params).json()
        return totals


@pytest.fixture
def sim() -> Iterator[Sim]:
    clock = SimClock(START)
    app = create_app(seed=3, accounts=3, orders_per_account=60, clock=clock)
    with running(app) as base_url, httpx.Client(base_url=base_url) as http:
        yield Sim(app, http, clock)


def _walk(sim: Sim, path: str, account: dict[str, Any], rows: str, **params: Any) -> list[Any]:
    """Every row of every page, the way a client walks them."""
    found: list[Any] = []
    page = 1
    while True:
        body = sim.call(path, account, page=page, page_size=100, **params)
        assert body["code"] == 0, body
        found += body["data"][rows]
        if page >= body["data"]["page_info"]["total_page"]:
            return found
        page += 1


def _report(sim: Sim, account: dict[str, Any], begin: date, end: date, **params: Any) -> list[Any]:
    stat_time = {"begin_time": begin.isoformat(), "end_time": end.isoformat()}
    rows: list[Any] = _walk(
        sim, REPORT_PATH, account, "order_metrics", stat_time=stat_time, **params
    )
    return rows


def _walk_list(sim: Sim, account: dict[str, Any]) -> list[Any]:
    return _walk(sim, LIST_PATH, account, "order_list")


def _created(row: dict[str, Any]) -> datetime:
    stamp = datetime.strptime(row["order"]["order_create_time"], "%Y-%m-%d %H:%M:%S")
    return stamp.replace(tzinfo=SHANGHAI)


# ---- envelope and the world


def test_envelope_and_order_list_shape(sim: Sim) -> None:
    account = sim.accounts()[0]
    answer = sim.http.get(
        LIST_PATH,
        params={"aweme_sec_uid": account["aweme_sec_uid"], "page_size": 100},
        headers={"Access-Token": account["access_token"]},
    )
    body = answer.json()
    assert set(body) == {"code", "message", "request_id", "data"}
    assert body["code"] == 0
    assert body["request_id"] and answer.headers["X-Tt-Logid"] == body["request_id"]
    assert body["data"]["page_info"] == {
        "page": 1,
        "page_size": 100,
        "total_number": 60,
        "total_page": 1,
    }
    rows = body["data"]["order_list"]
    assert len(rows) == 60
    for row in rows:
        order, (ad,), (item,) = row["order"], row["ad_list"], row["item_info_list"]
        assert re.fullmatch(r"\d{16,19}", order["order_id"])
        assert order["task_id"].isdigit() and ad["ad_id"].isdigit()
        assert re.fullmatch(r"\d{19}", item["aweme_item_id"])
        assert order["task_status"] in STATUSES
        assert isinstance(order["budget"], int) and order["budget"] % 100 == 0
        assert 5000 <= order["budget"] <= 50000
        assert START - timedelta(days=60) <= _created(row) <= START
        assert item["aweme_item_title"] and item["aweme_author_unique_id"]
    created = [_created(row) for row in rows]
    assert created == sorted(created, reverse=True)  # CREATE_TIME DESC by default


def test_the_world_is_deterministic_from_its_seed() -> None:
    def snapshot(seed: int) -> tuple[Any, ...]:
        world = create_app(seed=seed, accounts=2, clock=SimClock(START)).state.world
        account = next(iter(world.accounts.values()))
        return (
            [(a["aweme_sec_uid"], a["nickname"], a["access_token"]) for a in world.account_views()],
            [(o.order_id, o.item_id, o.budget, o.created) for o in account.by_created],
            world.totals(account.sec_uid),
        )

    assert snapshot(5) == snapshot(5)
    assert snapshot(5) != snapshot(6)
    assert all(a[0].startswith("MS4wLjABAAAA") for a in snapshot(5)[0])


def test_a_large_world_has_unique_orders_about_three_per_video() -> None:
    world = create_app(accounts=20, orders_per_account=2000, clock=SimClock(START)).state.world
    now = START.timestamp()
    orders = [order for account in world.accounts.values() for order in account.by_created]
    assert len(orders) == 40_000
    assert len({order.order_id for order in orders}) == 40_000
    assert all(now - 60 * 86400 <= order.created <= now for order in orders)  # a 90-day sync
    videos = len({order.item_id for order in orders})
    assert 2.5 <= len(orders) / videos <= 3.5
    assert {a["order_count"] for a in world.account_views()} == {2000}


# ---- paging


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(0, 230),
    page_size=st.integers(1, 100),
    sort=st.sampled_from(["CREATE_TIME", "ORDER_ID"]),
    direction=st.sampled_from(["ASC", "DESC"]),
)
async def test_list_pages_cover_every_order_exactly_once(
    count: int, page_size: int, sort: str, direction: str
) -> None:
    app = create_app(accounts=1, orders_per_account=count, clock=SimClock(START))
    world = app.state.world
    account = world.account_views()[0]
    params = {"aweme_sec_uid": account["aweme_sec_uid"], "page_size": page_size}
    params |= {"order_by_field": sort, "order_by_type": direction}
    headers = {"Access-Token": account["access_token"]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        seen: list[str] = []
        total_page = math.ceil(count / page_size)
        for page in range(1, total_page + 2):  # one page past the end too
            body = (
                await http.get(LIST_PATH, params={**params, "page": page}, headers=headers)
            ).json()
            info = body["data"]["page_info"]
            assert info == {
                "page": page,
                "page_size": page_size,
                "total_number": count,
                "total_page": total_page,
            }
            rows = body["data"]["order_list"]
            assert len(rows) == (page_size if page < total_page else count - len(seen))
            seen += [row["order"]["order_id"] for row in rows]
    assert len(seen) == len(set(seen)) == count
    assert set(seen) == {o.order_id for o in world.account(account["aweme_sec_uid"]).by_created}
    keys = [int(i) for i in seen] if sort == "ORDER_ID" else None
    if keys is not None:
        assert keys == sorted(keys, reverse=direction == "DESC")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 230), page_size=st.integers(1, 100))
async def test_report_pages_cover_every_order_exactly_once(count: int, page_size: int) -> None:
    app = create_app(accounts=1, orders_per_account=count, clock=SimClock(START))
    account = app.state.world.account_views()[0]
    stat_time = json.dumps({"begin_time": "2025-12-01", "end_time": TODAY.isoformat()})
    params = {"aweme_sec_uid": account["aweme_sec_uid"], "page_size": page_size}
    params["stat_time"] = stat_time
    headers = {"Access-Token": account["access_token"]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        seen: list[int] = []
        for page in range(1, math.ceil(count / page_size) + 2):
            body = (
                await http.get(REPORT_PATH, params={**params, "page": page}, headers=headers)
            ).json()
            assert body["data"]["page_info"]["total_number"] == count
            assert body["data"]["page_info"]["total_page"] == math.ceil(count / page_size)
            seen += [
                int(row["dimension_data"]["order_id"]) for row in body["data"]["order_metrics"]
            ]
    assert len(seen) == len(set(seen)) == count
    assert seen == sorted(seen)  # stable: by order_id


# ---- parameters


_BAD_LIST: list[tuple[dict[str, Any], str]] = [
    ({"page_size": 0}, "page_size"),
    ({"page_size": 101}, "page_size"),
    ({"page_size": "ten"}, "page_size"),
    ({"page": 0}, "page"),
    ({"filter": "{not json"}, "filter"),
    ({"filter": ["VIDEO"]}, "filter"),
    ({"filter": {"status": "SHIPPED"}}, "filter.status"),
    ({"filter": {"scene_type": "TV"}}, "filter.scene_type"),
    ({"filter": {"order_id": "123"}}, "filter.order_id"),
    ({"filter": {"order_id": ["12a"]}}, "filter.order_id"),
    ({"filter": {"order_id": [str(n) for n in range(101)]}}, "filter.order_id"),
    ({"order_by_field": "BUDGET"}, "order_by_field"),
    ({"order_by_type": "UP"}, "order_by_type"),
    ({"aweme_sec_uid": ""}, "aweme_sec_uid"),
]
_DAY_RANGE = {"begin_time": "2026-01-01", "end_time": "2026-01-31"}
_BAD_REPORT: list[tuple[dict[str, Any], str]] = [
    ({}, "stat_time"),
    ({"stat_time": "2026-01-01"}, "stat_time"),
    ({"stat_time": {"begin_time": "2026-01-01"}}, "stat_time.end_time"),
    ({"stat_time": {"begin_time": "2026/01/01", "end_time": "2026-01-02"}}, "stat_time.begin_time"),
    ({"stat_time": {"begin_time": "2026-02-30", "end_time": "2026-03-01"}}, "stat_time.begin_time"),
    ({"stat_time": {"begin_time": "2026-02-02", "end_time": "2026-02-01"}}, "stat_time"),
    ({"stat_time": {"begin_time": "2025-08-31", "end_time": "2026-02-28"}}, "stat_time"),  # 181 d
    ({"stat_time": _DAY_RANGE, "group_by": ["GROUP_BY_ITEM_ID"]}, "group_by"),
    ({"stat_time": _DAY_RANGE, "filter": {"item_ids": [7.5]}}, "filter.item_ids"),
    ({"stat_time": _DAY_RANGE, "page_size": 500}, "page_size"),
]


def test_bad_parameters_answer_40001_naming_them(sim: Sim) -> None:
    account = sim.accounts()[0]
    for path, cases in ((LIST_PATH, _BAD_LIST), (REPORT_PATH, _BAD_REPORT)):
        for params, name in cases:
            body = sim.call(path, account, **params)
            assert body["code"] == 40001, (path, params)
            assert body["message"].startswith(f"{name}:"), (body["message"], params)
            assert body["data"] == {}


def test_the_limits_themselves_are_accepted(sim: Sim) -> None:
    account = sim.accounts()[0]
    span = {"begin_time": "2025-09-02", "end_time": "2026-03-01"}  # 180 days
    assert (date(2026, 3, 1) - date(2025, 9, 2)).days == 180
    ids = [str(n) for n in range(100)]
    for path, params in (
        (LIST_PATH, {"page_size": 100, "filter": {"order_id": ids, "scene_type": "VIDEO"}}),
        (LIST_PATH, {"filter": {"status": "DELIVERIED"}, "order_by_type": "ASC"}),
        (REPORT_PATH, {"stat_time": span, "group_by": ["GROUP_BY_AD_ID"], "page_size": 100}),
    ):
        assert sim.call(path, account, **params)["code"] == 0, params


def test_list_filters(sim: Sim) -> None:
    account = sim.accounts()[1]
    rows = sim.call(LIST_PATH, account, page_size=100)["data"]["order_list"]
    picked = [row["order"]["order_id"] for row in rows[:7]]
    found = sim.call(LIST_PATH, account, filter={"order_id": picked})["data"]
    assert {row["order"]["order_id"] for row in found["order_list"]} == set(picked)
    assert found["page_info"]["total_number"] == 7
    delivered = sim.call(LIST_PATH, account, page_size=100, filter={"status": "DELIVERIED"})
    statuses = [row["order"]["task_status"] for row in rows]
    assert delivered["data"]["page_info"]["total_number"] == statuses.count("DELIVERIED")
    live = sim.call(LIST_PATH, account, filter={"scene_type": "LIVE"})["data"]
    assert live["order_list"] == [] and live["page_info"]["total_number"] == 0
    video = sim.call(LIST_PATH, account, filter={"scene_type": "VIDEO"})["data"]
    assert video["page_info"]["total_number"] == 60


# ---- tokens


def test_access_tokens_are_checked(sim: Sim) -> None:
    mine, other = sim.accounts()[:2]
    assert sim.call(LIST_PATH, mine, token="")["code"] == 40104
    assert sim.call(LIST_PATH, mine, token="not-a-token")["code"] == 40105
    assert sim.call(LIST_PATH, mine, token=other["access_token"])["code"] == 40105
    assert sim.call(REPORT_PATH, mine, token=other["access_token"])["code"] == 40105
    sim.clock.advance(86400 - 1)
    assert sim.call(LIST_PATH, mine)["code"] == 0
    sim.clock.advance(1)
    assert sim.call(LIST_PATH, mine)["code"] == 40102
    assert sim.call(REPORT_PATH, mine, stat_time=_DAY_RANGE)["code"] == 40102


def test_refresh_rotates_and_the_old_refresh_token_dies(sim: Sim) -> None:
    account = sim.accounts()[0]
    sim.world.expire_access_token(account["aweme_sec_uid"])
    assert sim.call(LIST_PATH, account)["code"] == 40102
    old_refresh = account["refresh_token"]
    refreshed = sim.oauth(REFRESH_TOKEN_PATH, grant_type="refresh_token", refresh_token=old_refresh)
    assert refreshed["code"] == 0
    data = refreshed["data"]
    assert data["expires_in"] == 86400 and data["refresh_token_expires_in"] == 2592000
    assert data["refresh_token"] != old_refresh and data["access_token"] != account["access_token"]
    assert sim.call(LIST_PATH, account, token=data["access_token"])["code"] == 0
    again = sim.oauth(REFRESH_TOKEN_PATH, grant_type="refresh_token", refresh_token=old_refresh)
    assert again["code"] == 40107
    current = sim.accounts()[0]
    assert (current["access_token"], current["refresh_token"]) == (
        data["access_token"],
        data["refresh_token"],
    )
    assert current["expires_in"] == 86400


def test_refresh_errors(sim: Sim) -> None:
    account = sim.accounts()[0]
    token = account["refresh_token"]
    wrong_grant = sim.oauth(REFRESH_TOKEN_PATH, grant_type="auth_code", refresh_token=token)
    assert wrong_grant["code"] == 40108
    wrong_app = sim.http.post(
        REFRESH_TOKEN_PATH,
        json={**APP, "app_id": "other", "grant_type": "refresh_token", "refresh_token": token},
    ).json()
    assert wrong_app["code"] == 40001 and "app_id" in wrong_app["message"]
    wrong_secret = sim.http.post(
        REFRESH_TOKEN_PATH,
        json={**APP, "secret": "guess", "grant_type": "refresh_token", "refresh_token": token},
    ).json()
    assert wrong_secret["code"] == 40001 and "secret" in wrong_secret["message"]
    assert sim.http.post(REFRESH_TOKEN_PATH, content=b"[1]").json()["code"] == 40001
    sim.clock.advance(2592000)
    expired = sim.oauth(REFRESH_TOKEN_PATH, grant_type="refresh_token", refresh_token=token)
    assert expired["code"] == 40103
    other = sim.accounts()[1]
    sim.http.post(
        "/__sim/tokens/expire", json={"aweme_sec_uid": other["aweme_sec_uid"], "which": "refresh"}
    )
    refused = sim.oauth(
        REFRESH_TOKEN_PATH, grant_type="refresh_token", refresh_token=other["refresh_token"]
    )
    assert refused["code"] == 40103


def test_auth_codes_are_single_use_and_map_to_one_account(sim: Sim) -> None:
    account = sim.accounts()[2]
    issued = sim.http.post("/__sim/auth-codes", json={"aweme_sec_uid": account["aweme_sec_uid"]})
    code = issued.json()["auth_code"]
    assert sim.oauth(ACCESS_TOKEN_PATH, grant_type="refresh_token", auth_code=code)["code"] == 40108
    granted = sim.oauth(ACCESS_TOKEN_PATH, grant_type="auth_code", auth_code=code)
    assert granted["code"] == 0
    token = granted["data"]["access_token"]
    assert sim.call(LIST_PATH, account, token=token)["code"] == 0
    assert sim.call(LIST_PATH, sim.accounts()[0], token=token)["code"] == 40105
    reused = sim.oauth(ACCESS_TOKEN_PATH, grant_type="auth_code", auth_code=code)
    assert reused["code"] == 40001 and reused["message"].startswith("auth_code:")
    missing = sim.http.post("/__sim/auth-codes", json={"aweme_sec_uid": "MS4wLjABAAAAnobody"})
    assert missing.status_code == 404


def test_access_token_expiry_follows_the_clock_through_the_control_route(sim: Sim) -> None:
    account = sim.accounts()[0]
    expire = {"aweme_sec_uid": account["aweme_sec_uid"], "which": "access"}
    assert sim.http.post("/__sim/tokens/expire", json=expire).status_code == 200
    assert sim.call(LIST_PATH, account)["code"] == 40102
    assert sim.accounts()[0]["expires_in"] == 0
    assert sim.call(LIST_PATH, sim.accounts()[1])["code"] == 0  # the others are untouched


# ---- metrics over time


def test_metrics_only_grow_and_orders_end_in_a_final_state(sim: Sim) -> None:
    account = sim.accounts()[0]
    asked = {"aweme_sec_uid": account["aweme_sec_uid"], "count": 60}
    added = sim.http.post("/__sim/orders", json=asked).json()["order_ids"]
    assert len(added) == len(set(added)) == 60
    newest = sim.call(LIST_PATH, account, page_size=100, filter={"order_id": added})["data"]
    assert {row["order"]["task_status"] for row in newest["order_list"]} == {"UNPAID"}
    budgets = {row["order"]["order_id"]: row["order"]["budget"] for row in newest["order_list"]}
    before: dict[str, tuple[Any, ...]] = {}
    status: dict[str, str] = {}
    for step in range(1, 51):  # 100 hours, two at a time
        sim.clock.advance(2 * 3600)
        if step % 12 == 0:
            account = sim.refreshed(account)
        rows = sim.call(LIST_PATH, account, page_size=100, filter={"order_id": added})["data"]
        now_status = {r["order"]["order_id"]: r["order"]["task_status"] for r in rows["order_list"]}
        for order_id, current in now_status.items():
            previous = status.get(order_id, "UNPAID")
            assert PHASE[current] >= PHASE[previous]
            assert previous not in FINAL_STATUSES or current == previous
        status = now_status
        report = _report(
            sim, account, TODAY, TODAY + timedelta(days=5), filter={"order_ids": added}
        )
        for row in report:
            order_id, metrics = row["dimension_data"]["order_id"], row["metrics_data"]
            figures = (Decimal(str(metrics["stat_cost"])), *(metrics[key] for key in COUNTS))
            assert all(a >= b for a, b in zip(figures, before.get(order_id, figures), strict=True))
            assert figures[0] * 100 <= budgets[order_id]
            assert (figures[0] * 100 == budgets[order_id]) == (status[order_id] == "DELIVERIED")
            assert 0 <= metrics["play_duration_5s_rank"] <= 1
            before[order_id] = figures
    assert set(status.values()) <= FINAL_STATUSES
    assert any(figures[1] > 0 for figures in before.values())


# ---- the report's ranges


def _sum(rows: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = [row["metrics_data"] for row in rows]
    summed: dict[str, Any] = {key: sum(m[key] for m in metrics) for key in COUNTS}
    summed["stat_cost"] = str(sum((Decimal(str(m["stat_cost"])) for m in metrics), Decimal("0.00")))
    return summed


def test_creation_to_today_gives_the_cumulative_figures(sim: Sim) -> None:
    account = sim.accounts()[0]
    sim.http.post("/__sim/orders", json={"aweme_sec_uid": account["aweme_sec_uid"], "count": 5})
    sim.clock.advance(5 * 3600)  # still today in Shanghai: 17:00
    orders = _walk_list(sim, account)
    first = min(_created(row) for row in orders).date()
    rows = _report(sim, account, first, TODAY)
    totals = sim.totals(account)
    assert len(rows) == totals["order_count"] == 65
    assert _sum(rows) == {key: totals[key] for key in ("stat_cost", *COUNTS)}
    since = TODAY - timedelta(days=20)
    recent = sim.totals(account, created_since=since.isoformat())
    young = {row["order"]["order_id"] for row in orders if _created(row).date() >= since}
    assert recent["order_count"] == len(young)
    young_rows = [row for row in rows if row["dimension_data"]["order_id"] in young]
    assert _sum(young_rows) == {key: recent[key] for key in ("stat_cost", *COUNTS)}


def test_ranges_add_up_and_later_orders_are_left_out(sim: Sim) -> None:
    account = sim.accounts()[1]
    sim.http.post("/__sim/orders", json={"aweme_sec_uid": account["aweme_sec_uid"], "count": 4})
    sim.clock.advance(3 * 86400)  # the new orders deliver over the next days
    account = sim.refreshed(account)
    today = TODAY + timedelta(days=3)
    begin, middle = TODAY - timedelta(days=70), TODAY + timedelta(days=1)
    whole = _report(sim, account, begin, today)
    early = _report(sim, account, begin, middle - timedelta(days=1))
    late = _report(sim, account, middle, today)
    assert len(whole) == len(late) == 64 and len(early) == 64  # all created by the end of TODAY
    by_id = {row["dimension_data"]["order_id"]: row for row in early}
    for row in late:
        both = [row, by_id[row["dimension_data"]["order_id"]]]
        assert _sum(both) == _sum(
            [next(r for r in whole if r["dimension_data"] == row["dimension_data"])]
        )
    yesterday = TODAY - timedelta(days=1)
    until_yesterday = _report(sim, account, begin, yesterday)
    created = {row["order"]["order_id"]: _created(row).date() for row in _walk_list(sim, account)}
    older = {order_id for order_id, day in created.items() if day <= yesterday}
    assert 0 < len(older) < 64
    assert {row["dimension_data"]["order_id"] for row in until_yesterday} == older
    future = _report(sim, account, today + timedelta(days=1), today + timedelta(days=2))
    assert len(future) == 64
    assert _sum(future) == {"stat_cost": "0.00", **dict.fromkeys(COUNTS, 0)}
    assert {row["metrics_data"]["play_duration_5s_rank"] for row in future} == {0}


def test_costs_read_as_two_decimal_numbers(sim: Sim) -> None:
    account = sim.accounts()[2]
    sim.http.post("/__sim/orders", json={"aweme_sec_uid": account["aweme_sec_uid"], "count": 30})
    sim.clock.advance(7 * 3600 + 17)
    stat_time = json.dumps({"begin_time": "2025-12-15", "end_time": TODAY.isoformat()})
    text = sim.http.get(
        REPORT_PATH,
        params={
            "aweme_sec_uid": account["aweme_sec_uid"],
            "stat_time": stat_time,
            "page_size": 100,
        },
        headers={"Access-Token": account["access_token"]},
    ).text
    costs = re.findall(r'"(?:stat_cost|custom_convert_cost)":\s*([^,}]+)', text)
    assert len(costs) == 2 * 90
    assert all(re.fullmatch(r"\d+(\.\d{1,2})?", cost) for cost in costs), costs
    ranks = re.findall(r'"play_duration_5s_rank":\s*([^,}]+)', text)
    assert all(re.fullmatch(r"(0|1)(\.\d{1,4})?", rank) for rank in ranks), ranks
    assert len(re.findall(r'"stat_cost":\s*[1-9]', text)) > 0


# ---- existence, control and faults


def test_orders_exist_from_their_creation_on(sim: Sim) -> None:
    account = sim.accounts()[0]
    sim.clock.set(START - timedelta(days=30))
    rows = _walk_list(sim, account)
    assert 0 < len(rows) < 60
    assert all(_created(row) <= sim.clock.now() for row in rows)
    assert sim.totals(account)["order_count"] == len(rows)
    assert sim.accounts()[0]["order_count"] == len(rows)


def test_new_orders_come_first_in_the_list(sim: Sim) -> None:
    account = sim.accounts()[0]
    sim.clock.advance(60)
    added = sim.http.post(
        "/__sim/orders", json={"aweme_sec_uid": account["aweme_sec_uid"], "count": 3}
    ).json()["order_ids"]
    data = sim.call(LIST_PATH, account, page_size=3)["data"]
    assert {row["order"]["order_id"] for row in data["order_list"]} == set(added)
    assert data["page_info"]["total_number"] == 63
    assert sim.accounts()[0]["order_count"] == 63
    unknown = sim.http.post("/__sim/orders", json={"aweme_sec_uid": "nobody", "count": 1})
    assert unknown.status_code == 404


def test_faults_speak_the_upstream_envelope(sim: Sim) -> None:
    account = sim.accounts()[0]
    sim.http.delete("/__sim/requests")
    sim.http.post("/__sim/faults", json={"business_code": 40100, "count": 2, "path": LIST_PATH})
    for _ in range(2):
        body = sim.call(LIST_PATH, account)
        assert body["code"] == 40100
        assert set(body) == {"code", "message", "request_id", "data"}
    assert sim.call(REPORT_PATH, account, stat_time=_DAY_RANGE)["code"] == 0
    assert sim.call(LIST_PATH, account)["code"] == 0
    sim.http.post("/__sim/faults", json={"rate_limit_per_second": 0.01})
    assert sim.call(LIST_PATH, account)["code"] == 0
    assert sim.call(LIST_PATH, account)["code"] == 40100
    sim.http.delete("/__sim/faults")
    sim.http.post("/__sim/faults", json={"status": 502, "count": 1, "retry_after": 2})
    failed = sim.http.get(LIST_PATH, params={"aweme_sec_uid": account["aweme_sec_uid"]})
    assert (failed.status_code, failed.headers["Retry-After"]) == (502, "2")
    counted = sim.http.get("/__sim/requests").json()
    assert counted == {"total": 7, "by_path": {LIST_PATH: 6, REPORT_PATH: 1}}
