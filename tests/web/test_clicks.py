"""The Clicks pages in a real browser: the campaign list and a campaign's page show what the
API says (thousands separators, the daily chart's points, people's clicks and bots' apart,
who clicked), writers create campaigns and make signed links there, clicks made on
/__track appear after the page's refresh (a link preview's among the bots), a viewer sees
no write control, and an API error is shown in words."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, percent, screenshot, sign_in

pytestmark = pytest.mark.browser

REFRESH = 15_000  # ms: the pages refresh every 10 s
NARROW = {"width": 390, "height": 844}
# A person's browser (httpx's own User-Agent is an HTTP tool's: a bot's) and LINE's
# link-preview fetcher.
PERSON = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X)"
    " AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0"
}
LINE_PREVIEW = {"User-Agent": "facebookexternalhit/1.1;line-poker/1.0"}


def demo_campaign(api: httpx.Client) -> dict[str, Any]:
    items = api.get("/api/clicks/campaigns", params={"search": "Demo"}).json()["items"]
    return next(c for c in items if c["name"] == "Demo · Spring sale")  # type: ignore[no-any-return]


def new_campaign(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Test {uuid.uuid4().hex[:8]}", "allowed_hosts": ["shop.example.com"]}
    response = api.post("/api/clicks/campaigns", json={**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def no_sideways_scroll(page: Page) -> None:
    """The page is no wider than the window (once the chart has followed a resize)."""
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_list_shows_each_campaign_with_its_figures(page: Page, live_server: LiveServer) -> None:
    sign_in(page, path="/clicks")
    with live_server.client() as api:
        demo = demo_campaign(api)
    assert demo["clicked_count"] >= 1000  # the demo's 1,500 clicks: separators show

    row = page.locator(f"#campaign-{demo['id']}")
    expect(row.locator("td[data-f=total]")).to_have_text(f"{demo['clicked_count']:,}")
    expect(row.locator("td[data-f=unique]")).to_have_text(f"{demo['unique_users']:,}")
    expect(row.locator("td[data-f=today]")).to_have_text(f"{demo['today_clicks']:,}")
    expect(row.locator("td[data-f=hosts]")).to_have_text("shop.example.com, *.example.org")
    expect(page.locator("#tile-total [data-value]")).not_to_have_text("…")
    screenshot(page, "clicks-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "clicks-en-390")

    row.get_by_role("link", name=demo["name"]).click()
    page.wait_for_url(f"**/clicks/campaigns/{demo['id']}")
    expect(page.locator("h1")).to_have_text(demo["name"])


def test_the_campaign_page_shows_the_apis_figures(page: Page, live_server: LiveServer) -> None:
    with live_server.client() as api:
        demo = demo_campaign(api)
        end = date.fromisoformat(demo["business_date"])
        span = {"from": (end - timedelta(days=29)).isoformat(), "to": end.isoformat()}
        daily = api.get(f"/api/clicks/campaigns/{demo['id']}/daily", params=span).json()
        breakdown = api.get(f"/api/clicks/campaigns/{demo['id']}/breakdown", params=span).json()
        bots = api.get(
            f"/api/clicks/campaigns/{demo['id']}/breakdown", params={**span, "dimension": "bot"}
        ).json()
        summaries = api.get(f"/api/clicks/campaigns/{demo['id']}/users").json()["total"]
    sign_in(page, path=f"/clicks/campaigns/{demo['id']}")

    expect(page.locator("#tile-total [data-value]")).to_have_text(f"{demo['clicked_count']:,}")
    expect(page.locator("#tile-unique [data-value]")).to_have_text(f"{demo['unique_users']:,}")
    assert demo["bot_clicks"] > 0  # the demo's link-preview fetches
    expect(page.locator("#tile-bots [data-value]")).to_have_text(f"{demo['bot_clicks']:,}")
    page.get_by_role("button", name="30 days").click()
    page.wait_for_function("document.getElementById('daily-chart').data?.[0].x.length === 30")
    points = page.evaluate(
        "(() => { const d = document.getElementById('daily-chart').data[0];"
        " return {x: Array.from(d.x), y: Array.from(d.y)}; })()"
    )
    assert points == {
        "x": [d["business_date"] for d in daily],
        "y": [d["clicks"] for d in daily],
    }
    assert sum(points["y"]) == breakdown["clicks"] > 0

    expect(page.locator("#breakdown-range")).to_contain_text(f"{breakdown['clicks']:,} clicks")
    top = breakdown["tags"]["items"][0]
    first = page.locator("#top-tags tbody tr").first
    expect(first).to_contain_text(top["key"])
    expect(first).to_contain_text(percent(top["count"] / breakdown["clicks"]))
    expect(page.locator("#top-types tbody tr")).to_have_count(
        len(breakdown["interaction_types"]["items"])
    )
    expect(page.locator("#visitors-range")).to_contain_text(
        f"{breakdown['clicks']:,} clicks counted · {bots['clicks']:,} bot clicks kept out"
    )
    top_bot = bots["values"]["items"][0]
    expect(page.locator("#by-bot tbody tr").first).to_contain_text(top_bot["key"])
    expect(page.locator("#by-bot tbody tr").first).to_contain_text(f"{top_bot['count']:,}")
    expect(page.locator("#users tbody tr")).to_have_count(20)
    pages = -(-summaries // 20)  # one summary per user and source campaign, 20 a page
    expect(page.locator("#users-pager")).to_contain_text(
        f"Page 1 of {pages} · {summaries:,} in all"
    )
    page.locator("#users-pager").get_by_role("button", name="Next").click()
    expect(page.locator("#users-pager")).to_contain_text("Page 2")
    expect(page.locator("#interactions tbody tr")).to_have_count(20)
    screenshot(page, "clicks-campaign-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "clicks-campaign-en-390")


def test_a_campaign_created_in_the_form_is_listed(page: Page) -> None:
    sign_in(page, path="/clicks")
    name = f"Form {uuid.uuid4().hex[:8]}"
    page.get_by_role("button", name="New campaign").click()
    dialog = page.locator("#campaign-dialog")
    dialog.get_by_label("Name").fill(name)
    hosts = dialog.get_by_label("Allowed hosts")
    hosts.fill("https://shop.example.com/sale")
    dialog.get_by_label("Time zone").select_option("Asia/Tokyo")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".form-error")).to_contain_text(
        "Allowed hosts: 'https://shop.example.com/sale' is not a host name"
    )

    hosts.fill("a.example.com, b.example.com\n*.example.org")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    row = page.locator("tbody tr", has_text=name)
    expect(row.locator("td[data-f=hosts]")).to_have_text(
        "a.example.com, b.example.com, *.example.org"
    )
    expect(row.locator("td[data-f=zone]")).to_have_text("Asia/Tokyo")
    expect(row.locator("td[data-f=total]")).to_have_text("0")


def test_a_signed_link_redirects_and_clicks_show_after_the_refresh(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.client() as api:
        campaign = new_campaign(api)
    sign_in(page, path=f"/clicks/campaigns/{campaign['id']}")
    expect(page.locator("#tile-today [data-value]")).to_have_text("0")
    expect(page.locator("#interactions")).to_contain_text("No clicks yet.")

    # LINE fetches the link's preview first: logged, and counted among the bots only.
    preview = httpx.get(
        f"{live_server.url}/__track",
        params={"cid": campaign["id"], "to": "https://shop.example.com/", "uid": "Uplain"},
        headers=LINE_PREVIEW,
        follow_redirects=False,
    )
    assert preview.status_code == 302
    target = "https://elsewhere.example.net/offer?x=1"  # not an allowed host: needs the signature
    form = page.locator("#link-form")
    form.get_by_label("Target address").fill(target)
    form.get_by_label("Source campaign id").fill("42")
    form.get_by_label("Tags", exact=True).fill("spring,vip")
    form.get_by_label("Interaction type").select_option("button_url")
    form.get_by_role("button", name="Make link").click()
    expect(page.locator("#link-url")).to_contain_text("/__track?")
    link = page.locator("#link-url").inner_text()
    expect(page.locator("#link-copy")).to_be_visible()

    answer = httpx.get(
        f"{link}&uid=Ulink{uuid.uuid4().hex[:6]}", headers=PERSON, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (302, target)
    plain = httpx.get(
        f"{live_server.url}/__track",
        params={"cid": campaign["id"], "to": "https://shop.example.com/", "uid": "Uplain"},
        headers=PERSON,
        follow_redirects=False,
    )
    assert plain.status_code == 302

    expect(page.locator("#tile-today [data-value]")).to_have_text("2", timeout=REFRESH)
    expect(page.locator("#tile-total [data-value]")).to_have_text("2")
    expect(page.locator("#tile-bots [data-value]")).to_have_text("1")
    log = page.locator("#interactions tbody tr")
    expect(log).to_have_count(3)
    expect(log.first).to_contain_text("https://shop.example.com/")  # newest first
    expect(log.first).to_contain_text("Phone · LINE")
    expect(log.nth(1)).to_contain_text(target)
    expect(log.nth(1)).to_contain_text("Button link")
    expect(log.nth(1)).to_contain_text("Source #42")
    expect(log.nth(2)).to_contain_text("LINE · link preview (not counted)")
    expect(page.locator("#by-bot")).to_contain_text("LINE")
    expect(page.locator("#by-device")).to_contain_text("Phone")
    expect(page.locator("#top-tags")).to_contain_text("spring")
    expect(page.locator("#users")).to_contain_text("Uplain")

    page.get_by_role("button", name="Edit campaign").click()
    dialog = page.locator("#campaign-dialog")
    expect(dialog.get_by_label("Allowed hosts")).to_have_value("shop.example.com")
    expect(dialog.get_by_label("Keep bots' clicks out of the counts")).to_be_checked()
    dialog.get_by_label("Name").fill(f"{campaign['name']} (renamed)")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text(f"{campaign['name']} (renamed)")


def test_a_viewer_sees_no_write_control(browser: Browser, base_url: str) -> None:
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        page.goto("/clicks")
        expect(page.locator("#campaigns tbody tr").first).to_be_visible()
        expect(page.locator("#new-campaign")).to_have_count(0)
        page.locator("#campaigns tbody a").first.click()
        expect(page.locator("#tile-total [data-value]")).not_to_have_text("…")
        for control in ("#edit-campaign", "#link-form", "#campaign-dialog"):
            expect(page.locator(control)).to_have_count(0)
        expect(page.get_by_role("button", name="Make link")).to_have_count(0)
    finally:
        context.close()


def test_an_unknown_campaign_is_said_in_words(page: Page) -> None:
    sign_in(page, path="/clicks/campaigns/999999")
    expect(page.locator("#campaign-state [role=alert]")).to_have_text(
        "Could not load: campaign 999999 not found"
    )
    expect(page.locator("#campaign-body")).to_be_hidden()


def test_the_pages_in_chinese(browser: Browser, base_url: str, live_server: LiveServer) -> None:
    with live_server.client() as api:
        demo = demo_campaign(api)
    context = context_for(browser, base_url, language="zh-CN")
    try:
        page = context.new_page()
        page.goto("/clicks")
        expect(page.locator("h1")).to_have_text("点击")
        row = page.locator(f"#campaign-{demo['id']}")
        expect(row.locator("td[data-f=total]")).to_have_text(f"{demo['clicked_count']:,}")
        screenshot(page, "clicks-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "clicks-zh-CN-390")

        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(f"/clicks/campaigns/{demo['id']}")
        expect(page.locator("#tile-total [data-value]")).to_have_text(f"{demo['clicked_count']:,}")
        expect(page.locator("#link-title")).to_have_text("生成签名链接")
        expect(page.locator("#breakdown-range")).to_contain_text("次点击")
        expect(page.locator("#visitors-title")).to_have_text("谁点击了")
        expect(page.locator("#tile-bots .label")).to_have_text("机器人点击")
        screenshot(page, "clicks-campaign-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "clicks-campaign-zh-CN-390")
    finally:
        context.close()
