"""Recalibration runs (core/recalibration.py) as each role reads them: a run covers every
tenant's counters, so an operator, who sees only what they own, gets when it ran only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tallyhub.core.auth import Role
from tallyhub.core.recalibration import RecalibrationRun, drift
from tests.conftest import Harness
from tests.factories import make_user


@pytest.mark.parametrize("domain", ["leads", "clicks"])
async def test_operators_see_when_runs_ran_but_not_other_tenants_counts(
    harness: Harness, domain: str
) -> None:
    started = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)

    async def record(session: Any) -> int:
        run = RecalibrationRun(
            domain=domain,
            started_at=started,
            finished_at=started + timedelta(seconds=4),
            checked={"campaigns": 40, "summaries": 9000},
            drift_count=1,
            drifts=[drift("campaign", 17, "clicked_count", 999, 5)],
        )
        session.add(run)
        await session.flush()
        return run.id

    run_id = await harness.runtime.db.run(record)
    seen = {}
    for role in (Role.admin, Role.viewer, Role.operator):
        headers = await make_user(harness, role.value, role)
        response = await harness.client.get(f"/api/{domain}/recalibrations", headers=headers)
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        assert (item["id"], item["domain"]) == (run_id, domain)
        assert datetime.fromisoformat(item["started_at"]) == started
        seen[role] = (item["checked"], item["drift_count"], item["drifts"])
    full = (
        {"campaigns": 40, "summaries": 9000},
        1,
        [
            {
                "entity": "campaign",
                "entity_id": "17",
                "field": "clicked_count",
                "stored": 999,
                "actual": 5,
            }
        ],
    )
    assert seen == {Role.admin: full, Role.viewer: full, Role.operator: (None, None, None)}
