"""GET /api/jobs on SQLite, PostgreSQL and MariaDB: the page envelope, and each job's
schedule as parts a page says in words (interval, hourly, daily, weekly, or the cron
fields) with the zone it is read in; the cron expression stays for scripts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from tallyhub.core.auth import Role
from tallyhub.core.jobs.schedule import describe_cron
from tallyhub.core.runtime import Runtime
from tests.conftest import Harness
from tests.core.test_jobs import Register, register  # noqa: F401  (the fixture)
from tests.factories import make_user


async def nothing(runtime: Runtime) -> dict[str, Any]:
    return {}


async def test_each_job_says_its_schedule_in_parts(harness: Harness, register: Register) -> None:  # noqa: F811
    register("test.often", every_seconds=30)(nothing)
    register("test.nightly", cron="0 3 * * *")(nothing)
    register("test.quarter_past", cron="15 * * * *")(nothing)
    register("test.mondays", cron="30 9 * * 1")(nothing)
    register("test.odd", cron="0 3 1 * *")(nothing)
    viewer = await make_user(harness, "viewer", Role.viewer)

    answer = await harness.client.get("/api/jobs", params={"page_size": 200}, headers=viewer)
    assert answer.status_code == 200, answer.text
    jobs = {job["name"]: job for job in answer.json()["items"]}
    parts = {name: jobs[name]["schedule_parts"] for name in jobs if name.startswith("test.")}
    assert parts["test.often"] == {
        "kind": "interval", "seconds": 30, "hour": None, "minute": None, "weekdays": None,
        "fields": None,
    }  # fmt: skip
    assert (parts["test.nightly"]["kind"], parts["test.nightly"]["hour"]) == ("daily", 3)
    assert parts["test.nightly"]["minute"] == 0
    assert (parts["test.quarter_past"]["kind"], parts["test.quarter_past"]["minute"]) == (
        "hourly",
        15,
    )
    mondays = parts["test.mondays"]
    assert (mondays["kind"], mondays["weekdays"], mondays["hour"], mondays["minute"]) == (
        "weekly",
        [1],
        9,
        30,
    )
    assert parts["test.odd"]["kind"] == "cron"
    assert parts["test.odd"]["fields"] == {
        "minute": "0", "hour": "3", "day": "1", "month": "*", "weekday": "*",
    }  # fmt: skip
    # What scripts read stays as it was, and every job says the zone its hours are in.
    assert (jobs["test.nightly"]["schedule"], jobs["test.often"]["schedule"]) == (
        "0 3 * * *",
        "every 30 s",
    )
    assert {job["timezone"] for job in jobs.values()} == {harness.runtime.settings.timezone}
    assert jobs["leads.recalibrate"]["schedule_parts"]["kind"] == "daily"


@pytest.mark.parametrize(
    ("cron", "kind", "said"),
    [
        ("*/5 * * * *", "interval", {"seconds": 300}),
        ("*/7 * * * *", "cron", {}),  # :56 to :00 is 4 minutes: no period
        ("0 */2 * * *", "cron", {}),
        ("5 4 * * 0,7", "weekly", {"weekdays": [0], "hour": 4, "minute": 5}),
        ("5 4 * * 1-5", "cron", {}),
        ("5 4 * 6 *", "cron", {}),
        ("59 23 * * *", "daily", {"hour": 23, "minute": 59}),
    ],
)
def test_cron_expressions_read_as_the_plainest_kind(
    cron: str, kind: str, said: dict[str, Any]
) -> None:
    parts = describe_cron(cron)
    assert parts.kind == kind
    assert {name: getattr(parts, name) for name in said} == said
    if kind == "cron":
        assert parts.fields is not None
        assert " ".join(parts.fields.model_dump().values()) == cron


async def test_the_job_list_is_a_page(harness: Harness, register: Register) -> None:  # noqa: F811
    for name in ("test.a", "test.b", "test.c"):
        register(name, every_seconds=60)(nothing)
    viewer = await make_user(harness, "viewer", Role.viewer)
    whole = (await harness.client.get("/api/jobs", headers=viewer)).json()
    assert (whole["page"], whole["page_size"], whole["total"]) == (1, 50, len(whole["items"]))
    names = [job["name"] for job in whole["items"]]
    assert names == sorted(names) and {"test.a", "test.b", "test.c"} <= set(names)

    second = await harness.client.get(
        "/api/jobs", params={"page": 2, "page_size": 2}, headers=viewer
    )
    body = second.json()
    assert (body["page"], body["page_size"], body["total"]) == (2, 2, whole["total"])
    assert [job["name"] for job in body["items"]] == names[2:4]
    beyond = await harness.client.get("/api/jobs", params={"page": 99}, headers=viewer)
    assert (beyond.json()["items"], beyond.json()["total"]) == ([], whole["total"])
    too_big = await harness.client.get("/api/jobs", params={"page_size": 201}, headers=viewer)
    assert too_big.status_code == 422 and "page_size" in too_big.text


async def test_a_runs_duration_is_its_own_span(harness: Harness, register: Register) -> None:  # noqa: F811
    @register("test.slow", cron="0 * * * *")
    async def slow(runtime: Runtime) -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {"rows": 1}

    admin = await make_user(harness, "admin", Role.admin)
    ran = await harness.client.post("/api/jobs/test.slow/run", headers=admin)
    assert ran.status_code == 200, ran.text
    listed = await harness.client.get("/api/jobs/runs", params={"job": "test.slow"}, headers=admin)
    for run in (ran.json(), listed.json()["items"][0]):
        span = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(
            run["started_at"]
        )
        assert run["duration_ms"] >= 30
        assert abs(run["duration_ms"] - span / timedelta(milliseconds=1)) <= 1, run
