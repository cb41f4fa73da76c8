"""The call-center page in a real browser, against `tallyhub serve` with the call-center
simulator inside (as `make run` has it: the last ten days and today synced through the
jobs): the tiles equal the API and say where they came from and when; a past day not
synced says so and its refresh fills it; the trend and hour charts draw the API's numbers;
the agent ranking sorts; the export links download the API's figures; a viewer gets no
refresh; both languages at 1440 and 390 px; the overview's tile."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, percent, screenshot, sign_in

pytestmark = pytest.mark.browser

NARROW: ViewportSize = {"width": 390, "height": 844}
WIDE: ViewportSize = {"width": 1440, "height": 900}
REFRESHED = 30_000  # ms: a day's two syncs against the local simulator take about a second
ZONE = re.compile(r"GMT\+8")  # how en-US names the viewer's zone, Asia/Shanghai
TILES = ("tile-grade-9", "tile-grade-1", "tile-success", "tile-connected")


@pytest.fixture(scope="module")
def today(live_server: LiveServer) -> date:
    return live_server.callcenter_synced()


@pytest.fixture(scope="module")
def api(live_server: LiveServer, today: date) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


def stats(api: httpx.Client, path: str, **params: Any) -> Any:
    answer = api.get(f"/api/stats/{path}", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    return body["data"]


def day_of(api: httpx.Client, day: date) -> tuple[dict[str, Any], dict[str, Any]]:
    return stats(api, "grade-stats", date=str(day)), stats(api, "task-stats", date=str(day))


def rate(tasks: dict[str, Any]) -> str:
    """The connected rate as the page writes it: one decimal; none without calls."""
    return percent(tasks["connected_rate"]) if tasks["callout_number"] else "–"


def value(page: Page, tile: str) -> Locator:
    return page.locator(f"#{tile} [data-value]")


def expect_tiles(page: Page, grades: dict[str, Any], tasks: dict[str, Any]) -> None:
    expect(value(page, "tile-grade-9")).to_have_text(f"{grades['grade_9']:,}")
    expect(value(page, "tile-grade-1")).to_have_text(f"{grades['grade_1']:,}")
    expect(value(page, "tile-success")).to_have_text(f"{grades['total_success']:,}")
    expect(value(page, "tile-connected")).to_have_text(rate(tasks))


def expect_source(page: Page, tile: str, row: dict[str, Any], source: str) -> None:
    """The tile's badge ("from cache" / "computed now") and its time, relative, with the
    exact time and zone in the title."""
    sub = page.locator(f"#{tile} [data-sub]")
    expect(sub.locator(".badge")).to_have_text(source)
    time = sub.locator("time")
    expect(time).to_have_attribute("datetime", row["calculated_at"])
    expect(time).to_have_attribute("title", ZONE)
    expect(sub.locator(".updated")).to_have_text(re.compile(r"^updated .*(ago|now)$"))


def span(today: date, days: int) -> tuple[date, date]:
    return today - timedelta(days=days - 1), today


def every_day(first: date, last: date) -> list[str]:
    return [str(first + timedelta(days=n)) for n in range((last - first).days + 1)]


def chart(page: Page, box: str, traces: int) -> list[dict[str, Any]]:
    """The chart's traces as plotly holds them, once it has drawn `traces` of them."""
    page.wait_for_function(f"document.getElementById('{box}').data?.length === {traces}")
    return page.evaluate(
        f"Array.from(document.getElementById('{box}').data,"
        " (d) => ({name: d.name, x: Array.from(d.x), y: Array.from(d.y)}))"
    )


