"""Operations endpoints (/healthz, /readyz, /metrics) and the shape of validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tallyhub.app import create_app
from tallyhub.core.auth import Role
from tests.conftest import Harness, make_settings
from tests.factories import make_group, make_user
from tests.leads.helpers import incoming


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await h.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_healthz_and_readyz_answer_200(harness: Harness) -> None:
    health = await harness.client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await harness.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_readyz_is_503_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    # Nothing listens on port 1.
    app = create_app(
        make_settings("postgresql+asyncpg://tallyhub@127.0.0.1:1/tallyhub", tmp_path),
        scheduler=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "database_unreachable"
    assert ready.json()["error"]["message"]


async def test_metrics_show_batch_commits_and_the_connection_pool(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, accounts=["acc"])
    before = await scrape(harness)
    commits = ("batch_commit_seconds_count", (("writer", "leads.incoming"),))
    for n in range(3):
        assert (await incoming(harness, group, "acc", f"U{n}")).status_code == 200
    after = await scrape(harness)

    text = (await harness.client.get("/metrics")).text
    assert "batch_commit_seconds" in text
    assert "db_pool_connections" in text
    # Each acknowledged lead was committed in some batch that the histogram counted.
    assert 1 <= after[commits] - before.get(commits, 0) <= 3
    pool = {
        labels: value for (name, labels), value in after.items() if name == "db_pool_connections"
    }
    assert {dict(labels)["state"] for labels in pool} >= {"size", "checked_out", "overflow"}
    state = {dict(labels)["state"]: value for labels, value in pool.items()}
    if harness.db.is_server:
        assert state["size"] == 20  # the pool size the test settings ask for
    assert 0 <= state["checked_out"] <= state["size"] + max(state["overflow"], 0)
    # A count of connections is never negative (SQLAlchemy's raw QueuePool.overflow() is
    # "opened minus pool_size", -20 on an idle pool of 20, so it must not be exported as is).
    assert state["overflow"] >= 0, f"db_pool_connections{{state=overflow}} = {state['overflow']}"


# ---------------------------------------------------------------- validation errors


def assert_validation_error(response: httpx.Response, *fields: str) -> dict[str, Any]:
    assert response.status_code == 422, (response.request.url, response.text)
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    for field in fields:
        assert field in error["message"], (field, error["message"])
    return error  # type: ignore[no-any-return]


async def test_bad_bodies_are_422_naming_the_field(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    bad_groups = [
        ({"reset_time": "25:00"}, "reset_time"),
        ({"reset_time": "6am"}, "reset_time"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"account_limit": -1}, "account_limit"),
        ({"dedup_scope": "everyone"}, "dedup_scope"),
        ({"is_active": "sometimes"}, "is_active"),
        ({"remark": "x" * 201}, "remark"),
    ]
    for body, field in bad_groups:
        response = await harness.client.post("/api/leads/groups", json=body, headers=admin)
        assert_validation_error(response, field)
    listing = await harness.client.get("/api/leads/groups", headers=admin)
    assert listing.json()["total"] == 0, "a refused body created a group"

    group = await make_group(harness, admin)
    patched = await harness.client.patch(
        f"/api/leads/groups/{group['id']}", json={"reset_time": "24:00"}, headers=admin
    )
    assert_validation_error(patched, "reset_time")

    code = {"X-Activation-Code": group["activation_code"]}
    accounts = await harness.client.put(
        "/api/client/accounts",
        json={"accounts": [{"line_id": "a1", "online_status": "sleeping"}]},
        headers=code,
    )
    assert_validation_error(accounts, "accounts.0.online_status")
    lead = await harness.client.post(
        "/api/client/incoming", json={"account_line_id": "a1"}, headers=code
    )
    assert_validation_error(lead, "incoming_line_id")
    naive = await harness.client.post(
        "/api/client/incoming",
        json={
            "account_line_id": "a1",
            "incoming_line_id": "U1",
            "incoming_time": "not a time",
        },
        headers=code,
    )
    assert_validation_error(naive, "incoming_time")
    broken_json = await harness.client.post(
        "/api/leads/groups",
        content=b'{"remark": ',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_validation_error(broken_json)


async def test_bad_query_and_path_parameters_are_422_naming_them(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    cases = [
        ("/api/leads/groups", {"page": 0}, "page"),
        ("/api/leads/groups", {"page_size": 201}, "page_size"),
        ("/api/leads/groups", {"is_active": "maybe"}, "is_active"),
        ("/api/leads/groups/not-a-number", {}, "group_id"),
        (f"/api/leads/groups/{group['id']}/daily", {"from": "yesterday"}, "from"),
        (f"/api/leads/groups/{group['id']}/daily", {"to": "2024-02-30"}, "to"),
        (f"/api/leads/groups/{group['id']}/incoming", {"page_size": 0}, "page_size"),
    ]
    for path, params, field in cases:
        response = await harness.client.get(path, params=params, headers=admin)
        assert_validation_error(response, field)


async def test_a_reset_time_with_a_trailing_newline_is_refused(harness: Harness) -> None:
    """'06:00\\n' passes a `^…$` regex (`$` matches before a final newline); it must be a
    422 like any other malformed reset time, not a 201 that stores it (SQLite) or a 500
    from a value too long for the column (PostgreSQL, MariaDB)."""
    admin = await make_user(harness, "admin", Role.admin)
    response = await harness.client.post(
        "/api/leads/groups", json={"reset_time": "06:00\n"}, headers=admin
    )
    assert_validation_error(response, "reset_time")
