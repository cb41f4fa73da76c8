"""The call-center statistics API: today computed on first ask and cached, a past day
not synced is a 404 that says how to refresh, two refreshes of one day compute once, the
agent and hour figures are the vendor's truth, and the export holds the API's numbers."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from tallyhub.core.auth import Role
from tests.callcenter.helpers import vendor, yesterday
from tests.conftest import TestDatabase
from tests.factories import bearer, user_token


def _today() -> date:
    from tallyhub.core.columns import utcnow

    return utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date()


async def test_today_is_computed_once_then_served_from_the_cache(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=2000) as v:
        async with harness_factory(test_db, **v.overrides()) as h:
            admin = bearer(await user_token(h.runtime, "admin", Role.admin))
            today = str(_today())
            first = (
                await h.client.get(f"/api/stats/grade-stats?date={today}", headers=admin)
            ).json()
            asked = v.requests()
            second = (
                await h.client.get(f"/api/stats/grade-stats?date={today}", headers=admin)
            ).json()
            assert v.requests() == asked, "the second answer came from the cache"
            past = str(_today() - timedelta(days=5))
            missing = await h.client.get(f"/api/stats/grade-stats?date={past}", headers=admin)
            tasks = (
                await h.client.get(f"/api/stats/task-stats?date={today}", headers=admin)
            ).json()
        truth_today = v.truth(_today())
    assert first["success"] and not first["data"]["from_cache"]
    assert second["data"]["from_cache"] and second["data"]["grade_9"] == first["data"]["grade_9"]
    assert second["data"]["total_records"] == truth_today["total_records"]
    assert missing.status_code == 404
    assert missing.json()["success"] is False and "refresh" in missing.json()["error"]
    assert tasks["success"] and tasks["data"]["from_cache"] is False


async def test_two_refreshes_of_one_day_compute_once(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=3000) as v:
        async with harness_factory(test_db, **v.overrides(record_page_size=500)) as h:
            admin = bearer(await user_token(h.runtime, "admin", Role.admin))
            day = str(yesterday(v))
            v.app.state.faults.add(slow_ms=100, slow_count=1)  # the first page takes a while
            before = v.requests()
            answers = await asyncio.gather(
                *(
                    h.client.post(
                        "/api/stats/grade-stats/refresh", json={"date": day}, headers=admin
                    )
                    for _ in range(2)
                )
            )
            pages = v.requests() - before
            shown = (await h.client.get(f"/api/stats/grade-stats?date={day}", headers=admin)).json()
    bodies = [a.json()["data"] for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert pages == 6, "one walk of 3,000 records in pages of 500"
    assert bodies[0] == bodies[1]
    assert shown["data"]["calculated_at"] == bodies[0]["calculated_at"]


async def test_agents_hours_and_the_export_hold_the_vendors_numbers(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with vendor(records_per_day=2000) as v:
        async with harness_factory(test_db, **v.overrides()) as h:
            admin = bearer(await user_token(h.runtime, "admin", Role.admin))
            day = yesterday(v)
            for kind in ("grade-stats", "task-stats"):
                done = await h.client.post(
                    f"/api/stats/{kind}/refresh", json={"date": str(day)}, headers=admin
                )
                assert done.status_code == 200, done.text
            span = f"from={day}&to={day}"
            agents = (
                await h.client.get(
                    f"/api/stats/agents?{span}&sort=grade_9&limit=500", headers=admin
                )
            ).json()
            hours = (await h.client.get(f"/api/stats/hours?{span}", headers=admin)).json()
            daily = (await h.client.get(f"/api/stats/daily?{span}", headers=admin)).json()
            as_csv = await h.client.get(f"/api/stats/export?{span}&format=csv", headers=admin)
            as_xlsx = await h.client.get(f"/api/stats/export?{span}&format=xlsx", headers=admin)
            backwards = await h.client.get(
                f"/api/stats/daily?from={day}&to={day - timedelta(days=1)}", headers=admin
            )
        truth = v.truth(day)
    assert {a["agent_id"]: a["grade_9"] for a in agents["data"]} == {
        a: t["grade_9"] for a, t in truth["by_agent"].items()
    }
    ranks = [a["grade_9"] for a in agents["data"]]
    assert ranks == sorted(ranks, reverse=True)
    assert {x["hour"]: x["calls"] for x in hours["data"]} == {
        int(k): t["calls"] for k, t in truth["by_hour"].items()
    } | {x["hour"]: 0 for x in hours["data"] if str(x["hour"]) not in truth["by_hour"]}
    (row,) = daily["data"]
    (csv_row,) = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (
        int(csv_row["grade_9"]) == row["grade_9"]
        and int(csv_row["callout_number"]) == row["callout_number"]
    )
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    header, values = (list(r) for r in sheet.iter_rows(values_only=True))
    cells = dict(zip(header, values, strict=True))
    assert (cells["grade_9"], cells["total_records"]) == (row["grade_9"], row["total_records"])
    assert cells["date"] == str(day)
    assert backwards.status_code == 422