def no_sideways_scroll(page: Page) -> None:
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_tiles_and_charts_are_the_apis(page: Page, api: httpx.Client, today: date) -> None:
    grades, tasks = day_of(api, today)
    first, last = span(today, 14)  # the range picker's default
    daily = {d["date"]: d for d in stats(api, "daily", **{"from": first, "to": last})}
    hours = stats(api, "hours", **{"from": first, "to": last})
    assert len(daily) >= 11 and sum(h["calls"] for h in hours) > 0  # the demo's ten days
    page.set_viewport_size(WIDE)
    sign_in(page, path="/callcenter")

    expect(page.locator("#day-picker")).to_have_value(str(today))
    expect_tiles(page, grades, tasks)
    for tile in TILES[:3]:
        expect_source(page, tile, grades, "from cache")
    expect_source(page, "tile-connected", tasks, "from cache")
    expect(page.locator("#not-synced")).to_be_hidden()

    days = every_day(first, last)
    trend = chart(page, "trend-chart", 3)
    assert [t["name"] for t in trend] == ["9-yuan", "1-yuan", "Connected rate"]
    assert all(t["x"] == days for t in trend)
    for trace, key in zip(trend[:2], ("grade_9", "grade_1"), strict=True):
        assert trace["y"] == [daily[d][key] if d in daily else None for d in days]
    assert trend[2]["y"] == [
        float(daily[d]["connected_rate"]) if d in daily and daily[d]["callout_number"] else None
        for d in days
    ]
    by_hour = chart(page, "hour-chart", 4)
    assert [t["name"] for t in by_hour] == ["Calls", "Connected", "9-yuan", "1-yuan"]
    for trace, key in zip(by_hour, ("calls", "connected", "grade_9", "grade_1"), strict=True):
        assert trace["x"] == list(range(24))
        assert trace["y"] == [h[key] for h in hours]

    screenshot(page, "callcenter-en-1440")
    page.set_viewport_size(NARROW)
    no_sideways_scroll(page)
    screenshot(page, "callcenter-en-390")


def test_the_agent_ranking_sorts(page: Page, api: httpx.Client, today: date) -> None:
    first, last = span(today, 14)
    sign_in(page, path="/callcenter")
    rows = page.locator("#agents tbody tr")
    for sort, chip in (("grade_9", None), ("calls", "Calls"), ("grade_1", "1-yuan")):
        if chip:
            page.locator("#agent-sort").get_by_role("button", name=chip, exact=True).click()
            expect(page.locator("#agent-sort button[aria-pressed=true]")).to_have_text(chip)
        ranked = stats(api, "agents", **{"from": first, "to": last, "sort": sort, "limit": 20})
        assert len(ranked) == 20
        expect(page.locator(f"#agents[data-sort={sort}]")).to_have_count(1)
        expect(rows).to_have_count(20)
        for index in (0, 1, 19):
            agent, row = ranked[index], rows.nth(index)
            expect(row).to_have_attribute("id", f"callcenter-agent-{agent['agent_id']}")
            expect(row.locator("td[data-f=rank]")).to_have_text(str(index + 1))
            expect(row.locator(f"td[data-f={sort}]")).to_have_text(f"{agent[sort]:,}")
        figures = [a[sort] for a in ranked]
        assert figures == sorted(figures, reverse=True)


def _rows_of_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _rows_of_xlsx(path: Path) -> list[dict[str, Any]]:
    sheet = load_workbook(path, read_only=True)["daily"]
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    return [dict(zip(header, r, strict=True)) for r in rows]


def _same_figures(exported: dict[str, Any], day: dict[str, Any]) -> None:
    assert str(exported["date"]) == day["date"]
    for key in ("total_tasks", "callout_number", "called_number", "success_number"):
        assert int(exported[key]) == day[key], key
    for key in ("grade_9", "grade_1", "total_success", "total_records"):
        assert int(exported[key]) == day[key], key
    assert Decimal(str(exported["connected_rate"])) == Decimal(day["connected_rate"])


def test_the_export_links_download_the_apis_figures(
    page: Page, api: httpx.Client, today: date, tmp_path: Path
) -> None:
    first, last = span(today, 30)
    sign_in(page, path="/callcenter")
    page.locator("#range-picker").get_by_role("button", name="30 days").click()
    csv_link, xlsx_link = page.locator("#export-csv"), page.locator("#export-xlsx")
    expect(csv_link).to_have_attribute(
        "href", f"/api/stats/export?from={first}&to={last}&format=csv"
    )
    daily = stats(api, "daily", **{"from": first, "to": last})
    assert len(daily) >= 11

    files = {}
    for name, link in (("csv", csv_link), ("xlsx", xlsx_link)):
        with page.expect_download() as download:
            link.click()
        assert download.value.suggested_filename == f"callcenter-{first}-{last}.{name}"
        files[name] = tmp_path / f"export.{name}"
        download.value.save_as(files[name])
    for rows in (_rows_of_csv(files["csv"]), _rows_of_xlsx(files["xlsx"])):
        assert len(rows) == len(daily)
        for exported, day in zip(rows, daily, strict=True):
            _same_figures(exported, day)


