"""The task-rollup pages in a real browser, against `tallyhub serve` with the video simulator
and a partner's receiver inside (as `make run` has it: three tasks, completions of three
days, the days scanned and their callbacks delivered): the latest day's rows equal the API,
figure by figure and callback by callback; another day from the picker, with the agents'
day; a task's trend chart draws its days over the chosen range; a writer changes a task's
settings; a scan by hand shows its counts, and its callback pending then delivered (on the
overview's tile too); a viewer gets no write action; both languages at 1440 and 390 px."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.web.conftest import (
    PASSWORD,
    LiveServer,
    context_for,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser

NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
# Each platform's cell and the counts it shows, as the day rows name their fields.
PLATFORMS = {
    "youtube": ("yt", ("account", "view", "like", "comment")),
    "tiktok": ("tt", ("account", "view", "like", "comment")),
    "douyin": ("dy", ("account", "view", "like", "comment", "share", "collect")),
}


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    live_server.deliver_webhooks()  # the demo scan's callbacks (no scheduler runs here)
    with live_server.client() as client:
        assert client.get("/api/taskstats/summary").json()["callbacks_pending"] == 0
        yield client


def latest_day(api: httpx.Client) -> str:
    latest = api.get("/api/taskstats/summary").json()["latest_date"]
    assert latest is not None, "the demo scan rolled up no day"
    return latest  # type: ignore[no-any-return]


def days_before(day: str, n: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=n)).isoformat()


def day_rows(api: httpx.Client, day: str) -> list[dict[str, Any]]:
    rows = api.get("/api/taskstats/daily", params={"date": day}).json()["items"]
    return rows  # type: ignore[no-any-return]


def no_sideways_scroll(page: Page) -> None:
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")


def chart_data(page: Page) -> list[dict[str, Any]]:
    """The trend chart's traces as plotly holds them: name, x and y."""
    return page.evaluate(  # type: ignore[no-any-return]
        "Array.from(document.getElementById('trend-chart').data,"
        " (d) => ({name: d.name, x: Array.from(d.x), y: Array.from(d.y)}))"
    )


def expect_figures(row: Locator, day: dict[str, Any]) -> None:
    """The row shows every count of the day as the API has it."""
    for field in ("completion_count", "total_account_count"):
        expect(row.locator(f"td[data-f={field}]")).to_have_text(f"{day[field]:,}")
    for platform, (prefix, counts) in PLATFORMS.items():
        cell = row.locator(f"td[data-f={platform}]")
        if day[f"{prefix}_account_count"] == 0:
            expect(cell).to_have_text("–")  # no completion on that platform that day
            continue
        for count in counts:
            field = f"{prefix}_{count}_count"
            expect(cell.locator(f"[data-f={field}]")).to_have_text(f"{day[field]:,}")


def expect_delivered(row: Locator, day: dict[str, Any]) -> None:
    """The row's callback as the API has it: delivered, when, the answer, the retries, and
    a link to its message in the webhook log."""
    assert day["webhook_sent"] and day["webhook_message_id"], day
    callback = row.locator("td[data-f=callback]")
    expect(callback.locator("[data-f=callback_state]")).to_have_text("delivered")
    sent = callback.locator("[data-f=webhook_sent_at]")
    expect(sent).to_have_text(re.compile(r"^sent "))
    expect(sent).to_have_attribute("title", re.compile(r"GMT\+8"))  # the exact time
    answer = callback.locator("[data-f=webhook_response]")
    expect(answer).to_have_text(f"answer: {day['webhook_response']}")
    expect(callback.locator("[data-f=retry_count]")).to_have_text(f"{day['retry_count']} retries")
    expect(callback.locator("[data-f=message]")).to_have_attribute(
        "href", f"/webhooks/messages/{day['webhook_message_id']}"
    )


