"""Syncing call-center days on the three databases against the vendor simulator over
HTTP: the caches and breakdowns equal the simulator's truth, a walk past the safety cap or
one that read fewer records leaves the old cache intact, records arriving mid-walk are all
read, and a 5xx burst is waited out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.callcenter import service
from tallyhub.callcenter.client import CallcenterClient
from tallyhub.callcenter.config import callcenter_settings
from tallyhub.callcenter.models import AgentDay, GradeStatsCache, HourDay, TaskStatsCache
from tallyhub.core.upstream import IncompleteSync, UpstreamUnavailable
from tests.callcenter.helpers import vendor, yesterday
from tests.conftest import Harness, TestDatabase

TZ = ZoneInfo("Asia/Shanghai")


@asynccontextmanager
async def context(h: Harness, url: str) -> AsyncIterator[service.SyncContext]:
    settings = callcenter_settings(h.runtime.settings)
    async with CallcenterClient(settings, base_url=url) as client:
        yield service.SyncContext(h.runtime.db, client)


async def _rows(h: Harness, day: date) -> dict[str, Any]:
    async def read(session: AsyncSession) -> dict[str, Any]:
        grade = await session.scalar(select(GradeStatsCache).where(GradeStatsCache.date == day))
        task = await session.scalar(select(TaskStatsCache).where(TaskStatsCache.date == day))
        agents = {
            a.agent_id: a
            for a in await session.scalars(select(AgentDay).where(AgentDay.date == day))
        }
        hours = {
            h.hour: h for h in await session.scalars(select(HourDay).where(HourDay.date == day))
        }
        return {"grade": grade, "task": task, "agents": agents, "hours": hours}

    return await h.runtime.db.run(read, readonly=True)


def _same_as_truth(rows: dict[str, Any], truth: dict[str, Any]) -> None:
    grade = rows["grade"]
    assert grade.total_records == truth["total_records"]
    assert grade.grades == truth["grades"]
    assert (grade.grade_9, grade.grade_1) == (
        truth["grades"].get("9", 0),
        truth["grades"].get("1", 0),
    )
    assert {a: (r.calls, r.connected, r.grade_9, r.grade_1) for a, r in rows["agents"].items()} == {
        a: (t["calls"], t["connected"], t["grade_9"], t["grade_1"])
        for a, t in truth["by_agent"].items()
    }
    assert {h: (r.calls, r.grade_9) for h, r in rows["hours"].items()} == {
        int(h): (t["calls"], t["grade_9"]) for h, t in truth["by_hour"].items() if t["calls"]
    }


async def test_a_synced_day_is_the_vendors_truth(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=2500) as v:
        async with harness_factory(test_db, **v.overrides(record_page_size=300)) as h:
            day = yesterday(v)
            async with context(h, v.url) as ctx:
                await service.sync_records(ctx, day, "t3", TZ)
                await service.sync_tasks(ctx, day, "t3")
            rows = await _rows(h, day)
        truth = v.truth(day)
    _same_as_truth(rows, truth)
    task = rows["task"]
    assert task.total_tasks == len(truth["by_task"])
    assert task.callout_number == sum(t["callout_number"] for t in truth["by_task"].values())


async def test_the_safety_cap_and_a_shorter_read_leave_the_old_cache(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=2500) as v, vendor(records_per_day=1000) as smaller:
        async with harness_factory(test_db, **v.overrides(record_page_size=300, max_pages=5)) as h:
            day = yesterday(v)
            async with context(h, v.url) as ctx:
                with pytest.raises(IncompleteSync):
                    await service.sync_records(ctx, day, "t3", TZ)
            assert (await _rows(h, day))["grade"] is None
        async with harness_factory(test_db, **v.overrides(record_page_size=1000)) as h:
            async with context(h, v.url) as ctx:
                await service.sync_records(ctx, day, "t3", TZ)
            before = (await _rows(h, day))["grade"]
            async with context(h, smaller.url) as ctx:
                with pytest.raises(service.FewerRecords):
                    await service.sync_records(ctx, day, "t3", TZ)
                kept = (await _rows(h, day))["grade"]
                replaced = await service.sync_records(ctx, day, "refresh", TZ, accept_fewer=True)
        smaller_total = smaller.truth(day)["total_records"]
    assert (kept.total_records, kept.calculated_at) == (before.total_records, before.calculated_at)
    assert replaced.total_records == smaller_total


async def test_records_arriving_mid_walk_are_all_read(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=2500) as v:
        async with harness_factory(
            test_db, **v.overrides(record_page_size=500, page_concurrency=1)
        ) as h:
            day = yesterday(v)
            pages = 0

            async def arrivals_after_page_one(response: httpx.Response) -> None:
                nonlocal pages
                if "/call-records" in response.url.path:
                    pages += 1
                    if pages == 1:
                        async with httpx.AsyncClient(base_url=v.url) as control:
                            added = {"date": str(day), "count": 700}
                            (await control.post("/__sim/arrivals", json=added)).raise_for_status()

            async with context(h, v.url) as ctx:
                ctx.client.http.event_hooks["response"].append(arrivals_after_page_one)
                row = await service.sync_records(ctx, day, "today", TZ)
            rows = await _rows(h, day)
        truth = v.truth(day)
    assert truth["total_records"] == 3200
    assert (row.total_records, row.upstream_total) == (3200, 3200)
    _same_as_truth(rows, truth)


async def test_a_burst_of_server_errors_is_waited_out(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=1500) as v:
        async with harness_factory(test_db, **v.overrides(record_page_size=500)) as h:
            day = yesterday(v)
            v.app.state.faults.add(status=503, count=3)
            async with context(h, v.url) as ctx:
                await service.sync_records(ctx, day, "t3", TZ)
            _same_as_truth(await _rows(h, day), v.truth(day))
            v.app.state.faults.add(status=500, count=50)
            async with context(h, v.url) as ctx:
                with pytest.raises(UpstreamUnavailable):
                    await service.sync_tasks(ctx, day, "t3")