def test_a_past_day_not_synced_says_so_and_its_refresh_fills_it(
    page: Page, api: httpx.Client, today: date
) -> None:
    day = today - timedelta(days=20)  # past the jobs' ten days: never synced here
    missing = api.get("/api/stats/grade-stats", params={"date": str(day)})
    assert missing.status_code == 404 and "not been synced yet" in missing.json()["error"]
    sign_in(page, path="/callcenter")
    page.locator("#day-picker").fill(str(day))
    page.wait_for_url(f"**/callcenter?date={day}")

    banner = page.locator("#not-synced")
    expect(banner).to_contain_text(f"{day:%b} {day.day}, {day.year} has not been synced yet")
    for tile in TILES:
        expect(value(page, tile)).to_have_text("–")
        expect(page.locator(f"#{tile} [data-sub]")).to_have_text("not synced yet")
    banner.get_by_role("button", name="Sync this day now").click()
    expect(banner).to_be_hidden(timeout=REFRESHED)
    expect(page.locator("#toast")).to_contain_text("refreshed")

    grades, tasks = day_of(api, day)
    assert grades["total_records"] > 0 and tasks["callout_number"] > 0
    expect_tiles(page, grades, tasks)
    expect_source(page, "tile-grade-9", grades, "computed now")
    expect_source(page, "tile-connected", tasks, "computed now")
    page.reload()
    expect_tiles(page, grades, tasks)
    expect_source(page, "tile-grade-9", grades, "from cache")


def test_a_viewer_sees_no_refresh(
    browser: Browser, base_url: str, api: httpx.Client, today: date
) -> None:
    day = today - timedelta(days=25)
    context = context_for(browser, base_url, "viewer", PASSWORD)
    try:
        page = context.new_page()
        page.goto(f"/callcenter?date={day}")
        banner = page.locator("#not-synced")
        expect(banner).to_contain_text("has not been synced yet")
        expect(banner).to_contain_text("An operator or an admin can sync it now.")
        for label in ("Refresh this day", "Sync this day now"):
            expect(page.get_by_role("button", name=label)).to_have_count(0)
        page.locator("#day-picker").fill(str(today))
        expect_tiles(page, *day_of(api, today))
        expect(page.locator("#agents tbody tr")).to_have_count(20)
    finally:
        context.close()


def test_the_page_in_chinese(
    browser: Browser, base_url: str, api: httpx.Client, today: date
) -> None:
    yesterday = today - timedelta(days=1)
    grades, tasks = day_of(api, yesterday)
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/callcenter")
        expect(page.locator("h1")).to_have_text("外呼统计")
        expect(page.locator(".nav a[aria-current=page]")).to_have_text("外呼统计")
        page.locator("#day-picker").fill(str(yesterday))
        page.locator("#day-picker").blur()
        expect_tiles(page, grades, tasks)
        expect(page.locator("#tile-grade-9 .label")).to_have_text("9元单")
        expect(page.locator("#tile-grade-9 [data-sub] .badge")).to_have_text("来自缓存")
        expect(page.locator("#tile-grade-9 [data-sub] .updated")).to_contain_text("更新于")
        expect(page.locator("#agents th").nth(2)).to_have_text("9元单")
        assert [t["name"] for t in chart(page, "trend-chart", 3)] == ["9元单", "1元单", "接通率"]
        chart(page, "hour-chart", 4)
        screenshot(page, "callcenter-zh-CN-1440")
        page.set_viewport_size(NARROW)
        no_sideways_scroll(page)
        screenshot(page, "callcenter-zh-CN-390")
    finally:
        context.close()


def test_the_overview_tile_is_todays_grades(page: Page, api: httpx.Client, today: date) -> None:
    grades = stats(api, "grade-stats", date=str(today))
    sign_in(page)
    tile = page.locator("#tile-callcenter")
    expect(tile.locator("[data-value]")).to_have_text(
        f"{grades['grade_9']:,} / {grades['grade_1']:,}"
    )
    expect(tile.locator("[data-sub]")).to_have_text(re.compile(r"^from cache · updated "))
    tile.click()
    page.wait_for_url("**/callcenter")
    expect(page.locator(".nav a[aria-current=page]")).to_have_text("Call center")
