"""The overview page in a real browser: each tile shows its domain's figure as the API
gives it, formatted with thousands separators, and links to its page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import LiveServer, context_for, percent, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_each_tile_shows_what_its_api_says(page: Page, live_server: LiveServer) -> None:
    sign_in(page)
    with live_server.client() as api:
        leads = api.get("/api/leads/summary").json()
        clicks = api.get("/api/clicks/summary").json()
        since = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
        failed = api.get("/api/jobs/runs", params={"status": "failed", "since": since}).json()
    assert leads["today_incoming"] > 0 and clicks["today_clicks"] > 0  # the demo data's

    tile = page.locator("#tile-leads-today [data-value]")
    expect(tile).to_have_text(f"{leads['today_incoming']:,}")
    expect(page.locator("#tile-leads-today [data-sub]")).to_contain_text("vs same time yesterday")
    rate = leads["today_duplicates"] / leads["today_incoming"]
    expect(page.locator("#tile-duplicate-rate [data-value]")).to_have_text(percent(rate))
    accounts = f"{leads['online_accounts']:,} / {leads['total_accounts']:,}"
    expect(page.locator("#tile-accounts [data-value]")).to_have_text(accounts)
    expect(page.locator("#tile-clicks-today [data-value]")).to_have_text(
        f"{clicks['today_clicks']:,}"
    )
    expect(page.locator("#tile-clicks-today [data-sub]")).to_have_text(
        f"{clicks['today_unique_users']:,} unique users"
    )
    expect(page.locator("#tile-failed-runs [data-value]")).to_have_text(f"{failed['total']:,}")
    screenshot(page, "overview-en-1440")

    page.locator("#tile-clicks-today").click()
    page.wait_for_url("**/clicks")
    expect(page.locator(".nav a[aria-current=page]")).to_have_text("Clicks")


def test_the_overview_in_chinese_uses_chinese_labels_and_formats(
    browser: Browser, base_url: str, live_server: LiveServer
) -> None:
    context = context_for(browser, base_url, language="zh-CN")
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("h1")).to_have_text("概览")
        with live_server.client() as api:
            today = api.get("/api/leads/summary").json()["today_incoming"]
        expect(page.locator("#tile-leads-today [data-value]")).to_have_text(f"{today:,}")
        expect(page.locator("#tile-leads-today [data-sub]")).to_contain_text("较昨日同一时刻")
        screenshot(page, "overview-zh-CN-1440b")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "overview-zh-CN-390")
    finally:
        context.close()
