"""The DOU+ OAuth round trip in a real browser, against `tallyhub serve` with the DOU+
simulator inside: "Connect with Ocean Engine" on /douplus asks for the account's sec_uid
and goes to the authorize URL the API gives; Ocean Engine's consent page is stood in for
at the network edge (it answers with the redirect to our /douplus/oauth carrying an
auth_code the simulator issued and the signed state); the landing page posts them and shows
the account connected. A refused code, a forged state and a bare visit are said in words."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.web.conftest import LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser

NARROW = {"width": 390, "height": 844}
CONSENT = "https://open.oceanengine.com/**"  # DouplusSettings.authorize_url's page


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    live_server.douplus_synced()
    with live_server.client() as client:
        yield client


def test_connect_with_ocean_engine_and_come_back_connected(
    page: Page, api: httpx.Client, live_server: LiveServer, base_url: str
) -> None:
    account = next(
        a for a in api.get("/api/douplus/accounts").json()["items"] if a["status"] == "active"
    )
    sec_uid, simulator = account["aweme_sec_uid"], live_server.douplus_simulator()
    asked: list[dict[str, list[str]]] = []

    def consent(route: Route) -> None:
        """The owner consents: Ocean Engine sends them to redirect_uri with a code."""
        query = parse_qs(urlsplit(route.request.url).query)
        asked.append(query)
        code = httpx.post(f"{simulator}/__sim/auth-codes", json={"aweme_sec_uid": sec_uid})
        back = urlencode({"auth_code": code.json()["auth_code"], "state": query["state"][0]})
        route.fulfill(status=302, headers={"location": f"{base_url}/douplus/oauth?{back}"})

    page.route(CONSENT, consent)
    sign_in(page, path="/douplus")
    page.get_by_role("button", name="Connect with Ocean Engine").click()
    dialog = page.locator("#oauth-dialog")
    dialog.get_by_label("Douyin sec_uid (aweme_sec_uid)").fill(sec_uid)
    dialog.get_by_role("button", name="Continue to Ocean Engine").click()
    page.wait_for_url("**/douplus/oauth")  # the one-time code is taken out of the address

    expect(page.locator("#oauth-done")).to_have_text(
        f"{account['nickname']} re-authorized; its orders are being synced."
    )
    expect(page.locator("#oauth-facts [data-f=aweme_sec_uid]")).to_have_text(sec_uid)
    expect(page.locator("#oauth-facts [data-f=status]")).to_have_text("active")
    (query,) = asked
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/douplus/oauth"]  # the setting
    screenshot(page, "douplus-oauth-en-1440")
    page.get_by_role("link", name="Go to DOU+").click()
    page.wait_for_url("**/douplus")
    expect(page.locator(f"#douplus-account-{account['id']}")).to_be_visible()
    live_server.douplus_synced()  # the connect's sync ends before another test starts


def test_a_refusal_is_said_in_words(page: Page, api: httpx.Client) -> None:
    state = api.get("/api/douplus/oauth/authorize-url", params={"aweme_sec_uid": "x"}).json()
    sign_in(
        page, path=f"/douplus/oauth?{urlencode({'auth_code': 'used-up', 'state': state['state']})}"
    )
    alert = page.locator("#oauth-state [role=alert]")
    expect(alert).to_contain_text("Could not connect: Ocean Engine refused the auth_code")
    assert page.url.endswith("/douplus/oauth")
    page.goto("/douplus/oauth?auth_code=abc&state=forged")
    expect(alert).to_contain_text("Could not connect: state is not valid")
    page.goto("/douplus/oauth")
    expect(page.locator("#oauth-state")).to_have_text(
        "Nothing to connect from this address. Start with “Connect with Ocean Engine” on the"
        " DOU+ page."
    )
    expect(page.locator("#oauth-account")).to_be_hidden()


def test_the_landing_page_in_chinese(browser: Browser, base_url: str) -> None:
    context = context_for(browser, base_url, language="zh-CN")
    try:
        page = context.new_page()
        page.goto("/douplus/oauth")
        expect(page.locator("h1")).to_have_text("连接 DOU+ 账号")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("DOU+ 投放")
        screenshot(page, "douplus-oauth-zh-CN-1440")
        page.set_viewport_size(NARROW)
        page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "douplus-oauth-zh-CN-390")
    finally:
        context.close()
