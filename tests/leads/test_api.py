"""The seed's flows through the HTTP API, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import make_group, make_user
from tests.leads.helpers import client_headers, group_figures, incoming, report_accounts


async def test_account_create_status_and_delete_move_the_right_counters(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, remark="Tokyo")
    response = await report_accounts(
        harness,
        group,
        {"line_id": "a1", "platform_type": "line", "online_status": "online"},
        {"line_id": "a2", "platform_type": "line_business", "online_status": "offline"},
        {"line_id": "a3", "platform_type": "line", "online_status": "online"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 3, "updated": 0, "unchanged": 0, "total_accounts": 3}
    figures = await group_figures(harness, admin, group["id"])
    assert (
        figures["total_accounts"],
        figures["online_accounts"],
        figures["line_accounts"],
        figures["line_business_accounts"],
    ) == (3, 2, 2, 1)

    # A status report that changes nothing moves nothing; a real change moves online by one.
    same = await harness.client.post(
        "/api/client/accounts/a1/status",
        json={"online_status": "online"},
        headers=client_headers(group),
    )
    assert same.json()["changed"] is False and same.json()["online_accounts"] == 2
    off = await harness.client.post(
        "/api/client/accounts/a1/status",
        json={"online_status": "offline"},
        headers=client_headers(group),
    )
    assert off.json() == {
        "line_id": "a1",
        "online_status": "offline",
        "changed": True,
        "online_accounts": 1,
    }

    # Changing the platform in a later report moves the platform counters.
    response = await report_accounts(
        harness, group, {"line_id": "a2", "platform_type": "line", "online_status": "online"}
    )
    assert response.json()["updated"] == 1
    figures = await group_figures(harness, admin, group["id"])
    assert (
        figures["online_accounts"],
        figures["line_accounts"],
        figures["line_business_accounts"],
    ) == (2, 3, 0)

    accounts = (
        await harness.client.get(f"/api/leads/groups/{group['id']}/accounts", headers=admin)
    ).json()["items"]
    a3 = next(a for a in accounts if a["line_id"] == "a3")
    deleted = await harness.client.delete(f"/api/leads/accounts/{a3['id']}", headers=admin)
    assert deleted.status_code == 204
    figures = await group_figures(harness, admin, group["id"])
    assert (figures["total_accounts"], figures["online_accounts"], figures["line_accounts"]) == (
        2,
        1,
        2,
    )
    again = await harness.client.delete(f"/api/leads/accounts/{a3['id']}", headers=admin)
    assert again.status_code == 404


async def test_incoming_new_and_duplicate_in_current_scope(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, dedup_scope="current")
    other = await make_group(harness, admin, dedup_scope="current")
    for g in (group, other):
        await report_accounts(harness, g, {"line_id": "acc", "online_status": "online"})

    first = await incoming(harness, group, "acc", "U1")
    assert first.status_code == 200, first.text
    assert first.json()["is_duplicate"] is False
    assert first.json()["total_incoming"] == 1 and first.json()["today_incoming"] == 1
    second = await incoming(harness, group, "acc", "U1")
    assert second.json()["is_duplicate"] is True
    assert second.json()["total_incoming"] == 2
    # Current scope: the same contact in another group is new there.
    elsewhere = await incoming(harness, other, "acc", "U1")
    assert elsewhere.json()["is_duplicate"] is False

    figures = await group_figures(harness, admin, group["id"])
    assert (
        figures["total_incoming"],
        figures["duplicate_incoming"],
        figures["today_incoming"],
    ) == (2, 1, 2)


async def test_incoming_global_scope_sees_every_group(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    current = await make_group(harness, admin, dedup_scope="current")
    global_ = await make_group(harness, admin, dedup_scope="global")
    for g in (current, global_):
        await report_accounts(harness, g, {"line_id": "acc"})
    assert (await incoming(harness, current, "acc", "U9")).json()["is_duplicate"] is False
    assert (await incoming(harness, global_, "acc", "U9")).json()["is_duplicate"] is True
    assert (await incoming(harness, global_, "acc", "U10")).json()["is_duplicate"] is False


async def test_a_retried_event_id_returns_the_first_answer_and_counts_once(
    harness: Harness,
) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    await report_accounts(harness, group, {"line_id": "acc"})
    first = await incoming(harness, group, "acc", "U1", event_id="evt-1")
    await incoming(harness, group, "acc", "U2", event_id="evt-2")
    retry = await incoming(harness, group, "acc", "U1", event_id="evt-1")
    assert retry.json() == first.json()
    figures = await group_figures(harness, admin, group["id"])
    assert figures["total_incoming"] == 2


async def test_batch_reports_answer_in_order_with_per_event_errors(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    await report_accounts(harness, group, {"line_id": "acc"})
    events = [
        {"account_line_id": "acc", "incoming_line_id": "U1", "event_id": "b1"},
        {"account_line_id": "acc", "incoming_line_id": "U1", "event_id": "b2"},
        {"account_line_id": "nope", "incoming_line_id": "U3", "event_id": "b3"},
        {"account_line_id": "acc", "incoming_line_id": "U2", "event_id": "b4"},
        {"account_line_id": "acc", "incoming_line_id": "U1", "event_id": "b1"},
    ]
    response = await harness.client.post(
        "/api/client/incoming/batch", json={"events": events}, headers=client_headers(group)
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, True, False, True, True]
    assert [r["result"]["is_duplicate"] for r in results if r["ok"]] == [False, True, False, False]
    assert [r["result"]["total_incoming"] for r in results if r["ok"]] == [1, 2, 3, 1]
    assert results[2]["error"]["code"] == "account_not_found"
    figures = await group_figures(harness, admin, group["id"])
    assert (figures["total_incoming"], figures["duplicate_incoming"]) == (3, 1)


async def test_client_authentication(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    unknown = await harness.client.post(
        "/api/client/login", headers={"X-Activation-Code": "not-a-code"}
    )
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "unknown_activation_code"
    ok = await harness.client.post("/api/client/login", headers=client_headers(group))
    assert ok.status_code == 200 and ok.json()["group_id"] == group["id"]
    fetched = await group_figures(harness, admin, group["id"])
    assert fetched["last_login_at"] is not None

    await harness.client.patch(
        f"/api/leads/groups/{group['id']}", json={"is_active": False}, headers=admin
    )
    inactive = await harness.client.post("/api/client/login", headers=client_headers(group))
    assert inactive.status_code == 403
    blocked = await incoming(harness, group, "acc", "U1")
    assert blocked.status_code == 403


async def test_repeated_failures_from_one_address_get_429(harness_factory, test_db) -> None:  # type: ignore[no-untyped-def]
    async with harness_factory(test_db, auth={"failed_code_limit": 3}) as h:
        codes = []
        for _ in range(5):
            r = await h.client.post("/api/client/login", headers={"X-Activation-Code": "wrong"})
            codes.append(r.status_code)
        assert codes == [401, 401, 401, 429, 429]
        assert "Retry-After" in r.headers


async def test_account_limit_rejects_the_whole_report(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin, account_limit=2)
    await report_accounts(harness, group, {"line_id": "a1"})
    over = await report_accounts(
        harness,
        group,
        {"line_id": "a1", "display_name": "renamed"},
        {"line_id": "a2"},
        {"line_id": "a3"},
    )
    assert over.status_code == 409
    assert over.json()["error"]["code"] == "account_limit_exceeded"
    assert "account_limit is 2" in over.json()["error"]["message"]
    accounts = (
        await harness.client.get(f"/api/leads/groups/{group['id']}/accounts", headers=admin)
    ).json()["items"]
    assert [(a["line_id"], a["display_name"]) for a in accounts] == [("a1", None)]


async def test_accounts_are_ordered_online_first_then_by_total(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    group = await make_group(harness, admin)
    await report_accounts(
        harness,
        group,
        {"line_id": "off-busy", "online_status": "offline"},
        {"line_id": "on-quiet", "online_status": "online"},
        {"line_id": "on-busy", "online_status": "online"},
    )
    for n in range(3):
        await incoming(harness, group, "off-busy", f"X{n}")
    for n in range(2):
        await incoming(harness, group, "on-busy", f"Y{n}")
    accounts = (
        await harness.client.get(f"/api/leads/groups/{group['id']}/accounts", headers=admin)
    ).json()["items"]
    assert [a["line_id"] for a in accounts] == ["on-busy", "on-quiet", "off-busy"]
    assert [a["total_incoming"] for a in accounts] == [2, 0, 3]
    assert [a["today_incoming"] for a in accounts] == [2, 0, 3]
