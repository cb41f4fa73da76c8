"""GET /api/leads/groups/{id}/accounts answers the page envelope like every list, on
SQLite, PostgreSQL and MariaDB: online accounts first, then by total incoming."""

from __future__ import annotations

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import make_account, make_group, make_user
from tests.leads.helpers import incoming


async def test_accounts_come_a_page_at_a_time(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    await make_account(harness, group, "quiet", online_status="offline")
    await make_account(harness, group, "busy")
    await make_account(harness, group, "calm")
    for contact in ("c1", "c2"):
        assert (await incoming(harness, group, "busy", contact)).status_code == 200
    path = f"/api/leads/groups/{group['id']}/accounts"

    first = await harness.client.get(path, params={"page_size": 2}, headers=admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 2)
    assert [a["line_id"] for a in body["items"]] == ["busy", "calm"]
    assert body["items"][0]["total_incoming"] == 2

    second = await harness.client.get(path, params={"page": 2, "page_size": 2}, headers=admin)
    assert [a["line_id"] for a in second.json()["items"]] == ["quiet"]
    assert second.json()["items"][0]["online_status"] == "offline"

    everything = (await harness.client.get(path, headers=admin)).json()
    assert (everything["total"], everything["page_size"], len(everything["items"])) == (3, 50, 3)
    beyond = await harness.client.get(path, params={"page": 3, "page_size": 2}, headers=admin)
    assert beyond.json()["items"] == [] and beyond.json()["total"] == 3
