"""axe-core's audit (bundled by axe-playwright-python, run offline) over every page with the
demo data, as an admin so that every write control is on the page: no serious or
critical violation."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from tests.web.conftest import LiveServer, context_for

pytestmark = pytest.mark.browser
PAGES = [
    "/login",
    "/",
    "/leads",
    "/leads/groups/{group}",
    "/clicks",
    "/clicks/campaigns/{campaign}",
    "/douplus",
    "/douplus/orders/{order}",
    "/douplus/videos/{video}",
    "/douplus/oauth",
    "/taskstats",
    "/taskstats/tasks/{task}",
    "/callcenter",
    "/jobs",
    "/webhooks",
    "/webhooks/messages/{message}",
    "/users",
]


@pytest.fixture(scope="module")
def ids(live_server: LiveServer) -> dict[str, int | str]:
    live_server.douplus_synced()
    with live_server.client() as api:
        group = api.get("/api/leads/groups").json()["items"][0]["id"]
        campaign = api.get("/api/clicks/campaigns").json()["items"][0]["id"]
        order = api.get("/api/douplus/orders", params={"sort": "-stat_cost"}).json()["items"][0]
        task = api.get("/api/taskstats/tasks").json()["items"][0]["id"]
        message = api.get("/api/webhooks/messages").json()["items"][0]["id"]
    return {
        "group": group,
        "campaign": campaign,
        "order": order["order_id"],
        "video": order["item_id"],
        "task": task,
        "message": message,
    }


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violation(
    browser: Browser, base_url: str, ids: dict[str, int | str], path: str
) -> None:
    context = context_for(browser, base_url)
    try:
        page = context.new_page()
        if path == "/login":
            context.clear_cookies()
        page.goto(path.format(**ids))
        page.wait_for_load_state("networkidle")
        expect(page.locator(".state.loading")).to_have_count(0)
        results = Axe().run(page)
        serious = [
            (v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], serious
    finally:
        context.close()
