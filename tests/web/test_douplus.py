"""The DOU+ pages in a real browser, against `tallyhub serve` with the DOU+ simulator inside
(as `make run` has it): the accounts, the orders and the video ranking show the simulator's
data as the API gives it; an order shows its own figures, never its video's; the order
page draws its windows; the sync button runs a sync; an account whose tokens expired
stands out until it is re-authorized through the connect dialog; an account disconnected
and connected again syncs afresh; a viewer sees no write control; both languages, at 1440
and 390 px. No test here leaves a failed job run behind (the jobs page's tests read them)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, percent, screenshot, sign_in

pytestmark = pytest.mark.browser

NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
SYNCED = 30_000  # ms: a sync against the local simulator takes about a second
FIVE_MINUTES = timedelta(minutes=5)


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    live_server.douplus_synced()
    with live_server.client() as client:
        yield client


def money(text: str) -> str:
    """A decimal string of yuan as the page writes it in either language: ¥1,234.50."""
    return f"¥{Decimal(text):,.2f}"


def name_of(account: dict[str, Any]) -> str:
    return account["nickname"] or account["aweme_sec_uid"]  # type: ignore[no-any-return]


def active_accounts(api: httpx.Client) -> list[dict[str, Any]]:
    items = api.get("/api/douplus/accounts").json()["items"]
    return [a for a in items if a["status"] == "active"]


def stream(account: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in account["streams"] if s["stream"] == name), None)


def no_sideways_scroll(page: Page) -> None:
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")


def chart_data(page: Page) -> list[dict[str, Any]]:
    """The chart's traces as plotly holds them: name, x and y."""
    return page.evaluate(  # type: ignore[no-any-return]
        "Array.from(document.getElementById('window-chart').data,"
        " (d) => ({name: d.name, x: Array.from(d.x), y: Array.from(d.y)}))"
    )


def growth(windows: list[dict[str, Any]], cost: str, plays: str, started: str) -> list[Any]:
    """Cumulative windows to growth per window, as the page should: each window minus the
    one before; the first from zero only when the order started within a window of it."""
    first = datetime.fromisoformat(windows[0]["stat_time"])
    from_zero = datetime.fromisoformat(started) >= first - FIVE_MINUTES
    rows = [(Decimal(w[cost]), w[plays]) for w in windows]
    costs = [float(rows[0][0]) if from_zero else None]
    counts = [rows[0][1] if from_zero else None]
    for (cost_before, plays_before), (cost_now, plays_now) in itertools.pairwise(rows):
        costs.append(float(cost_now - cost_before))
        counts.append(plays_now - plays_before)
    return [costs, counts]


