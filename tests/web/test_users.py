"""The users page in a real browser: an admin creates a user through the form, sees it
listed, changes its role, disables it after a confirmation, and that user can no longer
sign in; a taken name is refused in words; your own row cannot be demoted; a viewer gets
the 403 page."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}


def create_through_the_form(page: Page, username: str, password: str, role: str) -> None:
    page.get_by_role("button", name="New user").click()
    dialog = page.locator("#user-dialog")
    dialog.get_by_label("Username").fill(username)
    dialog.get_by_label("Password").fill(password)
    dialog.get_by_label("Role").select_option(role)
    dialog.get_by_role("button", name="Create").click()


def test_an_admin_creates_changes_and_disables_a_user(
    page: Page, browser: Browser, base_url: str, live_server: LiveServer
) -> None:
    username = f"web-{uuid.uuid4().hex[:8]}"
    sign_in(page, path="/users")
    create_through_the_form(page, username, "pass-1234", "operator")
    expect(page.locator("#user-dialog")).not_to_be_visible()
    row = page.locator(f"#user-{username}")
    expect(row.locator("[data-f=role]")).to_have_text("operator")
    expect(row.locator("[data-f=state]")).to_have_text("active")
    with live_server.client() as api:
        made = api.get("/api/users", params={"role": "operator"}).json()["items"]
    assert username in [u["username"] for u in made]

    # A name that is taken is refused in words, and the dialog stays open to fix it.
    create_through_the_form(page, username, "pass-1234", "viewer")
    expect(page.locator("#user-dialog .form-error")).to_have_text(
        f"The username {username} is taken; choose another."
    )
    page.locator("#user-dialog").get_by_role("button", name="Cancel").click()

    row.get_by_label(f"Role of {username}").select_option("viewer")
    expect(row.locator("[data-f=role]")).to_have_text("viewer")
    expect(page.locator("#toast")).to_have_text(f"{username} is now viewer.")

    row.get_by_role("button", name=f"Disable {username}").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text(f"Disable {username}?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(row.locator("[data-f=state]")).to_have_text("active")  # nothing changed
    row.get_by_role("button", name=f"Disable {username}").click()
    confirm.get_by_role("button", name="Disable").click()
    expect(row.locator("[data-f=state]")).to_have_text("disabled")
    expect(row.get_by_role("button", name=f"Enable {username}")).to_be_visible()
    with live_server.client() as api:
        shown = [u for u in api.get("/api/users").json()["items"] if u["username"] == username]
    assert [(u["role"], u["is_active"]) for u in shown] == [("viewer", False)]

    elsewhere = browser.new_context(base_url=base_url, locale="en-US")
    try:
        login = elsewhere.new_page()
        login.goto("/login")
        login.locator("#username").fill(username)
        login.locator("#password").fill("pass-1234")
        login.locator("#login button[type=submit]").click()
        expect(login.locator("#login-error")).to_have_text("wrong username or password")
        expect(login).to_have_url(f"{base_url}/login")
    finally:
        elsewhere.close()


def test_your_own_row_cannot_be_demoted_or_disabled(page: Page) -> None:
    page.set_viewport_size(WIDE)
    sign_in(page, path="/users")
    mine = page.locator("#user-demo")
    expect(mine).to_contain_text("you")
    expect(mine.get_by_label("Role of demo")).to_be_disabled()
    expect(mine.get_by_role("button", name="Disable demo")).to_be_disabled()
    expect(page.locator("#users")).to_contain_text("operator")
    page.select_option("#filter-role", "viewer")
    expect(page.locator("#user-viewer")).to_be_visible()
    expect(page.locator("#user-demo")).to_have_count(0)
    screenshot(page, "users-en-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "users-en-390")


def test_a_viewer_gets_the_403_page(browser: Browser, base_url: str) -> None:
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        answer = page.goto("/users")
        assert answer is not None and answer.status == 403
        expect(page.locator("h1")).to_have_text("Not for this account")
        expect(page.locator("#users")).to_have_count(0)
    finally:
        context.close()


def test_the_users_page_in_chinese(browser: Browser, base_url: str) -> None:
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/users")
        expect(page.locator("h1")).to_have_text("用户")
        expect(page.locator("#user-demo [data-f=role]")).to_have_text("管理员")
        expect(page.locator("#user-viewer [data-f=state]")).to_have_text("正常")
        screenshot(page, "users-zh-CN-1440")
        page.get_by_role("button", name="新建用户").click()
        expect(page.locator("#user-dialog")).to_be_visible()
        screenshot(page, "users-zh-CN-new-1440")
        page.locator("#user-dialog").get_by_role("button", name="取消").click()
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "users-zh-CN-390")
    finally:
        context.close()
