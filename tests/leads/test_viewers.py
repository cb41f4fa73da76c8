"""What a read-only user (viewer) gets of the groups, on SQLite, PostgreSQL and MariaDB:
every figure, but never a group's activation code, which would let them post leads as its
desktop client."""

from __future__ import annotations

from tallyhub.core.auth import Role
from tests.conftest import Harness
from tests.factories import make_group, make_user
from tests.leads.helpers import incoming


async def test_a_viewer_sees_the_figures_but_no_activation_code(harness: Harness) -> None:
    alice = await make_user(harness, "alice", Role.operator)
    viewer = await make_user(harness, "viewer", Role.viewer)
    group = await make_group(harness, alice, remark="Night shift", accounts=["acc"])
    assert (await incoming(harness, group, "acc", "c1")).status_code == 200
    path = f"/api/leads/groups/{group['id']}"

    seen = (await harness.client.get(path, headers=viewer)).json()
    assert (seen["remark"], seen["total_incoming"], seen["activation_code"]) == (
        "Night shift",
        1,
        None,
    )
    (listed,) = (await harness.client.get("/api/leads/groups", headers=viewer)).json()["items"]
    assert (listed["id"], listed["activation_code"]) == (group["id"], None)

    # Its owner still reads the code, to hand it to the desktop client.
    own = (await harness.client.get(path, headers=alice)).json()
    assert own["activation_code"] == group["activation_code"]
