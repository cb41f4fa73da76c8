"""The DOU+ HTTP API: connecting accounts (tokens or OAuth), syncs on demand, the order,
video and account figures, and who may see and change what."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Role
from tallyhub.douplus.models import DouplusOrder, DouyinAccount
from tests.conftest import Harness, TestDatabase
from tests.douplus.helpers import Sim, douplus_overrides, expected, simulated, stored
from tests.factories import bearer, user_token


def _tokens_of(sim: Sim, sec_uid: str) -> dict[str, Any]:
    view = next(a for a in sim.world.account_views() if a["aweme_sec_uid"] == sec_uid)
    return {
        "aweme_sec_uid": sec_uid,
        "nickname": view["nickname"],
        "access_token": view["access_token"],
        "refresh_token": view["refresh_token"],
        "expires_in": view["expires_in"],
    }


async def _run_ended(h: Harness, headers: dict[str, str], run_id: int) -> dict[str, Any]:
    for _ in range(400):
        run = (await h.client.get(f"/api/jobs/runs/{run_id}", headers=headers)).json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {run}")


async def _synced(h: Harness, headers: dict[str, str]) -> None:
    """Wait for the background syncs a connection started (no account left asking)."""
    for _ in range(400):
        accounts = (await h.client.get("/api/douplus/accounts", headers=headers)).json()
        running = (await h.client.get("/api/douplus/sync/status", headers=headers)).json()
        if all(a["sync_requested"] is None for a in accounts["items"]) and not running["running"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the syncs asked for did not end")


async def _one_connected(h: Harness, sim: Sim) -> tuple[dict[str, str], str, dict[str, Any]]:
    """An admin's headers, and the simulator's one account connected by them and synced."""
    admin = bearer(await user_token(h.runtime, "admin", Role.admin))
    (uid,) = sim.sec_uids
    connected = await h.client.post(
        "/api/douplus/accounts", json=_tokens_of(sim, uid), headers=admin
    )
    assert connected.status_code == 201, connected.text
    await _synced(h, admin)
    return admin, uid, connected.json()


async def test_connecting_an_account_syncs_it_and_never_shows_its_tokens(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=2, orders=90) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            admin = bearer(await user_token(h.runtime, "admin", Role.admin))
            uid = sim.sec_uids[0]
            created = await h.client.post(
                "/api/douplus/accounts", json=_tokens_of(sim, uid), headers=admin
            )
            assert created.status_code == 201, created.text
            account = created.json()
            assert "access_token" not in created.text and "refresh_token" not in created.text
            assert account["status"] == "active" and account["sync_requested"] == "full"
            await _synced(h, admin)
            assert await stored(h, account["id"]) == expected(sim.totals(uid))

            again = await h.client.post(
                "/api/douplus/accounts", json=_tokens_of(sim, uid), headers=admin
            )
            assert again.status_code == 200 and again.json()["id"] == account["id"]

            async def raw(session: AsyncSession) -> tuple[str, str]:
                row = await session.scalar(
                    select(DouyinAccount).where(DouyinAccount.id == account["id"])
                )
                assert row is not None
                return row.access_token, row.refresh_token

            access, refresh = await h.runtime.db.run(raw, readonly=True)
            tokens = _tokens_of(sim, uid)
            assert tokens["access_token"] not in access and tokens["refresh_token"] not in refresh
            assert h.runtime.secret_box().decrypt(access) == tokens["access_token"]
            listed = await h.client.get("/api/douplus/accounts", headers=admin)
            (shown,) = listed.json()["items"]
            streams = {s["stream"] for s in shown["streams"]}
            assert {"orders_full", "stats"} <= streams
            assert "token" not in listed.text.replace("expires", "")


async def test_oauth_connects_the_account_the_signed_state_names(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=30) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            writer = bearer(await user_token(h.runtime, "op", Role.operator))
            other = bearer(await user_token(h.runtime, "op2", Role.operator))
            (uid,) = sim.sec_uids
            url = await h.client.get(
                "/api/douplus/oauth/authorize-url", params={"aweme_sec_uid": uid}, headers=writer
            )
            assert url.status_code == 200
            state = url.json()["state"]
            assert f"state={state}" in url.json()["url"] and "app_id=test-app" in url.json()["url"]

            code = sim.world.issue_auth_code(uid)
            stolen = await h.client.post(
                "/api/douplus/oauth/callback",
                json={"auth_code": code, "state": state},
                headers=other,
            )
            assert stolen.status_code == 400 and stolen.json()["error"]["code"] == "invalid_state"
            done = await h.client.post(
                "/api/douplus/oauth/callback",
                json={"auth_code": code, "state": state},
                headers=writer,
            )
            assert done.status_code == 201, done.text
            assert done.json()["aweme_sec_uid"] == uid
            reused = await h.client.post(
                "/api/douplus/oauth/callback",
                json={"auth_code": code, "state": state},
                headers=writer,
            )
            assert reused.status_code == 502 and "auth_code" in reused.json()["error"]["message"]
            forged = await h.client.post(
                "/api/douplus/oauth/callback",
                json={"auth_code": "x", "state": state[:-2] + "xx"},
                headers=writer,
            )
            assert forged.status_code == 400
            await _synced(h, writer)


async def test_operators_see_and_change_only_their_own_accounts(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=2, orders=20) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            alice = bearer(await user_token(h.runtime, "alice", Role.operator))
            bob = bearer(await user_token(h.runtime, "bob", Role.operator))
            viewer = bearer(await user_token(h.runtime, "viewer", Role.viewer))
            a, b = sim.sec_uids
            mine = (
                await h.client.post("/api/douplus/accounts", json=_tokens_of(sim, a), headers=alice)
            ).json()
            theirs = (
                await h.client.post("/api/douplus/accounts", json=_tokens_of(sim, b), headers=bob)
            ).json()
            await _synced(h, alice)
            await _synced(h, bob)
            listed = (await h.client.get("/api/douplus/accounts", headers=alice)).json()
            assert [x["id"] for x in listed["items"]] == [mine["id"]]
            assert (
                await h.client.get(f"/api/douplus/accounts/{theirs['id']}", headers=alice)
            ).status_code == 404
            assert (
                await h.client.delete(f"/api/douplus/accounts/{theirs['id']}", headers=alice)
            ).status_code == 404
            taken = await h.client.post(
                "/api/douplus/accounts", json=_tokens_of(sim, b), headers=alice
            )
            assert taken.status_code == 409
            orders = (await h.client.get("/api/douplus/orders?page_size=200", headers=alice)).json()
            assert orders["total"] == 20 and {o["account_id"] for o in orders["items"]} == {
                mine["id"]
            }
            videos = (await h.client.get("/api/douplus/videos", headers=alice)).json()
            assert {v["account_id"] for v in videos["items"]} == {mine["id"]}
            assert (
                await h.client.post("/api/douplus/sync", json={}, headers=viewer)
            ).status_code == 403
            assert (await h.client.get("/api/douplus/orders", headers=viewer)).json()["total"] == 40

            gone = await h.client.delete(f"/api/douplus/accounts/{mine['id']}", headers=alice)
            assert gone.status_code == 204

            async def left(session: AsyncSession) -> int:
                rows = await session.scalars(
                    select(DouplusOrder.id).where(DouplusOrder.account_id == mine["id"])
                )
                return len(list(rows))

            assert await h.runtime.db.run(left, readonly=True) == 0


async def test_the_sync_button_runs_a_sync_and_the_figures_follow(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=60) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            admin, uid, account = await _one_connected(h, sim)
            sim.clock.advance(2 * 3600)
            sim.world.add_orders(uid, 3)
            started = await h.client.post(
                "/api/douplus/sync",
                json={"account_id": account["id"], "mode": "incremental"},
                headers=admin,
            )
            assert started.status_code == 202, started.text
            body = started.json()
            assert body["account_ids"] == [account["id"]] and body["run_id"]
            run = await _run_ended(h, admin, body["run_id"])
            assert run["status"] == "succeeded", run
            assert run["counts"]["by_account"][str(account["id"])]["inserted"] == 3
            assert await stored(h, account["id"]) == expected(sim.totals(uid))
            missing = await h.client.post(
                "/api/douplus/sync", json={"account_id": 999}, headers=admin
            )
            assert missing.status_code == 404


async def test_orders_show_their_own_figures_and_videos_their_sum(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    with simulated(accounts=1, orders=60) as sim:
        async with harness_factory(test_db, **douplus_overrides(sim)) as h:
            admin, uid, account = await _one_connected(h, sim)
            videos = (
                await h.client.get("/api/douplus/videos?sort=total_play", headers=admin)
            ).json()
            plays = [v["total_play"] for v in videos["items"]]
            assert plays == sorted(plays, reverse=True)
            video = next(v for v in videos["items"] if v["order_count"] >= 3)
            orders = (
                await h.client.get(f"/api/douplus/orders?item_id={video['item_id']}", headers=admin)
            ).json()["items"]
            assert len(orders) == video["order_count"]
            own = [o["total_play"] for o in orders]
            assert len(set(own)) == len(own), "each order shows its own plays, not its video's"
            assert sum(own) == video["total_play"]
            assert sum(Decimal(o["stat_cost"]) for o in orders) == Decimal(video["total_cost"])

            detail = (
                await h.client.get(f"/api/douplus/orders/{orders[0]['order_id']}", headers=admin)
            ).json()
            assert detail["windows"][-1]["total_play"] == orders[0]["total_play"]
            windows = (
                await h.client.get(f"/api/douplus/videos/{video['item_id']}/windows", headers=admin)
            ).json()
            assert windows[-1]["total_play"] == video["total_play"]
            assert (await h.client.get("/api/douplus/orders/123", headers=admin)).status_code == 404

            totals = sim.totals(uid)
            stats = (
                await h.client.get(
                    f"/api/douplus/accounts/{account['id']}/stats?period=all", headers=admin
                )
            ).json()
            assert (stats["order_count"], stats["stat_cost"], stats["total_play"]) == (
                totals["order_count"],
                totals["stat_cost"],
                totals["total_play"],
            )
            week = (
                await h.client.get(
                    f"/api/douplus/accounts/{account['id']}/stats?period=7d", headers=admin
                )
            ).json()
            since = sim.totals(uid, created_since=_date(week["start"]))
            assert (week["order_count"], week["stat_cost"]) == (
                since["order_count"],
                since["stat_cost"],
            )
            bad = await h.client.get(
                f"/api/douplus/accounts/{account['id']}/stats?period=week", headers=admin
            )
            assert bad.status_code == 422


def _date(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)
