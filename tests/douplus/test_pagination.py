"""Page walks at every boundary: whatever the number of orders and the page size, the
real client walking the simulator's list over HTTP to its end signal reads every order
once, and the count of pages is the upstream's own."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tallyhub.core.upstream import IncompleteSync, PageResult, paginate
from tallyhub.douplus.client import DouplusClient, Order
from tallyhub.douplus.config import DouplusSettings
from tests.douplus.helpers import FAST, simulated


async def _walk(
    url: str, token: str, sec_uid: str, page_size: int, cap: int
) -> list[PageResult[Order]]:
    settings = DouplusSettings(base_url=url, upstream={**FAST, "max_pages": cap})
    async with DouplusClient(settings) as client:

        async def fetch(page: int) -> PageResult[Order]:
            return await client.list_orders(
                token, sec_uid, page=page, page_size=page_size, ascending=True
            )

        return [p async for p in paginate(fetch, max_pages=cap, concurrency=3)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=st.integers(min_value=1, max_value=230), page_size=st.integers(1, 100))
@example(orders=100, page_size=100)
@example(orders=101, page_size=100)
@example(orders=200, page_size=100)
@example(orders=99, page_size=33)
@example(orders=1, page_size=1)
def test_every_order_is_read_once_at_any_total_and_page_size(orders: int, page_size: int) -> None:
    with simulated(accounts=1, orders=orders) as sim:
        (view,) = sim.world.account_views()
        pages_needed = -(-orders // page_size)
        if pages_needed > 50:  # past the cap: refused, never cut short
            try:
                asyncio.run(
                    _walk(sim.url, view["access_token"], view["aweme_sec_uid"], page_size, 50)
                )
            except IncompleteSync as refused:
                assert "safety cap" in str(refused)
                assert sim.app.state.requests.snapshot()["total"] == 1
                return
            raise AssertionError("a walk past the cap must raise IncompleteSync")
        pages = asyncio.run(
            _walk(sim.url, view["access_token"], view["aweme_sec_uid"], page_size, 50)
        )
    ids = [o.order_id for p in pages for o in p.items]
    assert len(ids) == len(set(ids)) == orders
    assert len(pages) == pages_needed == pages[0].total_pages
    assert all(p.total == orders for p in pages)
    assert [len(p.items) for p in pages[:-1]] == [page_size] * (pages_needed - 1)
