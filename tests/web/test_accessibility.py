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
    "/jobs",
    "/users",
]


@pytest.fixture(scope="module")
def ids(live_server: LiveServer) -> dict[str, int]:
    with live_server.client() as api:
        group = api.get("/api/leads/groups").json()["items"][0]["id"]
        campaign = api.get("/api/clicks/campaigns").json()["items"][0]["id"]
    return {"group": group, "campaign": campaign}


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violation(
    browser: Browser, base_url: str, ids: dict[str, int], path: str
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
