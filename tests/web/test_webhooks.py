"""The webhook log in a real browser, against `tallyhub serve` whose demo scan put the task
callbacks in the outbox and a partner's receiver took them: the messages equal the API
(status, each delivery's endpoint, status, attempts, next attempt and last status code) and
filter by status from the address; a message shows every attempt and its payload; resend
sends it again; an endpoint is added (its secret shown once), disabled, enabled and given a
new secret shown once; a viewer gets no write action; both languages at 1440 and 390 px."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser

NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
POLLED = 10_000  # ms: a pending message's page reads it again every 3 s


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    live_server.deliver_webhooks()  # the demo scan's callbacks (no scheduler runs here)
    with live_server.client() as client:
        yield client


def messages(api: httpx.Client, **params: Any) -> dict[str, Any]:
    return api.get("/api/webhooks/messages", params={"page_size": 20, **params}).json()  # type: ignore[no-any-return]


def delivered(api: httpx.Client) -> dict[str, Any]:
    """A task callback the receiver took, with its attempts."""
    found = messages(api, status="succeeded", event="task.daily_stats")["items"][0]
    return api.get(f"/api/webhooks/messages/{found['id']}").json()  # type: ignore[no-any-return]


def short(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc + parts.path


def no_sideways_scroll(page: Page) -> None:
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_log_lists_delivered_callbacks(page: Page, api: httpx.Client) -> None:
    listed = messages(api)
    assert listed["total"] >= 9 and {m["event_type"] for m in listed["items"]} == {
        "task.daily_stats"
    }
    page.set_viewport_size(WIDE)
    sign_in(page, path="/webhooks")
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(len(listed["items"]))
    for message in listed["items"]:
        row = page.locator(f"#webhook-message-{message['id']}")
        expect(row.locator("td[data-f=message] a")).to_have_text(message["id"])
        expect(row.locator("td[data-f=event]")).to_have_text(message["event_type"])
        expect(row.locator("td[data-f=status]")).to_have_text(message["status"])
        (delivery,) = message["deliveries"]
        expect(row.locator("td[data-f=endpoint]")).to_contain_text(short(delivery["url"]))
        expect(row.locator("[data-f=delivery_status]")).to_have_text(delivery["status"])
        expect(row.locator("td[data-f=attempts]")).to_have_text(f"{delivery['attempt_count']:,}")
        code = delivery["last_status_code"]
        expect(row.locator("td[data-f=last_code]")).to_have_text("–" if code is None else str(code))
        if delivery["next_attempt_at"] is None:
            expect(row.locator("td[data-f=next_attempt]")).to_have_text("–")
    pages = -(-listed["total"] // 20)
    expect(page.locator("#messages-pager")).to_contain_text(
        f"Page 1 of {pages} · {listed['total']:,} in all"
    )
    succeeded = [m for m in listed["items"] if m["status"] == "succeeded"]
    assert succeeded and all(m["deliveries"][0]["last_status_code"] == 204 for m in succeeded)
    screenshot(page, "webhooks-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "webhooks-en-390")

    page.set_viewport_size(WIDE)
    page.goto("/webhooks?status=failed")
    expect(page.get_by_label("Status", exact=True)).to_have_value("failed")
    expect(page.locator("#messages .state.empty")).to_have_text("No message matches.")
    assert messages(api, status="failed")["total"] == 0
    page.get_by_label("Status", exact=True).select_option("succeeded")
    expect(rows).to_have_count(min(messages(api, status="succeeded")["total"], 20))
    assert page.url.endswith("/webhooks?status=succeeded")


def test_a_message_shows_its_attempts_and_payload(page: Page, api: httpx.Client) -> None:
    message = delivered(api)
    (delivery,) = message["deliveries"]
    sign_in(page, path="/webhooks")
    page.locator(f"#webhook-message-{message['id']}").get_by_role("link").click()
    page.wait_for_url(f"**/webhooks/messages/{message['id']}")

    expect(page.locator("#message-id")).to_have_text(message["id"])
    expect(page.locator("#message-status")).to_have_text("succeeded")
    expect(page.locator("#message-line")).to_contain_text("task.daily_stats")
    box = page.locator(f"#delivery-{delivery['endpoint_id']}")
    expect(box.locator("h3")).to_have_text(delivery["url"])
    expect(box.locator("[data-f=attempt_count]")).to_have_text(str(delivery["attempt_count"]))
    expect(box.locator("[data-f=last_status_code]")).to_have_text("204")
    attempts = box.locator("tbody tr")
    expect(attempts).to_have_count(len(delivery["attempts"]))
    first = delivery["attempts"][0]
    row = page.locator(f"#delivery-{delivery['endpoint_id']}-attempt-1")
    expect(row.locator("td[data-f=status_code]")).to_have_text(str(first["status_code"]))
    expect(row.locator("td[data-f=duration_ms]")).to_have_text(f"{first['duration_ms']:,} ms")
    expect(row.locator("td[data-f=attempted_at]")).to_have_text(re.compile(r"GMT\+8"))
    expect(row.locator("td[data-f=response_body]")).to_have_text("(empty)")  # a 204
    expect(row.locator("td[data-f=error]")).to_have_text("–")
    assert json.loads(page.locator("#payload").inner_text()) == message["payload"]
    expect(page.locator("#payload")).to_contain_text('"event": "task.daily_stats"')  # pretty
    screenshot(page, "webhooks-message-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "webhooks-message-en-390")


def test_resend_sends_a_message_again(
    page: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    message = delivered(api)
    (delivery,) = message["deliveries"]
    tried = len(delivery["attempts"])
    sign_in(page, path=f"/webhooks/messages/{message['id']}")
    box = page.locator(f"#delivery-{delivery['endpoint_id']}")
    expect(box.locator("tbody tr")).to_have_count(tried)
    page.get_by_role("button", name="Resend").click()
    expect(page.locator("#toast")).to_have_text("Queued to be sent again.")
    expect(page.locator("#message-status")).to_have_text("pending")
    expect(box.locator("[data-f=status]")).to_have_text("pending")
    expect(box.locator("[data-f=attempt_count]")).to_have_text("0")

    assert live_server.deliver_webhooks()["succeeded"] == 1
    # The page reads a pending message again by itself.
    expect(page.locator("#message-status")).to_have_text("succeeded", timeout=POLLED)
    expect(box.locator("tbody tr")).to_have_count(tried + 1)
    expect(box.locator("tbody tr").first).to_have_id(
        f"delivery-{delivery['endpoint_id']}-attempt-{tried + 1}"
    )
    expect(box.locator("tbody tr").first.locator("td[data-f=status_code]")).to_have_text("204")
    again = api.get(f"/api/webhooks/messages/{message['id']}").json()
    assert again["status"] == "succeeded" and len(again["deliveries"][0]["attempts"]) == tried + 1


def test_an_endpoint_added_disabled_enabled_and_given_a_new_secret(
    page: Page, api: httpx.Client
) -> None:
    url = "https://partner.example/hooks/tallyhub"
    page.set_viewport_size(WIDE)
    sign_in(page, path="/webhooks")
    page.get_by_role("button", name="Add endpoint").click()
    form = page.locator("#endpoint-dialog")
    form.get_by_label("URL").fill(url)
    form.get_by_label("Description").fill("browser test")
    form.get_by_role("button", name="Create").click()
    shown = page.locator("#secret-dialog")
    expect(shown).to_be_visible()
    expect(shown.locator("#secret-value")).to_have_text(re.compile(r"^whsec_\S{20,}$"))
    first_secret = shown.locator("#secret-value").inner_text()
    expect(shown).to_contain_text(url)
    screenshot(page, "webhooks-secret-en-1440")
    shown.get_by_role("button", name="Close").click()
    expect(shown.locator("#secret-value")).to_have_text("")  # shown once: gone from the page

    endpoint = next(
        e for e in api.get("/api/webhooks/endpoints").json()["items"] if e["url"] == url
    )
    assert "secret" not in endpoint and endpoint["enabled"]
    row = page.locator(f"#webhook-endpoint-{endpoint['id']}")
    expect(row.locator("td[data-f=url]")).to_contain_text("browser test")
    expect(row.locator("td[data-f=state]")).to_have_text("enabled")
    name = short(url)
    row.get_by_role("button", name=f"Disable {name}").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text(f"Disable {name}?")
    confirm.get_by_role("button", name="Disable").click()
    expect(row.locator("td[data-f=state]")).to_contain_text("disabled")
    expect(row.locator("td[data-f=state]")).to_contain_text("disabled by demo")
    assert not api.get(f"/api/webhooks/endpoints/{endpoint['id']}").json()["enabled"]
    row.get_by_role("button", name=f"Enable {name}").click()
    expect(row.locator("td[data-f=state]")).to_have_text("enabled")
    assert api.get(f"/api/webhooks/endpoints/{endpoint['id']}").json()["enabled"]

    row.get_by_role("button", name=f"New secret for {name}").click()
    expect(confirm).to_contain_text("The old secret stops at once")
    confirm.get_by_role("button", name="New secret").click()
    expect(shown).to_be_visible()
    expect(shown.locator("#secret-value")).to_have_text(re.compile(r"^whsec_\S{20,}$"))
    assert shown.locator("#secret-value").inner_text() != first_secret
    shown.get_by_role("button", name="Close").click()
    expect(shown.locator("#secret-value")).to_have_text("")


def test_a_viewer_sees_no_write_action(browser: Browser, base_url: str, api: httpx.Client) -> None:
    message = delivered(api)
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        page.goto("/webhooks")
        expect(page.locator("#messages tbody tr").first).to_be_visible()
        expect(page.locator("#endpoints tbody tr").first).to_be_visible()
        for control in ("#endpoint-add", "#endpoint-dialog", "#secret-dialog", "#confirm-dialog"):
            expect(page.locator(control)).to_have_count(0)
        for label in ("Disable", "Enable", "New secret"):
            expect(page.get_by_role("button", name=label)).to_have_count(0)
        page.goto(f"/webhooks/messages/{message['id']}")
        expect(page.locator("#message-status")).to_have_text("succeeded")
        expect(page.get_by_role("button", name="Resend")).to_have_count(0)
    finally:
        context.close()


def test_an_unknown_message_is_said_in_words(page: Page) -> None:
    sign_in(page, path="/webhooks/messages/msg_0123abc")
    expect(page.locator("#message-state [role=alert]")).to_have_text(
        "Could not load: no webhook message msg_0123abc"
    )
    expect(page.locator("#message-body")).to_be_hidden()


def test_the_pages_in_chinese(browser: Browser, base_url: str, api: httpx.Client) -> None:
    message = delivered(api)
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/webhooks")
        expect(page.locator("h1")).to_have_text("回调日志")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("回调日志")
        expect(page.locator(f"#webhook-message-{message['id']} td[data-f=status]")).to_have_text(
            "已送达"
        )
        screenshot(page, "webhooks-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "webhooks-zh-CN-390")

        page.set_viewport_size(WIDE)
        page.goto(f"/webhooks/messages/{message['id']}")
        expect(page.locator("#deliveries-title")).to_have_text("投递与尝试")
        expect(page.locator("#message-status")).to_have_text("已送达")
        screenshot(page, "webhooks-message-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "webhooks-message-zh-CN-390")
    finally:
        context.close()
