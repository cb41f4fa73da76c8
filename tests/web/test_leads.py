"""The leads pages in a real browser: the group list and a group page with the demo data,
the trend chart against /daily, leads and groups arriving live, the group form and its
one-time activation code, what a viewer may not do, and an API error in words."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def demo_group(api: httpx.Client) -> dict[str, Any]:
    groups = api.get("/api/leads/groups", params={"search": "Demo · Tokyo"}).json()["items"]
    assert groups, "the demo data has a Tokyo group"
    return groups[0]  # type: ignore[no-any-return]


def shoot(page: Page, name: str, ready: str) -> None:
    """Screenshots of the page loaded at 1440 and at 390 px (`ready` once drawn); at
    either width nothing sticks out sideways (wide tables scroll inside their own box)."""
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#live")).to_be_visible()
        screenshot(page, f"{name}-{width}")
        overflow = "(() => { const m = document.querySelector('main');"
        overflow += " return m.scrollWidth - m.clientWidth; })()"
        assert page.evaluate(overflow) <= 0
    page.set_viewport_size({"width": 1440, "height": 900})


@pytest.fixture
def fresh_group(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """A new group of the admin's, with one online account reported by its desktop client."""
    with live_server.client() as api:
        made = api.post("/api/leads/groups", json={"remark": unique("Browser test")})
        assert made.status_code == 201, made.text
        group: dict[str, Any] = made.json()
        code = {"X-Activation-Code": group["activation_code"]}
        assert api.post("/api/client/login", headers=code).status_code == 200
        accounts = {"accounts": [{"line_id": "U-acc-1", "display_name": "Front desk"}]}
        assert api.put("/api/client/accounts", json=accounts, headers=code).status_code == 200
        yield group
        api.delete(f"/api/leads/groups/{group['id']}")


def test_the_list_and_a_group_page_show_the_demo_figures(
    page: Page, live_server: LiveServer
) -> None:
    sign_in(page, path="/leads")
    with live_server.client() as api:
        group = demo_group(api)
    row = page.locator(f"#group-{group['id']}")
    expect(row.get_by_role("link")).to_have_text(group["remark"])
    expect(row.locator('td[data-f="total_incoming"]')).to_have_text(f"{group['total_incoming']:,}")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator(".state.error")).to_have_count(0)
    shoot(page, "leads-en", f"#group-{group['id']}")

    row.get_by_role("link").click()
    page.wait_for_url(f"**/leads/groups/{group['id']}")
    expect(page.locator("h1")).to_have_text(group["remark"])
    expect(page.locator("#group-settings")).to_contain_text("duplicate check: Within this group")
    expect(page.locator("#kpi-total")).to_have_text(f"{group['total_incoming']:,}")
    expect(page.locator("#accounts tbody tr")).to_have_count(group["total_accounts"])
    expect(page.locator("#accounts thead")).to_contain_text("Platform")
    expect(page.locator("#incoming tbody tr")).to_have_count(20)
    expect(page.locator("#trend-chart .main-svg").first).to_be_visible()
    expect(page.locator(".state.error")).to_have_count(0)
    shoot(page, "leads-group-en", "#trend-chart .main-svg")


