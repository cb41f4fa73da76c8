"""Live push of a group's own life (/ws/leads): an open list page learns that a group was
created, changed or deleted; an operator hears only of their own groups."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TestDatabase
from tests.factories import bearer, make_group
from tests.leads.test_live import (
    admin_and_two_operators,
    connect,
    messages_until,
    of,
    served_app,
    subscribed,
)


async def test_created_changed_and_deleted_groups_are_pushed_to_who_may_see_them(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with served_app(test_db, tmp_path) as served:
        runtime = served.runtime
        admin, alice, bob = await admin_and_two_operators(runtime)
        async with (
            connect(served.ws_url(admin)) as admin_ws,
            connect(served.ws_url(bob)) as bob_ws,
        ):
            await subscribed(admin_ws)
            await subscribed(bob_ws)
            group = await make_group(
                served.http, bearer(alice), remark="Night shift", timezone="Asia/Tokyo"
            )
            created = await messages_until(
                admin_ws, lambda ms: bool(of(ms, "group_stats", group["id"]))
            )
            (first,) = of(created, "group_stats", group["id"])
            assert (first["total_incoming"], first["today_incoming"]) == (0, 0)
            assert first["business_date"] == group["business_date"]
            assert "owner_id" not in first

            changed = await served.http.patch(
                f"/api/leads/groups/{group['id']}",
                json={"remark": "Day shift"},
                headers=bearer(alice),
            )
            assert changed.status_code == 200, changed.text
            renamed = await messages_until(
                admin_ws, lambda ms: bool(of(ms, "group_stats", group["id"], remark="Day shift"))
            )
            (settings,) = of(renamed, "group_stats", group["id"], remark="Day shift")
            assert (settings["timezone"], settings["total_incoming"]) == ("Asia/Tokyo", 0)

            gone = await served.http.delete(
                f"/api/leads/groups/{group['id']}", headers=bearer(alice)
            )
            assert gone.status_code == 204
            deleted = await messages_until(
                admin_ws, lambda ms: bool(of(ms, "group_deleted", group["id"]))
            )
            assert of(deleted, "group_deleted", group["id"]) == [
                {"type": "group_deleted", "group_id": group["id"]}
            ]

            # Bob's socket: his own new group is the first thing it hears, so nothing of
            # alice's three changes reached it before.
            bobs = await make_group(served.http, bearer(bob), remark="Bob's")
            heard = await messages_until(bob_ws, lambda ms: bool(ms))
            assert heard[0]["group_id"] == bobs["id"]
