"""DOU+ sync against the simulator over HTTP, on SQLite, PostgreSQL and MariaDB: what is
stored equals the simulator's truth, a repeated sync writes nothing, tokens are refreshed
or the account set aside, bursts are waited out, and a walk that cannot reach the
upstream's end stores nothing as complete."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.jobs.registry import JobFailed
from tallyhub.douplus import service
from tallyhub.douplus.models import (
    DouplusAccountDaily,
    DouplusOrder,
    DouplusOrderStats,
    DouplusSyncState,
    DouplusVideoStatsAgg,
    DouyinAccount,
)
from tests.conftest import TestDatabase
from tests.douplus.helpers import (
    Sim,
    connect,
    connect_all,
    douplus_overrides,
    expected,
    owner,
    simulated,
    stored,
    sync_context,
)


async def _full(h: Any, sim: Sim) -> dict[str, Any]:
    async with sync_context(h, sim) as ctx:
        orders = await service.sync_orders_of_all(ctx, "full")
        stats = await service.sync_stats_of_all(ctx)
        videos = await service.aggregate_videos(ctx.db, ctx.clock())
    return {"orders": orders, "stats": stats, "videos": videos}


async def test_full_then_incremental_sync_match_the_upstream_exactly(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=2, orders=150) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            ids = await connect_all(h, sim, await owner(h))
            ran = await _full(h, sim)
            assert ran["orders"]["ok"] == 2 and ran["stats"]["ok"] == 2
            for uid, account_id in ids.items():
                assert await stored(h, account_id) == expected(sim.totals(uid))

            # An hour later: figures have grown and one account placed new orders.
            sim.clock.advance(3600)
            first = sim.sec_uids[0]
            sim.world.add_orders(first, 7)
            async with sync_context(h, sim) as ctx:
                incremental = await service.sync_orders_of_all(ctx, "incremental")
                await service.sync_stats_of_all(ctx)
            assert incremental["by_account"][str(ids[first])]["inserted"] == 7
            for uid, account_id in ids.items():
                assert await stored(h, account_id) == expected(sim.totals(uid))


async def _snapshot(h: Any) -> dict[str, Any]:
    async def read(session: AsyncSession) -> dict[str, Any]:
        tables = (DouplusOrder, DouplusOrderStats, DouplusVideoStatsAgg, DouplusAccountDaily)
        snapshot: dict[str, Any] = {}
        for model in tables:
            rows = (await session.execute(select(model.__table__))).all()
            snapshot[model.__tablename__] = sorted(tuple(map(str, row)) for row in rows)
        return snapshot

    return await h.runtime.db.run(read, readonly=True)


async def test_a_second_sync_at_the_same_instant_changes_no_row(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=2, orders=120) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            await connect_all(h, sim, await owner(h))
            await _full(h, sim)
            before = await _snapshot(h)
            again = await _full(h, sim)
            async with sync_context(h, sim) as ctx:
                incremental = await service.sync_orders_of_all(ctx, "incremental")
            assert await _snapshot(h) == before
    for run in (again["orders"], incremental):
        assert all(a["inserted"] == a["updated"] == 0 for a in run["by_account"].values())
    assert all(a["moved"] == 0 for a in again["stats"]["by_account"].values())
    assert again["videos"] == {"videos": 0}


async def test_an_access_token_expiring_mid_sync_is_refreshed_and_the_sync_finishes(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=250) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim, page_concurrency=1)) as h:
            account_id = await connect(h, sim, await owner(h), uid)
            pages = 0

            async def expire_after_first_page(response: httpx.Response) -> None:
                nonlocal pages
                if "/order/list/" in response.url.path:
                    pages += 1
                    if pages == 1:
                        sim.world.expire_access_token(uid)

            async with sync_context(h, sim) as ctx:
                ctx.client.http.event_hooks["response"].append(expire_after_first_page)
                await service.sync_orders(ctx, account_id, "full")
                await service.sync_stats(ctx, account_id)
                assert await stored(h, account_id) == expected(sim.totals(uid))

            async def tokens(session: AsyncSession) -> tuple[str, str]:
                account = await session.get(DouyinAccount, account_id)
                assert account is not None
                box = h.runtime.secret_box()
                return box.decrypt(account.access_token), box.decrypt(account.refresh_token)

            access, refresh = await h.runtime.db.run(tokens, readonly=True)
            (view,) = sim.world.account_views()
            assert (access, refresh) == (view["access_token"], view["refresh_token"])


async def test_an_expired_refresh_token_sets_the_account_aside_and_the_others_sync(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=3, orders=60) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            ids = await connect_all(h, sim, await owner(h))
            lost = sim.sec_uids[1]
            sim.world.expire_access_token(lost)
            sim.world.expire_refresh_token(lost)
            async with sync_context(h, sim) as ctx:
                run = await service.sync_orders_of_all(ctx, "full")
                later = await service.sync_stats_of_all(ctx)

            async def status(session: AsyncSession) -> tuple[str, str | None]:
                account = await session.get(DouyinAccount, ids[lost])
                assert account is not None
                return account.status, account.status_reason

            state, reason = await h.runtime.db.run(status, readonly=True)
            for uid in sim.sec_uids:
                if uid != lost:
                    assert await stored(h, ids[uid]) == expected(sim.totals(uid))
    assert (run["ok"], run["needs_reauth"], run["failed"]) == (2, 1, 0)
    assert run["by_account"][str(ids[lost])]["status"] == "needs_reauth"
    assert state == "needs_reauth" and reason is not None and "40103" in reason
    assert later["accounts"] == 2, "an account that needs its owner is not synced"


async def test_an_account_reconnected_while_a_sync_sets_it_aside_stays_active(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    """A sync found the old tokens refused and is setting the account aside when its owner
    connects it again with new ones: the reconnect waits for it, and the account is active."""
    with simulated(accounts=1, orders=10) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            who = await owner(h)
            account_id = await connect(h, sim, who, uid)
            aside, release = asyncio.Event(), asyncio.Event()

            async def set_aside(session: AsyncSession) -> None:
                account = await session.scalar(
                    select(DouyinAccount).where(DouyinAccount.id == account_id).with_for_update()
                )
                assert account is not None
                account.status, account.status_reason = "needs_reauth", "code 40107"
                await session.flush()
                aside.set()
                await release.wait()

            setting_aside = asyncio.create_task(h.runtime.db.run(set_aside, retries=0))
            await aside.wait()
            reconnecting = asyncio.create_task(connect(h, sim, who, uid))
            await asyncio.sleep(0.3)  # the reconnect reaches the locked row meanwhile
            release.set()
            await setting_aside
            assert await reconnecting == account_id

            async def status(session: AsyncSession) -> tuple[str, str | None]:
                account = await session.get(DouyinAccount, account_id)
                assert account is not None
                return account.status, account.status_reason

            assert await h.runtime.db.run(status, readonly=True) == ("active", None)


async def test_a_burst_of_too_frequent_answers_is_waited_out(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=150) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            account_id = await connect(h, sim, await owner(h), uid)
            sim.app.state.faults.add(business_code=40100, count=4)
            sim.app.state.faults.add(status=503, count=1, retry_after=0)
            async with sync_context(h, sim) as ctx:
                outcome = await service.sync_orders(ctx, account_id, "full")
                await service.sync_stats(ctx, account_id)
            assert await stored(h, account_id) == expected(sim.totals(uid))
    assert outcome.requests == 2 + 5, "two pages, and one more request per refused one"


async def test_orders_arriving_during_a_full_walk_are_all_stored(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=250) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim, page_concurrency=1)) as h:
            account_id = await connect(h, sim, await owner(h), uid)
            totals_seen: list[int] = []

            async def new_orders_after_page_one(response: httpx.Response) -> None:
                if "/order/list/" in response.url.path:
                    await response.aread()
                    totals_seen.append(response.json()["data"]["page_info"]["total_number"])
                    if len(totals_seen) == 1:
                        sim.world.add_orders(uid, 30)

            async with sync_context(h, sim) as ctx:
                ctx.client.http.event_hooks["response"].append(new_orders_after_page_one)
                outcome = await service.sync_orders(ctx, account_id, "full")
            assert (await stored(h, account_id))["order_count"] == sim.totals(uid)["order_count"]
    assert totals_seen[0] == 250 and totals_seen[-1] == 280
    assert outcome.fetched == outcome.inserted == 280


async def test_the_safety_cap_stores_nothing_and_does_not_advance_the_sync_state(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=250) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim, max_pages=2)) as h:
            account_id = await connect(h, sim, await owner(h), uid)
            async with sync_context(h, sim) as ctx:
                with pytest.raises(JobFailed) as failed:
                    await service.sync_orders_of_all(ctx, "full")

            async def state(session: AsyncSession) -> Any:
                return await session.get(DouplusSyncState, (account_id, "orders_full"))

            row = await h.runtime.db.run(state, readonly=True)
            assert (await stored(h, account_id))["order_count"] == 0
    outcome = failed.value.counts["by_account"][str(account_id)]
    assert outcome["status"] == "failed" and "IncompleteSync" in outcome["error"]
    assert "safety cap" in outcome["error"]
    assert row.last_success_at is None and "IncompleteSync" in row.last_error


async def test_money_is_stored_to_the_fen_and_shown_as_decimal_strings(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=80) as sim:
        (uid,) = sim.sec_uids
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            admin = await owner(h)
            await connect(h, sim, admin, uid)
            await _full(h, sim)
            page = await h.runtime.db.run(
                lambda s: service.list_orders(
                    s,
                    admin,
                    _params(200),
                    account_id=None,
                    status=None,
                    item_id=None,
                    sort="-stat_cost",
                ),
                readonly=True,
            )
    upstream = {o.order_id: o for o in sim.world.account(uid).by_created}
    now = sim.clock.now().timestamp()
    assert len(page.items) == 80
    for order in page.items:
        truth = upstream[order.order_id]
        assert order.budget * 100 == truth.budget
        assert order.stat_cost * 100 == truth.figures(now).cost
        shown = order.model_dump(mode="json")
        assert isinstance(shown["stat_cost"], str) and shown["stat_cost"].count(".") == 1
        assert len(shown["budget"].split(".")[1]) == 2


def _params(size: int) -> Any:
    from tallyhub.core.pagination import PageParams

    return PageParams(page=1, page_size=size)