def test_the_trend_chart_draws_the_daily_figures_of_the_api(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.client() as api:
        group = demo_group(api)
    sign_in(page, path=f"/leads/groups/{group['id']}")
    page.get_by_role("button", name="30 days").click()
    page.wait_for_function(
        "() => { const c = document.getElementById('trend-chart');"
        " return c.data && c.data.length === 2 && c.data[0].x.length === 30; }"
    )
    traces = page.evaluate(
        "() => document.getElementById('trend-chart').data.map(d => ({x: d.x, y: d.y}))"
    )
    end = traces[0]["x"][-1]
    start = traces[0]["x"][0]
    with live_server.client() as api:
        assert end == api.get(f"/api/leads/groups/{group['id']}").json()["business_date"]
        rows = api.get(
            f"/api/leads/groups/{group['id']}/daily", params={"from": start, "to": end}
        ).json()
    assert traces[0] == {
        "x": [r["business_date"] for r in rows],
        "y": [r["incoming"] for r in rows],
    }
    assert traces[1]["y"] == [r["duplicate_incoming"] for r in rows]
    assert sum(traces[0]["y"]) > 0  # the demo's leads of the last 14 days are in it


def test_a_lead_from_the_desktop_client_appears_without_a_reload(
    page: Page, live_server: LiveServer, fresh_group: dict[str, Any]
) -> None:
    sign_in(page, path=f"/leads/groups/{fresh_group['id']}")
    expect(page.locator("#kpi-today")).to_have_text("0")
    expect(page.locator("#incoming")).to_have_text("No leads in this range yet.")
    expect(page.locator("#live")).to_have_text("Live")

    sent = httpx.post(
        f"{live_server.url}/api/client/incoming",
        json={"account_line_id": "U-acc-1", "incoming_line_id": "U-contact-77"},
        headers={"X-Activation-Code": fresh_group["activation_code"]},
    )
    assert sent.status_code == 200, sent.text

    expect(page.locator("#kpi-today")).to_have_text("1")
    expect(page.locator("#kpi-total")).to_have_text("1")
    log = page.locator("#incoming tbody tr")
    expect(log).to_have_count(1)
    expect(log).to_contain_text("U-contact-77")
    expect(log).to_contain_text("Front desk")
    expect(log.locator(".badge")).to_have_text("new")
    account = page.locator("#accounts tbody tr")
    expect(account.locator('td[data-f="today_incoming"]')).to_have_text("1")


def test_a_group_made_with_the_form_shows_its_code_once_and_appears_on_other_pages(
    page: Page, browser: Browser, base_url: str, live_server: LiveServer
) -> None:
    sign_in(page, path="/leads")
    other = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        watcher = other.new_page()
        watcher.goto("/leads")
        expect(watcher.locator("#live")).to_have_text("Live")
        expect(page.locator("#live")).to_have_text("Live")

        remark = unique("Form group")
        page.get_by_role("button", name="New group").click()
        form = page.locator("#group-dialog")
        form.get_by_label("Name").fill(remark)
        form.get_by_label("Time zone").select_option("Asia/Tokyo")
        form.get_by_label("Reset time").fill("06:00")
        form.get_by_label("Duplicate check").select_option(label="Across all groups")
        form.get_by_label("Account limit").fill("5")
        form.get_by_role("button", name="Save").click()

        code_box = page.locator("#code-dialog")
        expect(code_box).to_be_visible()
        code = page.locator("#code-value").inner_text()
        with live_server.client() as api:
            (made,) = api.get("/api/leads/groups", params={"search": remark}).json()["items"]
        assert code == made["activation_code"]
        assert (made["timezone"], made["reset_time"], made["dedup_scope"]) == (
            "Asia/Tokyo",
            "06:00",
            "global",
        )
        code_box.get_by_role("button", name="Close").click()
        expect(code_box).to_be_hidden()
        expect(page.get_by_role("link", name=remark)).to_be_visible()
        expect(page.locator("#code-value")).to_have_text("")  # shown once, then gone
        expect(page.get_by_text(code)).to_have_count(0)

        # The viewer's open list shows it too, without a reload; and drops it once deleted.
        expect(watcher.get_by_role("link", name=remark)).to_be_visible()
        with live_server.client() as api:
            assert api.delete(f"/api/leads/groups/{made['id']}").status_code == 204
        expect(watcher.get_by_role("link", name=remark)).to_have_count(0)
        expect(page.get_by_role("link", name=remark)).to_have_count(0)
    finally:
        other.close()


def _viewer(browser: Browser, base_url: str, **args: Any) -> BrowserContext:
    return context_for(browser, base_url, "viewer", PASSWORD, **args)


def test_a_viewer_sees_no_write_control(
    browser: Browser, base_url: str, live_server: LiveServer
) -> None:
    with live_server.client() as api:
        group = demo_group(api)
    context = _viewer(browser, base_url)
    try:
        page = context.new_page()
        page.goto("/leads")
        expect(page.locator(f"#group-{group['id']}")).to_be_visible()
        expect(page.get_by_role("button", name="New group")).to_have_count(0)
        expect(page.locator("#group-dialog")).to_have_count(0)

        page.goto(f"/leads/groups/{group['id']}")
        expect(page.locator("#accounts tbody tr")).to_have_count(group["total_accounts"])
        expect(page.locator("#kpi-total")).to_have_text(f"{group['total_incoming']:,}")
        for name in ("Edit group", "New activation code", "Delete"):
            expect(page.get_by_role("button", name=name)).to_have_count(0)
        expect(page.locator("#accounts").get_by_role("button")).to_have_count(0)
        expect(page.locator("#accounts thead")).not_to_contain_text("Actions")
    finally:
        context.close()


def test_an_unknown_group_says_so_in_words(page: Page) -> None:
    sign_in(page, path="/leads/groups/999999")
    error = page.locator("#group-body .state.error")
    expect(error).to_have_text("Could not load: group 999999 not found")
    expect(page.get_by_role("link", name="Back to the groups")).to_be_visible()
    expect(page.locator("#kpi-today")).to_have_count(0)


def test_both_pages_in_chinese_at_both_widths(
    browser: Browser, base_url: str, live_server: LiveServer
) -> None:
    with live_server.client() as api:
        group = demo_group(api)
    context = context_for(browser, base_url, language="zh-CN")
    try:
        page = context.new_page()
        page.goto("/leads")
        expect(page.locator("h1")).to_have_text("进线")
        expect(page.locator(f"#group-{group['id']}")).to_be_visible()
        expect(page.locator("#groups thead")).to_contain_text("重复率")
        shoot(page, "leads-zh-CN", f"#group-{group['id']}")
        page.goto(f"/leads/groups/{group['id']}")
        expect(page.locator("#group-settings")).to_contain_text("去重范围：本分组内")
        expect(page.locator("#accounts tbody tr")).to_have_count(group["total_accounts"])
        expect(page.locator("#trend-chart .main-svg").first).to_be_visible()
        expect(page.locator("#accounts tbody .badge").first).to_have_text(re.compile("在线|离线"))
        shoot(page, "leads-group-zh-CN", "#trend-chart .main-svg")
    finally:
        context.close()


def test_a_writer_edits_the_group_renews_its_code_and_deletes_an_account_and_the_group(
    page: Page, live_server: LiveServer, fresh_group: dict[str, Any]
) -> None:
    page.on("dialog", lambda confirm: confirm.accept())  # the confirm() before each change
    sign_in(page, path=f"/leads/groups/{fresh_group['id']}")
    expect(page.locator("#accounts tbody tr")).to_have_count(1)

    page.get_by_role("button", name="Edit group").click()
    form = page.locator("#group-dialog")
    expect(form.get_by_label("Name")).to_have_value(fresh_group["remark"])
    expect(form.get_by_label("Time zone")).to_have_value(fresh_group["timezone"])
    renamed = unique("Renamed")
    form.get_by_label("Name").fill(renamed)
    form.get_by_label("Duplicate check").select_option(label="Across all groups")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text(renamed)
    expect(page.locator("#group-settings")).to_contain_text("duplicate check: Across all groups")

    page.get_by_role("button", name="New activation code").click()
    expect(page.locator("#code-dialog")).to_be_visible()
    code = page.locator("#code-value").inner_text()
    assert code and code != fresh_group["activation_code"]
    with live_server.client() as api:
        assert api.get(f"/api/leads/groups/{fresh_group['id']}").json()["activation_code"] == code
    page.locator("#code-dialog").get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Delete account Front desk").click()
    expect(page.locator("#accounts")).to_have_text("No accounts reported yet.")

    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_url("**/leads")
    expect(page.locator("#groups tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name=renamed)).to_have_count(0)
