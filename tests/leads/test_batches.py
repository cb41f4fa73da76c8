"""A group-commit batch of incoming leads from several groups at once."""

from __future__ import annotations

from tallyhub.core.auth import Role
from tallyhub.leads import schemas, service
from tests.conftest import Harness
from tests.factories import make_group, make_user
from tests.leads.helpers import incoming


async def test_a_batch_over_two_groups_counts_each_groups_new_contact_once(
    harness: Harness,
) -> None:
    """A contact already in one group's pool arrives for another group in the same batch
    as a new contact of the first: both are new. (MariaDB reads its inserts back by every
    group × every line of the batch, which meets the first group's older row.)"""
    auth = await make_user(harness, "admin", Role.admin)
    one = await make_group(harness, auth, remark="one", accounts=["acc-1"])
    two = await make_group(harness, auth, remark="two", accounts=["acc-2"])
    assert (await incoming(harness, one, "acc-1", "U-shared")).json()["is_duplicate"] is False

    events = [
        service.make_event(
            two["activation_code"],
            schemas.IncomingReport(
                account_line_id="acc-2", incoming_line_id="U-shared", event_id="e-two"
            ),
        ),
        service.make_event(
            one["activation_code"],
            schemas.IncomingReport(
                account_line_id="acc-1", incoming_line_id="U-new", event_id="e-one"
            ),
        ),
    ]
    runtime = harness.runtime
    results = await runtime.db.run(lambda s: service.apply_incoming(s, runtime.hub, events))
    assert [(r.event_id, r.is_duplicate) for r in results] == [
        ("e-two", False),
        ("e-one", False),
    ]