def test_the_latest_days_rows_equal_the_api(page: Page, api: httpx.Client) -> None:
    summary = api.get("/api/taskstats/summary").json()
    latest = summary["latest_date"]
    rows = day_rows(api, latest)
    tasks = {t["id"]: t for t in api.get("/api/taskstats/tasks").json()["items"]}
    assert len(rows) == len(tasks) == 3 and all(r["webhook_sent"] for r in rows)
    page.set_viewport_size(WIDE)
    sign_in(page, path="/taskstats")

    expect(page.locator("#day-picker")).to_have_value(latest)
    expect(page.locator("#tile-tasks [data-value]")).to_have_text(f"{summary['tasks']:,}")
    completions = f"{summary['completions']:,}"
    expect(page.locator("#tile-completions [data-value]")).to_have_text(completions)
    expect(page.locator("#tile-accounts [data-value]")).to_have_text(f"{summary['accounts']:,}")
    expect(page.locator("#tile-callbacks [data-value]")).to_have_text("0")
    expect(page.locator("#tile-callbacks [data-sub]")).to_have_text("all delivered")
    expect(page.locator("#rows tbody tr")).to_have_count(len(rows))
    for day in rows:
        row = page.locator(f"#taskstats-row-{day['task_id']}")
        task = tasks[day["task_id"]]
        expect(row.locator("td[data-f=task] a")).to_have_text(task["title"])
        expect(row.locator("td[data-f=task]")).to_contain_text(task["project_id"])
        expect_figures(row, day)
        expect_delivered(row, day)
    screenshot(page, "taskstats-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "taskstats-en-390")

    first = rows[0]
    page.set_viewport_size(WIDE)
    page.locator(f"#taskstats-row-{first['task_id']} [data-f=message]").click()
    page.wait_for_url(f"**/webhooks/messages/{first['webhook_message_id']}")
    expect(page.locator("#message-id")).to_have_text(first["webhook_message_id"])
    expect(page.locator("#message-status")).to_have_text("succeeded")


def test_another_day_from_the_picker_with_its_agents(page: Page, api: httpx.Client) -> None:
    earlier = days_before(latest_day(api), 2)
    rows = day_rows(api, earlier)
    agents = api.get("/api/taskstats/agents/daily", params={"date": earlier}).json()
    assert rows and len(agents) == 2  # the demo's promoters belong to two agents
    sign_in(page, path="/taskstats")
    expect(page.locator("#rows tbody tr").first).to_be_visible()
    page.locator("#day-picker").fill(earlier)

    shown = date.fromisoformat(earlier).strftime("%b %-d, %Y")  # en-US's medium date
    expect(page.locator("#rows-title")).to_have_text(f"Tasks on {shown}")
    expect(page.locator("#agents-title")).to_have_text(f"Agents on {shown}")
    expect(page.locator("#rows tbody tr")).to_have_count(len(rows))
    for day in rows:
        expect_figures(page.locator(f"#taskstats-row-{day['task_id']}"), day)
    assert page.url.endswith(f"/taskstats?date={earlier}")
    agent_rows = page.locator("#agents tbody tr")
    expect(agent_rows).to_have_count(len(agents))
    for index, agent in enumerate(agents):
        row = agent_rows.nth(index)
        expect(row.locator("td[data-f=agent_node]")).to_have_text(agent["agent_node"])
        for field in ("user_count", "completion_count", "yt_view_count", "dy_view_count"):
            expect(row.locator(f"td[data-f={field}]")).to_have_text(f"{agent[field]:,}")
        expect(row.locator("td[data-f=like_count]")).to_have_text(f"{agent['like_count']:,}")

    page.reload()  # the day is kept in the address
    expect(page.locator("#day-picker")).to_have_value(earlier)
    expect(page.locator("#rows tbody tr")).to_have_count(len(rows))


def test_a_tasks_trend_chart_draws_its_days(page: Page, api: httpx.Client) -> None:
    latest = latest_day(api)
    task = api.get("/api/taskstats/tasks").json()["items"][-1]
    start = days_before(latest, 13)
    days = api.get(f"/api/taskstats/tasks/{task['id']}/daily", params={"from": start, "to": latest})
    by_day = {d["stats_date"]: d for d in days.json()}
    assert len(by_day) == 3  # the demo's three days
    axis = [days_before(latest, n) for n in range(13, -1, -1)]  # the 14 days picked

    page.set_viewport_size(WIDE)
    sign_in(page, path="/taskstats")
    page.get_by_role("link", name=task["title"]).click()
    page.wait_for_url(f"**/taskstats/tasks/{task['id']}")
    expect(page.locator("h1")).to_have_text(task["title"])
    expect(page.get_by_role("button", name="14 days")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function("document.getElementById('trend-chart').data?.length === 2")
    completions, accounts = chart_data(page)
    assert completions["name"] == "Completions" and accounts["name"] == "Accounts"
    assert completions["x"] == axis == accounts["x"]
    # A day without a row has no point: not rolled up is not the same as zero.
    assert completions["y"] == [
        by_day[d]["completion_count"] if d in by_day else None for d in axis
    ]
    assert accounts["y"] == [
        by_day[d]["total_account_count"] if d in by_day else None for d in axis
    ]
    expect(page.locator("#days tbody tr")).to_have_count(3)
    expect_figures(page.locator(f"#taskstats-day-{latest}"), by_day[latest])

    page.get_by_role("button", name="Views per platform").click()
    page.wait_for_function("document.getElementById('trend-chart').data?.length === 3")
    views = chart_data(page)
    assert [v["name"] for v in views] == ["YouTube", "TikTok", "Douyin"]
    for trace, prefix in zip(views, ("yt", "tt", "dy"), strict=True):
        assert trace["y"] == [
            by_day[d][f"{prefix}_view_count"] if d in by_day else None for d in axis
        ]
    page.get_by_role("button", name="7 days").click()
    page.wait_for_function("document.getElementById('trend-chart').data?.[0].x.length === 7")
    assert chart_data(page)[0]["x"] == axis[-7:]
    screenshot(page, "taskstats-task-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "taskstats-task-en-390")


def test_a_writer_changes_a_tasks_settings(page: Page, api: httpx.Client) -> None:
    task = api.get("/api/taskstats/tasks").json()["items"][0]
    sign_in(page, path=f"/taskstats/tasks/{task['id']}")
    form = page.locator("#task-form")
    expect(form.get_by_label("Title")).to_have_value(task["title"])
    expect(form.get_by_label("Callback URL")).to_have_value(task["callback_url"])
    try:
        form.get_by_label("Callback URL").fill("ftp://partner.example/x2c")
        form.get_by_role("button", name="Save").click()
        expect(form.locator(".form-error")).to_contain_text("callback_url")  # the API's words
        form.get_by_label("Callback URL").fill(task["callback_url"])
        form.get_by_label("Title").fill(f"{task['title']} (edited)")
        form.get_by_label("Duration (days)").fill("21")
        form.get_by_label("Status").select_option("paused")
        form.get_by_role("button", name="Save").click()
        expect(page.locator("#toast")).to_have_text("Task saved.")
        expect(page.locator("h1")).to_have_text(f"{task['title']} (edited)")
        expect(page.locator("#task-status")).to_have_text("paused")
        saved = api.get(f"/api/taskstats/tasks/{task['id']}").json()
        assert (saved["title"], saved["duration"], saved["status"]) == (
            f"{task['title']} (edited)",
            21,
            "paused",
        )
        assert saved["callback_url"] == task["callback_url"]
    finally:
        restore = {k: task[k] for k in ("title", "duration", "status", "callback_url")}
        assert api.patch(f"/api/taskstats/tasks/{task['id']}", json=restore).status_code == 200


def test_a_scan_by_hand_shows_its_counts(
    page: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    """A completion arrives late for the latest day; scanning that day again by hand rolls
    up its task anew and queues one callback, pending until it is delivered."""
    latest = latest_day(api)
    task = api.get("/api/taskstats/tasks").json()["items"][-1]
    before = next(r for r in day_rows(api, latest) if r["task_id"] == task["id"])
    promoter = api.get("/api/taskstats/users").json()["items"][0]
    late = {
        "external_id": f"browser-{uuid.uuid4().hex}",
        "task_id": task["id"],
        "user_id": promoter["id"],
        "platform": "youtube",
        "submission_link": "https://www.youtube.com/watch?v=BrowserTst1",
        "verification_details": {"view_count": 1234, "like_count": 56},
        "completed_at": f"{latest}T12:00:00+08:00",
    }
    assert api.post("/api/taskstats/completions", json=late).json()["created"] == 1
    sign_in(page, path="/taskstats")
    expect(page.locator("#day-picker")).to_have_value(latest)  # the page has its day
    page.get_by_role("button", name="Scan a day").click()
    dialog = page.locator("#scan-dialog")
    expect(dialog.get_by_label("Day")).to_have_value(latest)
    with page.expect_response("**/api/taskstats/scan") as answer:
        dialog.get_by_role("button", name="Scan", exact=True).click()
    result = answer.value.json()
    assert result["date"] == latest and result["failed"] == 0
    assert result["callbacks"] == 1 and result["unchanged"] == result["tasks"] - 1
    for name in ("tasks", "ok", "failed", "unchanged", "callbacks", "fetched"):
        expect(dialog.locator(f"#scan-result [data-f={name}]")).to_have_text(f"{result[name]:,}")
    expect(page.locator("#toast")).to_contain_text("scanned.")
    dialog.get_by_role("button", name="Close").click()

    row = page.locator(f"#taskstats-row-{task['id']}")
    count = f"{before['completion_count'] + 1:,}"
    expect(row.locator("td[data-f=completion_count]")).to_have_text(count)
    expect(row.locator("[data-f=callback_state]")).to_have_text("pending")
    expect(page.locator("#tile-callbacks [data-value]")).to_have_text("1")
    page.goto("/")
    tile = page.locator("#tile-taskstats")
    summary = api.get("/api/taskstats/summary").json()
    expect(tile.locator("[data-value]")).to_have_text(f"{summary['completions']:,}")
    expect(tile.locator("[data-sub]")).to_contain_text(f"{summary['accounts']:,} accounts")
    expect(tile.locator("[data-sub] .badge.warn")).to_have_text("callbacks pending: 1")
    expect(tile).to_have_attribute("href", "/taskstats")

    assert live_server.deliver_webhooks()["succeeded"] == 1
    page.reload()
    expect(tile.locator("[data-sub] .badge")).to_have_count(0)
    page.goto("/taskstats")
    after = next(r for r in day_rows(api, latest) if r["task_id"] == task["id"])
    expect_delivered(row, after)
    assert after["webhook_message_id"] != before["webhook_message_id"]


def test_a_viewer_sees_no_write_action(browser: Browser, base_url: str, api: httpx.Client) -> None:
    task = api.get("/api/taskstats/tasks").json()["items"][0]
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        page.goto("/taskstats")
        expect(page.locator("#rows tbody tr")).to_have_count(3)
        for control in ("#scan-open", "#scan-dialog"):
            expect(page.locator(control)).to_have_count(0)
        page.goto(f"/taskstats/tasks/{task['id']}")
        expect(page.locator("#task-settings")).to_contain_text(task["title"])
        expect(page.locator("#task-form")).to_have_count(0)
        expect(page.get_by_role("button", name="Save")).to_have_count(0)
    finally:
        context.close()


def test_the_pages_in_chinese(browser: Browser, base_url: str, api: httpx.Client) -> None:
    task = api.get("/api/taskstats/tasks").json()["items"][0]
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/taskstats")
        expect(page.locator("h1")).to_have_text("任务统计")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("任务统计")
        expect(page.locator("#rows [data-f=callback_state]").first).to_have_text("已送达")
        expect(page.locator("#agents tbody tr")).to_have_count(2)
        screenshot(page, "taskstats-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "taskstats-zh-CN-390")

        page.set_viewport_size(WIDE)
        page.goto(f"/taskstats/tasks/{task['id']}")
        expect(page.locator("#trend-title")).to_have_text("每日趋势")
        page.wait_for_function("document.getElementById('trend-chart').data?.length === 2")
        expect(page.locator("#days [data-f=callback_state]").first).to_have_text("已送达")
        screenshot(page, "taskstats-task-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "taskstats-task-zh-CN-390")
    finally:
        context.close()