def test_the_accounts_orders_and_ranking_show_the_simulators_data(
    page: Page, api: httpx.Client
) -> None:
    accounts = api.get("/api/douplus/accounts").json()["items"]
    orders = api.get("/api/douplus/orders", params={"page_size": 20}).json()
    videos = api.get("/api/douplus/videos", params={"page_size": 20}).json()
    summary = api.get("/api/douplus/summary").json()
    assert len(accounts) == 3 and orders["total"] > 20 and videos["total"] > 0
    sign_in(page, path="/douplus")

    for account in accounts:
        row = page.locator(f"#douplus-account-{account['id']}")
        expect(row).to_contain_text(account["nickname"])
        expect(row.locator("td[data-f=orders]")).to_have_text(f"{account['order_count']:,}")
        stats = stream(account, "stats")
        assert stats is not None
        synced = row.locator("td[data-f=stats] time")
        expect(synced).to_have_attribute("datetime", stats["last_success_at"])
        expect(synced).to_have_text(re.compile(r"ago|now"))
        expect(synced).to_have_attribute("title", re.compile(r"GMT\+8"))  # the exact time
    expect(page.locator("#tile-orders-today [data-value]")).to_have_text(
        f"{summary['orders_today']:,}"
    )
    expect(page.locator("#tile-cost-today [data-value]")).to_have_text(money(summary["cost_today"]))

    rows = page.locator("#orders tbody tr")
    expect(rows).to_have_count(20)
    pages = -(-orders["total"] // 20)
    expect(page.locator("#orders-pager")).to_contain_text(
        f"Page 1 of {pages} · {orders['total']:,} in all"
    )
    for index, order in enumerate(orders["items"]):
        row = rows.nth(index)
        expect(row).to_have_attribute("id", f"douplus-order-{order['order_id']}")
        expect(row.locator("td[data-f=cost]")).to_have_text(money(order["stat_cost"]))
        expect(row.locator("td[data-f=plays]")).to_have_text(f"{order['total_play']:,}")
        expect(row.locator("td[data-f=likes]")).to_have_text(f"{order['custom_like']:,}")
    page.locator("#orders-pager").get_by_role("button", name="Next").click()
    expect(page.locator("#orders-pager")).to_contain_text(f"Page 2 of {pages}")
    page.get_by_label("Sort by").select_option("-stat_cost")
    costliest = api.get("/api/douplus/orders", params={"sort": "-stat_cost"}).json()["items"][0]
    expect(page.locator("#orders-pager")).to_contain_text(f"Page 1 of {pages}")
    expect(rows.first).to_have_attribute("id", f"douplus-order-{costliest['order_id']}")

    ranking = page.locator("#videos tbody tr")
    expect(ranking).to_have_count(len(videos["items"]))
    top = videos["items"][0]
    expect(ranking.first).to_contain_text(top["title"])
    expect(ranking.first.locator("td[data-f=cost]")).to_have_text(money(top["total_cost"]))
    page.locator("#video-sort").get_by_role("button", name="Plays", exact=True).click()
    by_plays = api.get("/api/douplus/videos", params={"sort": "total_play"}).json()["items"][0]
    expect(ranking.first).to_have_attribute("id", f"douplus-video-{by_plays['item_id']}")
    expect(ranking.first.locator("td[data-f=plays]")).to_have_text(f"{by_plays['total_play']:,}")

    screenshot(page, "douplus-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "douplus-en-390")


def test_orders_of_one_video_show_their_own_figures(page: Page, api: httpx.Client) -> None:
    """The seed's "常见错误": three orders of one video must show three play counts, not
    the video's sum three times."""
    videos = api.get("/api/douplus/videos", params={"page_size": 200}).json()["items"]
    video = next(v for v in videos if v["order_count"] >= 3)
    own = api.get("/api/douplus/orders", params={"item_id": video["item_id"]}).json()["items"]
    plays = [o["total_play"] for o in own]
    assert len(set(plays)) == len(plays) == video["order_count"]
    assert sum(plays) == video["total_play"] and video["total_play"] not in plays

    sign_in(page, path="/douplus")
    page.get_by_label("Video id").fill(video["item_id"])
    page.get_by_label("Video id").press("Enter")
    rows = page.locator("#orders tbody tr")
    expect(rows).to_have_count(len(own))
    shown = [rows.nth(i).locator("td[data-f=plays]").inner_text() for i in range(len(own))]
    assert sorted(shown) == sorted(f"{n:,}" for n in plays)

    rows.first.get_by_role("link", name=video["item_id"]).click()
    page.wait_for_url(f"**/douplus/videos/{video['item_id']}")
    expect(page.locator("h1")).to_have_text(own[0]["title"])
    expect(page.locator("#tile-plays [data-value]")).to_have_text(f"{video['total_play']:,}")
    expect(page.locator("#tile-cost [data-value]")).to_have_text(money(video["total_cost"]))
    video_rows = page.locator("#orders tbody tr")
    expect(video_rows).to_have_count(len(own))
    for order in own:
        row = page.locator(f"#douplus-order-{order['order_id']}")
        expect(row.locator("td[data-f=plays]")).to_have_text(f"{order['total_play']:,}")
    page.get_by_role("button", name="Cumulative").click()
    windows = api.get(f"/api/douplus/videos/{video['item_id']}/windows").json()
    page.wait_for_function(
        f"document.getElementById('window-chart').data?.[1].y.length === {len(windows)}"
    )
    cost, played = chart_data(page)
    assert played["y"] == [w["total_play"] for w in windows]
    assert cost["y"] == [float(w["total_cost"]) for w in windows]
    screenshot(page, "douplus-video-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "douplus-video-en-390")


def test_the_order_page_draws_its_windows(page: Page, api: httpx.Client) -> None:
    order = api.get("/api/douplus/orders", params={"sort": "-total_play"}).json()["items"][0]
    detail = api.get(f"/api/douplus/orders/{order['order_id']}").json()
    windows = detail["windows"]
    assert windows and windows[-1]["total_play"] == order["total_play"] > 0
    sign_in(page, path="/douplus")
    page.get_by_label("Sort by").select_option("-total_play")
    page.locator(f"#douplus-order-{order['order_id']}").get_by_role(
        "link", name=order["title"]
    ).click()
    page.wait_for_url(f"**/douplus/orders/{order['order_id']}")

    expect(page.locator("h1")).to_have_text(order["title"])
    expect(page.locator("#tile-cost [data-value]")).to_have_text(money(order["stat_cost"]))
    expect(page.locator("#tile-plays [data-value]")).to_have_text(f"{order['total_play']:,}")
    rate = percent(order["play_duration_5s_rank"])
    expect(page.locator("#tile-rate-5s [data-value]")).to_have_text(rate)
    expect(page.locator("#windows tbody tr")).to_have_count(min(len(windows), 20))

    page.get_by_role("button", name="Cumulative").click()
    page.wait_for_function("document.getElementById('window-chart').data?.[0].type === 'scatter'")
    cost, plays = chart_data(page)
    assert (cost["name"], plays["name"]) == ("Cost (¥)", "Plays")
    assert cost["y"] == [float(w["stat_cost"]) for w in windows]
    assert plays["y"] == [w["total_play"] for w in windows]
    page.get_by_role("button", name="Per window").click()
    page.wait_for_function("document.getElementById('window-chart').data?.[0].type === 'bar'")
    cost, plays = chart_data(page)
    expected = growth(windows, "stat_cost", "total_play", detail["order_create_time"])
    assert [cost["y"], plays["y"]] == expected
    # No growth known yet (one window, the order older than it): the plot says why.
    notes = page.evaluate(
        "document.getElementById('window-chart').layout.annotations.map((a) => a.text)"
    )
    if all(v is None for v in expected[0] + expected[1]):
        assert [n.replace("<br>", " ") for n in notes] == [
            "Growth shows from the second synced window on; Cumulative shows the figures so far."
        ]
    else:
        assert notes == []
    screenshot(page, "douplus-order-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "douplus-order-en-390")


def test_growth_per_window_is_exact_to_the_fen(page: Page, api: httpx.Client) -> None:
    """The page's conversion of cumulative windows to growth, on windows the simulator has
    not had time to make: 0.30 − 0.10 is 0.20 yuan, not 0.19999999999999998."""
    order = api.get("/api/douplus/orders", params={"page_size": 1}).json()["items"][0]
    sign_in(page, path=f"/douplus/orders/{order['order_id']}")
    expect(page.locator("#order-body")).to_be_visible()
    windows = [
        {"stat_time": "2026-05-01T10:00:00Z", "stat_cost": "0.10", "total_play": 7},
        {"stat_time": "2026-05-01T10:05:00Z", "stat_cost": "0.30", "total_play": 19},
        {"stat_time": "2026-05-01T10:10:00Z", "stat_cost": "1234567.89", "total_play": 19},
    ]
    script = "([w, s]) => Douplus.growth(Douplus.windowsOf(w, 'stat_cost', 'total_play'), s)"
    started_before = page.evaluate(script, [windows, "2026-04-30T08:00:00Z"])
    assert [(g["cost"], g["plays"]) for g in started_before] == [
        (None, None),  # spent before the first window: not this window's growth
        (20, 12),
        (123456759, 0),
    ]
    started_within = page.evaluate(script, [windows, "2026-05-01T09:58:00Z"])
    assert (started_within[0]["cost"], started_within[0]["plays"]) == (10, 7)


def test_the_sync_button_runs_a_sync(page: Page, api: httpx.Client) -> None:
    account = active_accounts(api)[0]
    before = stream(account, "orders_incremental")
    sign_in(page, path="/douplus")
    row = page.locator(f"#douplus-account-{account['id']}")
    row.get_by_role("button", name=f"Sync {name_of(account)} now").click()
    expect(page.locator("#toast")).to_contain_text(
        f"Sync of {name_of(account)} finished.", timeout=SYNCED
    )

    after = stream(api.get(f"/api/douplus/accounts/{account['id']}").json(), "orders_incremental")
    assert (
        after is not None and after["last_success_at"] is not None and after["last_error"] is None
    )
    assert before is None or after["last_success_at"] > before["last_success_at"]
    synced = row.locator("td[data-f=orders_incremental] time")
    expect(synced).to_have_attribute("datetime", after["last_success_at"])
    expect(row.get_by_role("button", name=f"Sync {name_of(account)} now")).to_be_enabled()


def _fresh_tokens(simulator: str, sec_uid: str) -> dict[str, Any]:
    """New tokens for the account, as its owner's consent would give (an auth_code the
    simulator issues, exchanged as Ocean Engine's OAuth does; `make run` has no app id)."""
    code = httpx.post(f"{simulator}/__sim/auth-codes", json={"aweme_sec_uid": sec_uid})
    body = {
        "app_id": "",
        "secret": "",
        "grant_type": "auth_code",
        "auth_code": code.json()["auth_code"],
    }
    grant = httpx.post(f"{simulator}/open_api/oauth2/access_token/", json=body).json()
    assert grant["code"] == 0, grant
    return grant["data"]  # type: ignore[no-any-return]


def test_an_account_whose_tokens_expired_stands_out_until_reauthorized(
    page: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    account = active_accounts(api)[-1]
    name, sec_uid = name_of(account), account["aweme_sec_uid"]
    simulator = live_server.douplus_simulator()
    for which in ("refresh", "access"):
        expired = httpx.post(
            f"{simulator}/__sim/tokens/expire", json={"aweme_sec_uid": sec_uid, "which": which}
        )
        assert expired.status_code == 200, expired.text
    sign_in(page, path="/douplus")
    row = page.locator(f"#douplus-account-{account['id']}")
    row.get_by_role("button", name=f"Sync {name} now").click()

    expect(row).to_have_class(re.compile(r"\bneeds-reauth\b"), timeout=SYNCED)
    expect(page.locator("#accounts tbody tr").first).to_have_id(f"douplus-account-{account['id']}")
    expect(row.locator("td[data-f=status] .badge")).to_have_text("needs re-authorization")
    expect(row.locator("td[data-f=status] .reason")).to_contain_text("refresh token expired")
    expect(page.locator("#reauth-banner")).to_contain_text(f"Needs re-authorization (1): {name}")
    expect(page.locator("#tile-accounts [data-sub]")).to_have_text("1 to re-authorize")
    expect(row.get_by_role("button", name=f"Sync {name} now")).to_have_count(0)
    screenshot(page, "douplus-needs-reauth-en-1440")
    summary = api.get("/api/douplus/summary").json()
    page.goto("/")
    tile = page.locator("#tile-douplus")
    expect(tile.locator("[data-value]")).to_have_text(money(summary["cost_today"]))
    expect(tile.locator("[data-sub]")).to_contain_text(f"{summary['orders_today']:,} orders today")
    expect(tile.locator("[data-sub] .badge.warn")).to_have_text("1 to re-authorize")
    expect(tile).to_have_attribute("href", "/douplus")

    page.goto("/douplus")
    row.get_by_role("button", name=f"Re-authorize {name}").click()
    dialog = page.locator("#connect-dialog")
    expect(dialog.get_by_label("Douyin sec_uid (aweme_sec_uid)")).to_have_value(sec_uid)
    tokens = _fresh_tokens(simulator, sec_uid)
    dialog.get_by_label("Access token", exact=True).fill(tokens["access_token"])
    dialog.get_by_label("Refresh token").fill(tokens["refresh_token"])
    dialog.get_by_label("Access token lifetime (seconds)").fill(str(tokens["expires_in"]))
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text(f"Sync of {name} finished.", timeout=SYNCED)
    expect(row).not_to_have_class(re.compile(r"needs-reauth"))
    expect(row.locator("td[data-f=status] .badge").first).to_have_text("active")
    expect(page.locator("#reauth-banner")).to_be_hidden()


def test_an_account_disconnected_and_connected_again(
    page: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    account = active_accounts(api)[0]
    name, sec_uid = name_of(account), account["aweme_sec_uid"]
    sign_in(page, path="/douplus")
    page.locator(f"#douplus-account-{account['id']}").get_by_role(
        "button", name=f"Disconnect {name}"
    ).click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text(f"Disconnect {name}?")
    confirm.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#toast")).to_contain_text(f"{name} disconnected.")
    expect(page.locator(f"#douplus-account-{account['id']}")).to_have_count(0)
    assert sec_uid not in [a["aweme_sec_uid"] for a in active_accounts(api)]

    page.get_by_role("button", name="Connect account").click()
    dialog = page.locator("#connect-dialog")
    expect(dialog.get_by_label("Douyin sec_uid (aweme_sec_uid)")).to_have_value("")
    dialog.get_by_label("Douyin sec_uid (aweme_sec_uid)").fill(sec_uid)
    dialog.get_by_label("Nickname").fill(name)
    tokens = _fresh_tokens(live_server.douplus_simulator(), sec_uid)
    dialog.get_by_label("Access token", exact=True).fill(tokens["access_token"])
    dialog.get_by_label("Refresh token").fill(tokens["refresh_token"])
    dialog.get_by_label("Access token lifetime (seconds)").fill("0")
    dialog.get_by_role("button", name="Connect").click()  # the browser refuses 0 seconds
    expect(dialog).to_be_visible()
    dialog.get_by_label("Access token lifetime (seconds)").fill(str(tokens["expires_in"]))
    dialog.get_by_role("button", name="Connect").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text(f"Sync of {name} finished.", timeout=SYNCED)

    again = next(a for a in active_accounts(api) if a["aweme_sec_uid"] == sec_uid)
    assert again["id"] != account["id"] and again["order_count"] >= account["order_count"]
    row = page.locator(f"#douplus-account-{again['id']}")
    expect(row.locator("td[data-f=orders]")).to_have_text(f"{again['order_count']:,}")
    synced = stream(again, "orders_full")
    assert synced is not None
    expect(row.locator("td[data-f=orders_full] time")).to_have_attribute(
        "datetime", synced["last_success_at"]
    )


def test_a_viewer_sees_no_write_control(browser: Browser, base_url: str, api: httpx.Client) -> None:
    order = api.get("/api/douplus/orders", params={"page_size": 1}).json()["items"][0]
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        page.goto("/douplus")
        expect(page.locator("#accounts tbody tr")).to_have_count(3)
        expect(page.locator("#orders tbody tr").first).to_be_visible()
        for control in ("#connect-account", "#connect-dialog", "#confirm-dialog"):
            expect(page.locator(control)).to_have_count(0)
        for label in ("Sync now", "Full sync", "Disconnect", "Re-authorize"):
            expect(page.get_by_role("button", name=label)).to_have_count(0)
        page.goto(f"/douplus/orders/{order['order_id']}")
        expect(page.locator("#tile-cost [data-value]")).to_have_text(money(order["stat_cost"]))
    finally:
        context.close()


def test_an_unknown_order_is_said_in_words(page: Page) -> None:
    sign_in(page, path="/douplus/orders/404404")
    expect(page.locator("#order-state [role=alert]")).to_have_text(
        "Could not load: no DOU+ order 404404"
    )
    expect(page.locator("#order-body")).to_be_hidden()


def test_the_pages_in_chinese(browser: Browser, base_url: str, api: httpx.Client) -> None:
    order = api.get("/api/douplus/orders", params={"sort": "-stat_cost"}).json()["items"][0]
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/douplus")
        expect(page.locator("h1")).to_have_text("DOU+ 投放")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("DOU+ 投放")
        expect(page.locator("#accounts tbody tr .badge").first).to_have_text("正常")
        row = page.locator(f"#douplus-order-{order['order_id']}")
        page.get_by_label("排序", exact=True).select_option("-stat_cost")
        expect(row.locator("td[data-f=cost]")).to_have_text(money(order["stat_cost"]))
        expect(page.locator("#videos tbody tr")).not_to_have_count(0)
        screenshot(page, "douplus-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "douplus-zh-CN-390")

        page.set_viewport_size(WIDE)
        page.goto(f"/douplus/orders/{order['order_id']}")
        expect(page.locator("#chart-title")).to_have_text("每 5 分钟窗口的消耗与播放")
        expect(page.locator("#tile-cost [data-value]")).to_have_text(money(order["stat_cost"]))
        page.wait_for_function("document.getElementById('window-chart').data?.length === 2")
        screenshot(page, "douplus-order-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "douplus-order-zh-CN-390")

        page.set_viewport_size(WIDE)
        page.goto(f"/douplus/videos/{order['item_id']}")
        expect(page.locator("#orders-title")).to_have_text("该视频的订单")
        page.wait_for_function("document.getElementById('window-chart').data?.length === 2")
        screenshot(page, "douplus-video-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "douplus-video-zh-CN-390")
    finally:
        context.close()
