"""Jobs (core/jobs.py): slots claimed once, run history, catch-up, and the jobs API.

Test jobs are registered under names starting with `test.` and removed from the
registry when the test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tallyhub.core import jobs as core_jobs
from tallyhub.core.auth import Role
from tallyhub.core.http import NotFound
from tallyhub.core.jobs import REGISTRY, JobFunction, JobRun, JobRunner, job
from tallyhub.core.runtime import Runtime
from tests.conftest import Harness, TestDatabase, make_settings

Register = Callable[..., Callable[[JobFunction], JobFunction]]


@pytest.fixture
def register() -> Iterator[Register]:
    """`@register("test.name", cron=...)`: a job that exists for this test only."""
    names: list[str] = []

    def decorator(name: str, **schedule: Any) -> Callable[[JobFunction], JobFunction]:
        assert name.startswith("test."), "test jobs are named test.*"
        names.append(name)
        return job(name, **schedule)

    yield decorator
    for name in names:
        REGISTRY.pop(name, None)


@asynccontextmanager
async def runtimes(
    db: TestDatabase, tmp: Path, count: int, **settings: Any
) -> AsyncIterator[list[Runtime]]:
    """`count` independent runtimes (each with its own engine) on one database, as if
    `count` processes ran schedulers side by side."""
    built = [Runtime.build(make_settings(db.url, tmp, **settings)) for _ in range(count)]
    try:
        yield built
    finally:
        for runtime in built:
            await runtime.stop()


async def runs_of(runtime: Runtime, name: str) -> list[JobRun]:
    async with runtime.db.transaction(readonly=True) as session:
        rows = await session.scalars(
            select(JobRun).where(JobRun.job_name == name).order_by(JobRun.id)
        )
        return list(rows)


# ---------------------------------------------------------------- runners


async def test_runners_racing_for_one_slot_run_the_job_once(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[int] = []

    @register("test.race", cron="*/5 * * * *")
    async def race(runtime: Runtime) -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return {"calls": len(calls)}

    slot = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    async with runtimes(test_db, tmp_path, 2) as (a, b):
        attempts = [
            JobRunner(runtime).run("test.race", scheduled_for=slot, trigger="schedule")
            for runtime in (a, b, a, b, a, b)
        ]
        run_ids = await asyncio.wait_for(asyncio.gather(*attempts), 30)
        rows = await runs_of(a, "test.race")
    claimed = [r for r in run_ids if r is not None]
    assert len(claimed) == 1, run_ids
    assert calls == [1]
    assert [(r.id, r.scheduled_for, r.status, r.trigger) for r in rows] == [
        (claimed[0], slot, "succeeded", "schedule")
    ]


async def test_two_schedulers_firing_the_same_tick_run_it_once(
    server_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    @register("test.tick", every_seconds=86_400)
    async def tick(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {}

    async with runtimes(server_db, tmp_path, 2) as (a, b):
        await asyncio.wait_for(
            asyncio.gather(
                JobRunner(a).run_scheduled("test.tick"), JobRunner(b).run_scheduled("test.tick")
            ),
            30,
        )
        rows = await runs_of(b, "test.tick")
    assert calls == ["ran"]
    assert len(rows) == 1
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert rows[0].scheduled_for == midnight
    assert rows[0].status == "succeeded"


async def test_a_failing_job_is_recorded_as_failed_with_its_error(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    @register("test.broken", cron="0 * * * *")
    async def broken(runtime: Runtime) -> dict[str, Any]:
        raise RuntimeError("upstream said no (code 7)")

    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        run_id = await JobRunner(runtime).run("test.broken")
        (row,) = await runs_of(runtime, "test.broken")
    assert row.id == run_id
    assert row.status == "failed"
    assert row.error is not None and "RuntimeError: upstream said no (code 7)" in row.error
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.duration_ms is not None and row.duration_ms >= 0
    assert row.counts is None


async def test_a_jobs_counts_and_timing_are_recorded(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    @register("test.counts", cron="0 * * * *")
    async def counted(runtime: Runtime) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"checked": 12, "fixed": 3, "note": "ok"}

    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        await JobRunner(runtime).run("test.counts")
        (row,) = await runs_of(runtime, "test.counts")
    assert row.status == "succeeded"
    assert row.counts == {"checked": 12, "fixed": 3, "note": "ok"}
    assert row.error is None
    assert row.duration_ms is not None and row.duration_ms >= 20
    assert row.trigger == "manual"


async def test_catch_up_runs_a_missed_slot_once(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @register("test.daily", every_seconds=86_400)
    async def daily(runtime: Runtime) -> dict[str, Any]:
        calls.append("daily")
        return {"n": len(calls)}

    @register("test.new_year", cron="0 0 1 1 *")
    async def new_year(runtime: Runtime) -> dict[str, Any]:
        calls.append("new_year")
        return {}

    # Only this test's jobs: the domains' real jobs are not this test's business.
    monkeypatch.setattr(
        core_jobs, "REGISTRY", {k: v for k, v in REGISTRY.items() if k.startswith("test.")}
    )
    grace = 86_400 + 3600  # the daily slot (UTC midnight) is always inside it
    async with runtimes(test_db, tmp_path, 1, job_grace_seconds=grace) as (runtime,):
        runner = JobRunner(runtime)
        now = datetime.now(UTC)
        new_year_missed = now - REGISTRY["test.new_year"].last_slot(now, runner.tz) <= timedelta(
            seconds=grace
        )
        await runner.catch_up()
        await runner.catch_up()  # a restart right after: nothing runs twice
        daily_rows = await runs_of(runtime, "test.daily")
        new_year_rows = await runs_of(runtime, "test.new_year")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert [(r.scheduled_for, r.trigger, r.status) for r in daily_rows] == [
        (midnight, "catchup", "succeeded")
    ]
    assert calls.count("daily") == 1
    # A yearly slot is older than the grace window except on the first day of the year.
    assert len(new_year_rows) == (1 if new_year_missed else 0)
    assert calls.count("new_year") == len(new_year_rows)


async def test_two_processes_catching_up_together_run_each_slot_once(
    server_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @register("test.catchup_race", every_seconds=86_400)
    async def daily(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        await asyncio.sleep(0.02)
        return {}

    monkeypatch.setattr(
        core_jobs, "REGISTRY", {k: v for k, v in REGISTRY.items() if k.startswith("test.")}
    )
    async with runtimes(server_db, tmp_path, 3, job_grace_seconds=90_000) as group:
        await asyncio.wait_for(asyncio.gather(*(JobRunner(r).catch_up() for r in group)), 30)
        rows = await runs_of(group[0], "test.catchup_race")
    assert calls == ["ran"]
    assert len(rows) == 1


async def test_running_an_unknown_job_is_not_found(test_db: TestDatabase, tmp_path: Path) -> None:
    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        with pytest.raises(NotFound, match=r"test\.nothing"):
            await JobRunner(runtime).run("test.nothing")
        assert await runs_of(runtime, "test.nothing") == []


# ---------------------------------------------------------------- API


def parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} has no offset"
    return parsed


async def test_the_job_list_shows_each_job_with_its_next_run(
    harness: Harness, register: Register
) -> None:
    @register("test.hourly", cron="0 * * * *", description="Once an hour")
    async def hourly(runtime: Runtime) -> dict[str, Any]:
        return {"rows": 5}

    viewer = await harness.user("viewer", Role.viewer)
    admin = await harness.user("admin", Role.admin)
    before = datetime.now(UTC)
    response = await harness.client.get("/api/jobs", headers=viewer)
    assert response.status_code == 200, response.text
    listed = {item["name"]: item for item in response.json()}
    assert "leads.recalibrate" in listed
    mine = listed["test.hourly"]
    assert mine["schedule"] == "0 * * * *"
    assert mine["description"] == "Once an hour"
    assert mine["last_run"] is None
    next_run = parse(mine["next_run_at"])
    assert before < next_run <= before + timedelta(hours=1)
    assert (next_run.minute, next_run.second) == (0, 0)

    ran = await harness.client.post("/api/jobs/test.hourly/run", headers=admin)
    assert ran.status_code == 200, ran.text
    listed = {i["name"]: i for i in (await harness.client.get("/api/jobs", headers=viewer)).json()}
    assert listed["test.hourly"]["last_run"]["id"] == ran.json()["id"]
    assert listed["test.hourly"]["last_run"]["counts"] == {"rows": 5}


async def test_run_history_filters_and_paginates(harness: Harness, register: Register) -> None:
    @register("test.good", cron="0 * * * *")
    async def good(runtime: Runtime) -> dict[str, Any]:
        return {"ok": 1}

    @register("test.bad", cron="0 * * * *")
    async def bad(runtime: Runtime) -> dict[str, Any]:
        raise ValueError("bad input")

    admin = await harness.user("admin", Role.admin)
    operator = await harness.user("operator", Role.operator)
    good_ids = []
    for name in ["test.good", "test.bad", "test.good", "test.bad", "test.good"]:
        response = await harness.client.post(f"/api/jobs/{name}/run", headers=admin)
        assert response.status_code == 200, response.text
        if name == "test.good":
            good_ids.append(response.json()["id"])

    everything = await harness.client.get("/api/jobs/runs", headers=operator)
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert (body["total"], body["page"], body["page_size"]) == (5, 1, 50)
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True), "newest first"

    good_page_1 = (
        await harness.client.get(
            "/api/jobs/runs", params={"job": "test.good", "page_size": 2}, headers=operator
        )
    ).json()
    good_page_2 = (
        await harness.client.get(
            "/api/jobs/runs",
            params={"job": "test.good", "page_size": 2, "page": 2},
            headers=operator,
        )
    ).json()
    assert (good_page_1["total"], good_page_1["page"], good_page_1["page_size"]) == (3, 1, 2)
    assert (good_page_2["total"], good_page_2["page"]) == (3, 2)
    paged = [i["id"] for i in good_page_1["items"] + good_page_2["items"]]
    assert paged == sorted(good_ids, reverse=True)

    failed = (
        await harness.client.get("/api/jobs/runs", params={"status": "failed"}, headers=operator)
    ).json()
    assert failed["total"] == 2
    assert {i["job_name"] for i in failed["items"]} == {"test.bad"}
    assert all("ValueError: bad input" in i["error"] for i in failed["items"])

    both = (
        await harness.client.get(
            "/api/jobs/runs", params={"job": "test.good", "status": "failed"}, headers=operator
        )
    ).json()
    assert (both["total"], both["items"]) == (0, [])

    beyond = (
        await harness.client.get(
            "/api/jobs/runs", params={"page": 9, "page_size": 2}, headers=operator
        )
    ).json()
    assert (beyond["total"], beyond["items"]) == (5, [])

    invalid = await harness.client.get(
        "/api/jobs/runs", params={"status": "exploded"}, headers=operator
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "validation_error"
    assert "status" in invalid.json()["error"]["message"]
    too_big = await harness.client.get("/api/jobs/runs", params={"page_size": 201}, headers=admin)
    assert too_big.status_code == 422
    assert "page_size" in too_big.json()["error"]["message"]


async def test_running_a_job_by_hand_is_for_admins(harness: Harness, register: Register) -> None:
    calls: list[str] = []

    @register("test.manual", cron="0 0 * * *")
    async def manual(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {"done": True}

    operator = await harness.user("operator", Role.operator)
    viewer = await harness.user("viewer", Role.viewer)
    admin = await harness.user("admin", Role.admin)

    for headers in (operator, viewer):
        refused = await harness.client.post("/api/jobs/test.manual/run", headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "admin_only"
    anonymous = await harness.client.post("/api/jobs/test.manual/run")
    assert anonymous.status_code == 401
    assert calls == []
    none_yet = (
        await harness.client.get("/api/jobs/runs", params={"job": "test.manual"}, headers=admin)
    ).json()
    assert none_yet["total"] == 0

    response = await harness.client.post("/api/jobs/test.manual/run", headers=admin)
    assert response.status_code == 200, response.text
    run = response.json()
    assert calls == ["ran"]
    assert run["job_name"] == "test.manual"
    assert run["status"] == "succeeded"
    assert run["trigger"] == "manual"
    assert run["counts"] == {"done": True}
    assert run["error"] is None
    assert parse(run["finished_at"]) >= parse(run["started_at"])
    history = (
        await harness.client.get("/api/jobs/runs", params={"job": "test.manual"}, headers=admin)
    ).json()
    assert [i["id"] for i in history["items"]] == [run["id"]]

    unknown = await harness.client.post("/api/jobs/test.no_such_job/run", headers=admin)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "job_not_found"


async def test_a_job_failing_when_run_by_hand_answers_with_the_failed_run(
    harness: Harness, register: Register
) -> None:
    @register("test.manual_broken", cron="0 0 * * *")
    async def broken(runtime: Runtime) -> dict[str, Any]:
        raise LookupError("no such upstream account")

    admin = await harness.user("admin", Role.admin)
    response = await harness.client.post("/api/jobs/test.manual_broken/run", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert "LookupError: no such upstream account" in response.json()["error"]


async def test_pruning_deletes_finished_runs_older_than_the_history(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with runtimes(test_db, tmp_path, 1, job_history_days=14) as (runtime,):
        now = datetime.now(UTC)

        async def insert(session: Any) -> None:
            for days, status in (
                (30, "succeeded"),
                (20, "failed"),
                (20, "running"),
                (1, "succeeded"),
            ):
                started = now - timedelta(days=days, minutes=len(status))  # distinct slots
                session.add(
                    JobRun(
                        job_name="test.old",
                        scheduled_for=started,
                        trigger="schedule",
                        status=status,
                        started_at=started,
                    )
                )

        await runtime.db.run(insert)
        run_id = await JobRunner(runtime).run("core.prune_job_runs")
        left = await runs_of(runtime, "test.old")
        pruning = next(r for r in await runs_of(runtime, "core.prune_job_runs") if r.id == run_id)

    assert pruning.status == "succeeded" and pruning.counts == {"deleted": 2}
    # Recent runs stay, and so does one still marked running, however old.
    assert sorted((r.status, (now - r.started_at).days) for r in left) == [
        ("running", 20),
        ("succeeded", 1),
    ]
