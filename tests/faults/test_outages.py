"""What an operator's bad day does to the counts: the database stopped mid-load, the server
killed with SIGKILL under load, the database slow. The guarantee under test: an
acknowledged click (302) or lead (200) is counted exactly once; an unanswered one at
most once. Real `tallyhub serve` processes on a private PostgreSQL cluster."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.faults.processes import (
    Acked,
    PrivateCluster,
    Serve,
    SlowProxy,
    click_load,
    lead_load,
    private_cluster,
    sign_in,
    wait_until,
)

pytestmark = pytest.mark.faults

# Spooled clicks are replayed by each serve process within a few seconds.
FAST_REPLAY = {"TALLYHUB_CLICKS__SPOOL__ROTATE_SECONDS": "0.5"}


@pytest.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    async with private_cluster() as started:
        yield started


async def _campaign(base_url: str, *, warm: bool = True) -> int:
    """A campaign; with `warm`, one click first, so the process has its settings cached."""
    auth = await sign_in(base_url)
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post(
            "/api/clicks/campaigns",
            # The loads click through httpx, an HTTP tool: a bot, counted all the same here.
            json={"name": "outage", "allowed_hosts": ["shop.example.com"], "filter_bots": False},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        campaign_id: int = response.json()["id"]
        if not warm:
            return campaign_id
        params: dict[str, Any] = {"cid": campaign_id, "uid": "warm", "type": "button_url"}
        params["to"] = "https://shop.example.com/"
        assert (await client.get("/__track", params=params)).status_code == 302
        return campaign_id


async def _group(base_url: str) -> tuple[str, str]:
    """A lead group with one account: its activation code and the account's LINE id."""
    auth = await sign_in(base_url)
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("/api/leads/groups", json={"remark": "kill"}, headers=auth)
        assert response.status_code == 201, response.text
        code: str = response.json()["activation_code"]
        response = await client.put(
            "/api/client/accounts",
            json={"accounts": [{"line_id": "acc", "online_status": "online"}]},
            headers={"X-Activation-Code": code},
        )
        assert response.status_code == 200, response.text
        return code, "acc"


async def _click_rows(cluster: PrivateCluster, campaign_id: int) -> tuple[int, Counter[str]]:
    """The campaign's counter, and how many interaction logs each user id has."""
    conn = await asyncpg.connect(cluster.dsn)
    try:
        counter = await conn.fetchval(
            "SELECT clicked_count FROM campaigns WHERE id = $1", campaign_id
        )
        logs = await conn.fetch(
            "SELECT line_id FROM component_interaction_logs WHERE campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
    return int(counter), Counter(r["line_id"] for r in logs)


async def _lead_rows(cluster: PrivateCluster) -> tuple[int, Counter[str]]:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        total = await conn.fetchval("SELECT coalesce(sum(total_incoming), 0) FROM group_stats")
        logs = await conn.fetch("SELECT event_id FROM incoming_logs")
    finally:
        await conn.close()
    return int(total), Counter(r["event_id"] for r in logs)


async def _all_counted_once(
    cluster: PrivateCluster, campaign_id: int, acked: Acked, *, seconds: float = 60
) -> None:
    """Every acknowledged click is logged once (replays included), the counter equals the
    logs, and no click is counted twice; waits for the spool's replay."""
    expected = set(acked.clicks)

    async def replayed() -> bool:
        _, logs = await _click_rows(cluster, campaign_id)
        return expected <= set(logs)

    await wait_until(replayed, "every acknowledged click counted", seconds)
    counter, logs = await _click_rows(cluster, campaign_id)
    assert max(logs.values()) == 1, [uid for uid, n in logs.items() if n > 1][:5]
    assert counter == sum(logs.values())
    # What was not acknowledged was counted at most once: nothing but attempts is there.
    assert len(logs) - len(expected) <= acked.unanswered


async def test_clicks_while_the_database_stops_and_starts_are_counted_once(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    serve = Serve(cluster.url, tmp_path / "var", FAST_REPLAY)
    await serve.start()
    try:
        campaign_id = await _campaign(serve.base_url)
        acked = Acked(clicks=["warm"])  # the campaign's first click
        load = asyncio.create_task(click_load(serve.base_url, campaign_id, acked))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.stop)
        during = len(acked.clicks)
        await asyncio.sleep(2.0)
        assert len(acked.clicks) > during, "no click was answered while the database was down"
        await asyncio.to_thread(cluster.start)
        await asyncio.sleep(1.0)
        acked.stop.set()
        await load
        assert acked.refused == {}, acked.refused
        await _all_counted_once(cluster, campaign_id, acked)
    finally:
        await serve.stop()


async def test_a_server_killed_under_load_loses_no_acknowledged_click_or_lead(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    serve = Serve(cluster.url, var, FAST_REPLAY)
    await serve.start()
    campaign_id = await _campaign(serve.base_url)
    code, account = await _group(serve.base_url)
    acked = Acked(clicks=["warm"])  # the campaign's first click
    loads = [
        asyncio.create_task(click_load(serve.base_url, campaign_id, acked)),
        asyncio.create_task(lead_load(serve.base_url, code, account, acked)),
    ]
    await asyncio.sleep(1.5)
    serve.kill()
    await asyncio.sleep(0.3)
    acked.stop.set()
    await asyncio.gather(*loads)
    assert acked.clicks and acked.leads, "the load was answered before the kill"

    again = Serve(cluster.url, var, FAST_REPLAY, port=serve.port)  # the same spool
    await again.start()
    try:
        await _all_counted_once(cluster, campaign_id, acked)
        total, logs = await _lead_rows(cluster)
        assert set(acked.leads) <= set(logs), set(acked.leads) - set(logs)
        assert max(logs.values()) == 1
        assert total == sum(logs.values())
    finally:
        await again.stop()


async def test_redirects_stay_within_the_commit_timeout_while_the_database_is_slow(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    """The database answers, but 3 s late: past the 2 s commit timeout. Every redirect is
    still answered (the client gives up at 2.5 s), and every click counted once after."""
    async with SlowProxy(cluster.port) as proxy:
        url = cluster.url.replace(f":{cluster.port}/", f":{proxy.port}/")
        settings = FAST_REPLAY | {
            "TALLYHUB_CLICKS__COMMIT_TIMEOUT_MS": "2000",
            "TALLYHUB_CLICKS__CAMPAIGN_CACHE_SECONDS": "1",  # refreshed while slow
        }
        serve = Serve(url, tmp_path / "var", settings)
        await serve.start()
        try:
            campaign_id = await _campaign(serve.base_url)
            acked = Acked(clicks=["warm"])  # the campaign's first click
            proxy.delay = 3.0
            await asyncio.sleep(1.5)  # the cached settings expire: the next click refreshes

            load = click_load(serve.base_url, campaign_id, acked, clients=4, answer_within=2.5)
            clicking = asyncio.create_task(load)
            await asyncio.sleep(4.0)
            acked.stop.set()
            await clicking
            proxy.delay = 0.0
            assert acked.unanswered == 0, f"{acked.unanswered} redirects took over 2.5 s"
            assert acked.refused == {}, acked.refused
            assert acked.clicks
            await _all_counted_once(cluster, campaign_id, acked)
        finally:
            await serve.stop()
