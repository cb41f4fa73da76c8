"""The frame every page shares, in a real browser: signing in and out, the navigation by
role, the language switch (remembered), 390 px wide without sideways scrolling, and /docs
rendered from local files only."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_a_page_sends_a_stranger_to_sign_in_and_back(page: Page) -> None:
    sign_in(page, path="/jobs")
    assert page.url.endswith("/jobs")
    expect(page.locator("#who")).to_contain_text("demo")
    expect(page.locator(".nav a[aria-current=page]")).to_have_text("Jobs")


def test_a_wrong_password_is_answered_in_words(page: Page) -> None:
    page.goto("/login")
    page.locator("#username").fill("demo")
    page.locator("#password").fill("wrong")
    page.locator("#login button[type=submit]").click()
    expect(page.locator("#login-error")).to_have_text("wrong username or password")


def test_the_navigation_shows_users_to_admins_only(browser: Browser, base_url: str) -> None:
    admin = context_for(browser, base_url)
    viewer = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = admin.new_page()
        page.goto("/")
        expect(page.locator(".nav")).to_contain_text("Users")
        page = viewer.new_page()
        page.goto("/")
        expect(page.locator(".nav")).not_to_contain_text("Users")
        expect(page.locator("#who .badge")).to_have_text("viewer")
        assert page.goto("/users").status == 403  # type: ignore[union-attr]
    finally:
        admin.close()
        viewer.close()


def test_the_language_switch_changes_the_labels_and_is_remembered(
    browser: Browser, base_url: str
) -> None:
    context = context_for(browser, base_url)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("h1")).to_have_text("Overview")
        page.locator("#lang-switch").select_option("zh-CN")
        expect(page.locator("h1")).to_have_text("概览")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        screenshot(page, "overview-zh-CN-1440")
        page.goto("/leads")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("进线")
        page.locator("#lang-switch").select_option("en")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("Leads")
    finally:
        context.close()


def test_a_chinese_browser_gets_chinese_pages(browser: Browser, base_url: str) -> None:
    context = browser.new_context(base_url=base_url, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto("/login")
        expect(page.locator("#login button[type=submit]")).to_have_text("登录")
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/", "/leads", "/clicks", "/jobs", "/users"])
def test_at_390_px_no_page_is_wider_than_the_window(
    browser: Browser, base_url: str, path: str
) -> None:
    context = context_for(browser, base_url, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at 390 px"
        screenshot(page, f"{path.strip('/') or 'overview'}-en-390")
    finally:
        context.close()


def test_docs_render_from_local_files_only(page: Page, live_server: LiveServer) -> None:
    asked: list[str] = []

    def note(request: Request) -> None:
        asked.append(request.url)

    page.on("request", note)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("TallyHub")
    expect(page.get_by_text("/api/leads/groups").first).to_be_visible()
    elsewhere = [url for url in asked if not url.startswith(live_server.url)]
    assert elsewhere == []
    assert any(re.search(r"/assets/vendor/docs/swagger-ui-bundle\.js$", u) for u in asked)
