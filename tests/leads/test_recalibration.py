"""Recalibration (校准) on SQLite, PostgreSQL and MariaDB: counters tampered with directly
in SQL are found, recorded drift by drift, corrected, and shown by the API."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete, insert, select, update

from tallyhub.core.auth import Role
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.leads.models import (
    GroupDailyStats,
    GroupStats,
    LineAccountDailyStats,
    LineAccountStats,
)
from tests.conftest import Harness
from tests.factories import make_account, make_group, make_user
from tests.leads.helpers import group_figures, incoming

DAY_1 = date(2026, 1, 10)
DAY_2 = date(2026, 1, 11)


def noon(day: date) -> str:
    return f"{day.isoformat()}T12:00:00+00:00"


async def seed(h: Harness) -> dict[str, Any]:
    """Two UTC groups with known counts on two past business days:

    g1/a1: U1, U2 on day 1; U1 again on day 2 (duplicate)   -> a1 3 total, 1 duplicate
    g1/a2: U3, U3 (duplicate), U4 on day 2                   -> a2 3 total, 1 duplicate
    g2/b1: U1, U5 on day 1 (current scope: U1 is new here)   -> b1 2 total, 0 duplicate
    """
    admin = await make_user(h, "admin", Role.admin)
    g1 = await make_group(h, admin, remark="one", timezone="UTC")
    g2 = await make_group(h, admin, remark="two", timezone="UTC")
    await make_account(h, g1, "a1")
    await make_account(h, g1, "a2", online_status="offline")
    await make_account(h, g2, "b1")
    for group, account, contact, day in [
        (g1, "a1", "U1", DAY_1),
        (g1, "a1", "U2", DAY_1),
        (g1, "a1", "U1", DAY_2),
        (g1, "a2", "U3", DAY_2),
        (g1, "a2", "U3", DAY_2),
        (g1, "a2", "U4", DAY_2),
        (g2, "b1", "U1", DAY_1),
        (g2, "b1", "U5", DAY_1),
    ]:
        response = await incoming(h, group, account, contact, incoming_time=noon(day))
        assert response.status_code == 200, response.text
    ids = {}
    for group in (g1, g2):
        listed = await h.client.get(f"/api/leads/groups/{group['id']}/accounts", headers=admin)
        ids.update({a["line_id"]: a["id"] for a in listed.json()["items"]})
    return {"admin": admin, "g1": g1["id"], "g2": g2["id"], **ids}


async def tamper(h: Harness, *statements: Any) -> None:
    async with h.runtime.db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)


async def recalibrate(h: Harness, auth: dict[str, str]) -> dict[str, Any]:
    response = await h.client.post("/api/leads/recalibrate", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def drift_set(run: dict[str, Any]) -> set[tuple[str, str, str, int, int]]:
    return {
        (d["entity"], d["entity_id"], d["field"], d["stored"], d["actual"]) for d in run["drifts"]
    }


async def daily(h: Harness, auth: dict[str, str], group_id: int) -> dict[str, tuple[int, int]]:
    response = await h.client.get(
        f"/api/leads/groups/{group_id}/daily",
        params={"from": "2025-12-01", "to": "2026-01-31"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    # Days without leads come back as zeros; the tests compare the days that have leads.
    return {
        r["business_date"]: (r["incoming"], r["duplicate_incoming"])
        for r in response.json()
        if r["incoming"] or r["duplicate_incoming"]
    }


async def test_recalibration_records_every_drift_and_corrects_it(harness: Harness) -> None:
    s = await seed(harness)
    admin, g1, g2, a1, a2 = s["admin"], s["g1"], s["g2"], s["a1"], s["a2"]

    untouched = await recalibrate(harness, admin)
    assert (untouched["drift_count"], untouched["drifts"]) == (0, [])

    await tamper(
        harness,
        update(GroupStats).where(GroupStats.group_id == g1).values(total_incoming=11),
        update(LineAccountStats)
        .where(LineAccountStats.line_account_id == a1)
        .values(duplicate_incoming=9),
        update(GroupDailyStats)
        .where(GroupDailyStats.group_id == g2, GroupDailyStats.business_date == DAY_1)
        .values(incoming=42),
        insert(GroupDailyStats).values(
            group_id=g1, business_date=date(2025, 12, 31), incoming=5, duplicate_incoming=0
        ),
        delete(LineAccountDailyStats).where(
            LineAccountDailyStats.line_account_id == a2,
            LineAccountDailyStats.business_date == DAY_2,
        ),
        update(GroupStats)
        .where(GroupStats.group_id == g2)
        .values(total_accounts=7, online_accounts=0),
    )
    # The tampering is what the API shows until recalibration runs.
    assert (await group_figures(harness, admin, g1))["total_incoming"] == 11
    assert (await daily(harness, admin, g2))["2026-01-10"] == (42, 0)

    run = await recalibrate(harness, admin)
    assert drift_set(run) == {
        ("group", str(g1), "total_incoming", 11, 6),
        ("group", str(g2), "total_accounts", 7, 1),
        ("group", str(g2), "online_accounts", 0, 1),
        ("line_account", str(a1), "duplicate_incoming", 9, 1),
        ("group_day", f"{g1}@2025-12-31", "incoming", 5, 0),
        ("group_day", f"{g2}@2026-01-10", "incoming", 42, 2),
        ("line_account_day", f"{a2}@2026-01-11", "incoming", 0, 3),
        ("line_account_day", f"{a2}@2026-01-11", "duplicate_incoming", 0, 1),
    }
    assert run["drift_count"] == 8 == len(run["drifts"])
    assert run["checked"] == {"groups": 2, "accounts": 3}
    assert run["domain"] == "leads"

    # Corrected: the figures are those of the log again.
    f1, f2 = await group_figures(harness, admin, g1), await group_figures(harness, admin, g2)
    assert (f1["total_incoming"], f1["duplicate_incoming"]) == (6, 2)
    assert (f2["total_accounts"], f2["online_accounts"], f2["total_incoming"]) == (1, 1, 2)
    assert (await daily(harness, admin, g2)) == {"2026-01-10": (2, 0)}
    g1_days = {d: v for d, v in (await daily(harness, admin, g1)).items() if v != (0, 0)}
    assert g1_days == {"2026-01-10": (2, 0), "2026-01-11": (4, 2)}
    listed = await harness.client.get(f"/api/leads/groups/{g1}/accounts", headers=admin)
    figures = {
        a["line_id"]: (a["total_incoming"], a["duplicate_incoming"]) for a in listed.json()["items"]
    }
    assert figures == {"a1": (3, 1), "a2": (3, 1)}
    async with harness.runtime.db.engine.connect() as conn:
        restored = (
            await conn.execute(
                select(
                    LineAccountDailyStats.group_id,
                    LineAccountDailyStats.incoming,
                    LineAccountDailyStats.duplicate_incoming,
                ).where(
                    LineAccountDailyStats.line_account_id == a2,
                    LineAccountDailyStats.business_date == DAY_2,
                )
            )
        ).all()
    assert [tuple(r) for r in restored] == [(g1, 3, 1)]

    # The run is listed, newest first, with its drifts; a second run finds nothing.
    history = await harness.client.get("/api/leads/recalibrations", headers=admin)
    assert history.status_code == 200, history.text
    body = history.json()
    assert (body["total"], body["page"], body["page_size"]) == (2, 1, 50)
    assert [item["id"] for item in body["items"]] == [run["id"], untouched["id"]]
    assert drift_set(body["items"][0]) == drift_set(run)
    assert body["items"][0]["drift_count"] == 8

    again = await recalibrate(harness, admin)
    assert (again["drift_count"], again["drifts"]) == (0, [])
    latest = (await harness.client.get("/api/leads/recalibrations", headers=admin)).json()
    assert latest["total"] == 3 and latest["items"][0]["id"] == again["id"]


async def test_a_missing_daily_row_records_only_the_fields_that_differ(harness: Harness) -> None:
    """b1 had 2 leads and no duplicate on day 1: losing its daily row is one drift
    (incoming 0 → 2), not also a 'drift' of duplicate_incoming from 0 to 0."""
    s = await seed(harness)
    admin, b1 = s["admin"], s["b1"]
    await tamper(
        harness,
        delete(LineAccountDailyStats).where(
            LineAccountDailyStats.line_account_id == b1,
            LineAccountDailyStats.business_date == DAY_1,
        ),
    )
    run = await recalibrate(harness, admin)
    assert [d for d in run["drifts"] if d["stored"] == d["actual"]] == []
    assert drift_set(run) == {("line_account_day", f"{b1}@2026-01-10", "incoming", 0, 2)}
    assert run["drift_count"] == 1
    again = await recalibrate(harness, admin)
    assert again["drift_count"] == 0


async def test_recalibration_is_for_admins(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    operator = await make_user(harness, "op", Role.operator)
    viewer = await make_user(harness, "viewer", Role.viewer)
    for who in (operator, viewer):
        response = await harness.client.post("/api/leads/recalibrate", headers=who)
        assert response.status_code == 403, response.text
    history = await harness.client.get("/api/leads/recalibrations", headers=admin)
    assert history.json()["total"] == 0


async def test_the_recalibrate_job_records_a_run_with_its_counts(harness: Harness) -> None:
    s = await seed(harness)
    admin, g2 = s["admin"], s["g2"]
    await tamper(
        harness,
        update(GroupStats).where(GroupStats.group_id == g2).values(duplicate_incoming=3),
    )

    run_id = await JobRunner(harness.runtime).run("leads.recalibrate")
    assert run_id is not None

    runs = await harness.client.get(
        "/api/jobs/runs", params={"job": "leads.recalibrate"}, headers=admin
    )
    assert runs.status_code == 200, runs.text
    body = runs.json()
    assert body["total"] == 1
    (job_run,) = body["items"]
    assert (job_run["id"], job_run["status"], job_run["error"]) == (run_id, "succeeded", None)
    assert job_run["finished_at"] is not None and job_run["duration_ms"] >= 0

    recalibrations = (await harness.client.get("/api/leads/recalibrations", headers=admin)).json()
    (recorded,) = recalibrations["items"]
    assert job_run["counts"] == {
        "recalibration_id": recorded["id"],
        "groups": 2,
        "accounts": 3,
        "drifts": 1,
    }
    assert drift_set(recorded) == {("group", str(g2), "duplicate_incoming", 3, 0)}
    assert (await group_figures(harness, admin, g2))["duplicate_incoming"] == 0
