"""Page parameters: `page` and `page_size` out of range are a 422 naming them on every
database, never a 500 from an OFFSET the database cannot take (page=2**63 was one)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tallyhub.core.auth import Role
from tallyhub.core.pagination import MAX_PAGE, PageParams
from tests.conftest import Harness
from tests.core.test_ops import assert_validation_error
from tests.factories import bearer, user_token

LISTS = [
    "/api/leads/groups",
    "/api/leads/recalibrations",
    "/api/clicks/campaigns",
    "/api/clicks/recalibrations",
    "/api/jobs/runs",
]


async def test_a_page_past_the_bound_is_422_and_the_last_one_is_empty(harness: Harness) -> None:
    admin = bearer(await user_token(harness.runtime, "admin", Role.admin))
    for path in LISTS:
        for page in (2**63, 2**64, MAX_PAGE + 1):
            response = await harness.client.get(path, params={"page": page}, headers=admin)
            assert_validation_error(response, "page")
        for page_size in (0, 201, 2**63):
            response = await harness.client.get(
                path, params={"page_size": page_size}, headers=admin
            )
            assert_validation_error(response, "page_size")
        last = await harness.client.get(
            path, params={"page": MAX_PAGE, "page_size": 200}, headers=admin
        )
        assert last.status_code == 200, (path, last.text)
        assert (last.json()["items"], last.json()["page"]) == ([], MAX_PAGE)


@pytest.mark.parametrize("fields", [{"page": 0}, {"page": MAX_PAGE + 1}, {"page_size": 201}])
def test_page_params_hold_the_same_bounds(fields: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PageParams(**fields)
    assert PageParams().offset == 0
    assert PageParams(page=MAX_PAGE, page_size=200).offset < 2**63
