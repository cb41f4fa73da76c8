"""The jobs page in a real browser: every registered job with its schedule in words and
its zone, times in the viewer's zone with the zone shown, results as text (never JSON);
an admin runs a job now and sees its new run (the live server runs with
TALLYHUB_SCHEDULER=off: a run by hand runs in the web process and is answered when it
ends); viewers and operators get no run button; the history's filters come from the URL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import PASSWORD, LiveServer, context_for, screenshot, sign_in

pytestmark = pytest.mark.browser

QUICK_JOB = "core.prune_job_runs"  # deletes runs past the kept history: nothing, here
ZONE = re.compile(r"GMT\+8")  # how en-US names the viewer's zone, Asia/Shanghai
WIDE = {"width": 1440, "height": 900}


def row(page: Page, job: str) -> str:
    return "#job-" + job.replace(".", "-")


def test_every_job_with_its_schedule_zone_and_results_in_words(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.client() as api:
        assert api.post(f"/api/jobs/{QUICK_JOB}/run").status_code == 200  # counts to show
        listed = api.get("/api/jobs").json()
    page.set_viewport_size(WIDE)
    sign_in(page, path="/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(listed["total"])
    timezone = listed["items"][0]["timezone"]

    recover = page.locator(row(page, "core.recover_runs"))
    expect(recover.locator("[data-f=schedule]")).to_contain_text("every 30 seconds")
    expect(recover.locator("[data-f=schedule]")).to_contain_text(f"time zone {timezone}")
    prune = page.locator(row(page, QUICK_JOB))
    expect(prune.locator("[data-f=schedule]")).to_contain_text("daily at 04:15")
    expect(prune.locator("[data-f=next]")).to_have_text(ZONE)
    expect(prune.locator("[data-f=last]")).to_have_text(ZONE)
    expect(prune.locator("[data-f=status]")).to_have_text("succeeded")
    expect(prune.locator("[data-f=attempt]")).to_have_text(re.compile(r"^attempt \d+$"))
    expect(prune.locator("[data-f=duration]")).to_have_text(re.compile(r"^[\d.,]+ (ms|s)$"))
    expect(prune.locator("[data-f=result]")).to_have_text(re.compile(r"^[\d,]+ deleted$"))
    expect(
        page.locator(row(page, "leads.recalibrate")).locator("[data-f=schedule]")
    ).to_contain_text("daily at 03:00")
    expect(page.locator("#runs tbody tr").first).to_be_visible()
    for cell in page.locator("[data-f=result]").all():
        assert "{" not in cell.inner_text()
    expect(page.locator("#viewer-zone")).to_contain_text("Asia/Shanghai")
    screenshot(page, "jobs-en-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "jobs-en-390")


def test_an_admin_runs_a_job_now_and_sees_its_new_run(page: Page, live_server: LiveServer) -> None:
    sign_in(page, path=f"/jobs?job={QUICK_JOB}")
    expect(page.locator("#filter-job")).to_have_value(QUICK_JOB)
    with live_server.client() as api:
        before = api.get("/api/jobs/runs", params={"job": QUICK_JOB}).json()["total"]

    page.get_by_role("button", name=f"Run {QUICK_JOB} now").click()
    expect(page.locator("#toast")).to_contain_text(f"{QUICK_JOB}: succeeded in")
    with live_server.client() as api:
        runs = api.get("/api/jobs/runs", params={"job": QUICK_JOB}).json()
    assert runs["total"] == before + 1
    newest = runs["items"][0]
    assert newest["trigger"] == "manual" and newest["status"] == "succeeded"
    ran = page.locator(f"#run-{newest['id']}")
    expect(ran).to_contain_text("by hand")
    expect(ran.locator("[data-f=status]")).to_have_text("succeeded")
    expect(page.locator("#runs tbody tr")).to_have_count(min(before + 1, 20))
    expect(page.locator("#runs-pager")).to_contain_text(f"{before + 1} in all")


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_others_see_the_jobs_but_no_run_button(
    browser: Browser, base_url: str, live_server: LiveServer, role: str
) -> None:
    context = context_for(browser, base_url, role, PASSWORD)
    try:
        page = context.new_page()
        page.goto("/jobs")
        with live_server.client() as api:
            total = api.get("/api/jobs").json()["total"]
        expect(page.locator("#jobs tbody tr")).to_have_count(total)
        expect(page.locator(".run-now")).to_have_count(0)
        expect(page.get_by_role("columnheader", name="Actions")).to_have_count(0)
    finally:
        context.close()


def test_the_failed_runs_link_presets_the_filter(page: Page) -> None:
    sign_in(page, path="/jobs?status=failed")
    expect(page.locator("#filter-status")).to_have_value("failed")
    runs, badges = page.locator("#runs"), page.locator("#runs [data-f=status]")
    expect(runs.locator(".state.loading")).to_have_count(0)
    expect(runs.locator(".state, tbody tr").first).to_be_visible()
    if badges.count() == 0:
        expect(runs).to_have_text("No runs match these filters.")
    expect(badges.filter(has_not_text="failed")).to_have_count(0)

    page.select_option("#filter-status", "succeeded")
    # The first badge saying "succeeded" is the new answer (the table is drawn at once);
    # then none of the others may say anything else.
    expect(badges.first).to_have_text("succeeded")
    expect(badges.filter(has_not_text="succeeded")).to_have_count(0)


def test_the_jobs_page_in_chinese(browser: Browser, base_url: str, live_server: LiveServer) -> None:
    with live_server.client() as api:  # counts with detail per account to show
        assert api.post("/api/jobs/douplus.sync_stats/run").status_code == 200
    context = context_for(browser, base_url, language="zh-CN", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto("/jobs")
        expect(page.locator("h1")).to_have_text("定时任务")
        stats = page.locator(row(page, "douplus.sync_stats"))
        expect(stats.locator(".job-name small")).to_have_text("同步当前 5 分钟窗口的 DOU+ 订单数据")
        # The run's own figures in Chinese; its detail per account on hover only.
        result = stats.locator("[data-f=result] .counts")
        expect(result).to_contain_text("个账号")
        expect(result).to_contain_text("成功")
        expect(result).not_to_contain_text("按账号")
        assert "按账号" in (result.get_attribute("title") or "")
        assert not re.search(r"[a-z]{3,}", result.inner_text()), result.inner_text()
        recover = page.locator(row(page, "core.recover_runs")).locator("[data-f=schedule]")
        expect(recover).to_contain_text("每 30 秒")
        recalibrate = page.locator(row(page, "leads.recalibrate")).locator("[data-f=schedule]")
        expect(recalibrate).to_contain_text("每天 03:00")
        expect(recalibrate).to_contain_text("时区")
        expect(page.locator("#runs tbody tr").first).to_be_visible()
        screenshot(page, "jobs-zh-CN-1440")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "jobs-zh-CN-390")
    finally:
        context.close()
