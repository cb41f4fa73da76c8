"""The redirect never fails because of the database: clicks go to the durable spool while
it is unreachable and are replayed, exactly once, when it is back.

The outage is real: the app reaches PostgreSQL/MariaDB through a small TCP proxy started
by the test, and stopping the proxy cuts every connection and refuses new ones.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tallyhub.clicks import wiring
from tallyhub.clicks.models import Campaign
from tallyhub.clicks.service import ClickEvent
from tallyhub.core.auth import Role
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tests.clicks.helpers import TcpProxy, campaign, click, metric, replay_spool, summary_of, users
from tests.conftest import TestDatabase
from tests.factories import make_campaign, make_user

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def link_params(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.json()["url"]).query).items()}


async def test_database_outage_spools_clicks_and_replay_counts_them_exactly(
    server_db: TestDatabase, harness_factory: Any
) -> None:
    url = make_url(server_db.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or DEFAULT_PORTS[server_db.name])
    await proxy.start()
    proxied = TestDatabase(
        server_db.name,
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
    )
    settings = {
        "clicks": {"dedup_window_ms": 0, "commit_timeout_ms": 1500},
        "pool": {"size": 4, "max_overflow": 4, "timeout_seconds": 2},
    }
    async with harness_factory(proxied, **settings) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        quiet = await make_campaign(h, admin, "never clicked before the outage")
        signed = link_params(
            await h.client.post(
                "/api/clicks/links",
                json={"cid": quiet["id"], "to": "https://elsewhere.example/", "tag": "S"},
                headers=admin,
            )
        )
        for n in range(5):
            assert (await click(h, cid=c["id"], uid=f"U{n % 2}", tag="A")).status_code == 302

        await proxy.stop()
        spooled_before = metric("track_spooled_total")
        for n in range(20):
            response = await click(h, cid=c["id"], uid=f"U{n % 4}", tag=f"T{n % 3}")
            assert response.status_code == 302, response.text
        # A campaign this process has not cached cannot be checked: only a signed link passes.
        unsigned = await click(h, cid=quiet["id"], to="https://elsewhere.example/")
        assert unsigned.status_code == 503
        assert (await click(h, **signed, uid="U0")).status_code == 302
        spool = wiring.parts(h.runtime).spool
        assert spool.stats().events == 21
        assert metric("track_spooled_total") - spooled_before == 21

        await proxy.start()  # the database is back, on the same address
        runner = JobRunner(h.runtime)
        run_id = await runner.run("clicks.replay_spool")
        async with h.runtime.db.transaction(readonly=True) as session:
            run = await session.get(JobRun, run_id)
        assert run is not None and run.status == "succeeded", run and run.error
        assert run.counts is not None and run.counts["recorded"] == 21
        assert spool.stats().events == 0

        figures = await campaign(h, admin, c["id"])
        assert (figures["clicked_count"], figures["unique_users"]) == (25, 4)
        summaries = await users(h, admin, c["id"])
        assert sorted(s["total_clicks"] for s in summaries) == [5, 5, 7, 8]
        assert summary_of(summaries, "U1")["tags"] == ["A", "T1", "T2", "T0"]  # first seen
        assert (await campaign(h, admin, quiet["id"]))["clicked_count"] == 1

        # Replaying again changes nothing; new clicks go straight to the database again.
        again = await runner.run("clicks.replay_spool")
        async with h.runtime.db.transaction(readonly=True) as session:
            rerun = await session.get(JobRun, again)
        assert rerun is not None and rerun.counts is not None and rerun.counts["events"] == 0
        assert (await click(h, cid=c["id"], uid="U9")).status_code == 302
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 26
        assert spool.stats().events == 0
    await proxy.stop()


async def test_a_click_whose_batch_is_late_is_spooled_and_counted_once(
    server_db: TestDatabase, harness_factory: Any
) -> None:
    """Another transaction holds the campaign's row: the click's batch waits for it, the
    click's commit timeout answers the redirect from the spool, and when the row is free
    both the batch and the replay of the spooled copy end in one counted click."""
    settings = {"clicks": {"dedup_window_ms": 0, "commit_timeout_ms": 300}}
    async with harness_factory(server_db, **settings) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        assert (await click(h, cid=c["id"], uid="U1", tag="A")).status_code == 302
        spool = wiring.parts(h.runtime).spool
        timeouts = metric("track_errors_total", operation="write", error_type="TimeoutError")

        async with h.runtime.db.engine.connect() as holder:
            await holder.execute(
                select(Campaign.id).where(Campaign.id == c["id"]).with_for_update()
            )
            started = asyncio.get_running_loop().time()
            response = await click(h, cid=c["id"], uid="U2", tag="B")
            waited = asyncio.get_running_loop().time() - started
            assert response.status_code == 302, response.text
            assert waited < 5, waited  # the timeout answered, not the lock
            assert spool.stats().events == 1
            assert wiring.parts(h.runtime).recorder.uncertain  # may be recorded twice
            await holder.rollback()  # the row is free: the late batch commits

        assert metric("track_errors_total", operation="write", error_type="TimeoutError") == (
            timeouts + 1
        )
        for _ in range(100):
            if (await campaign(h, admin, c["id"]))["clicked_count"] == 2:
                break
            await asyncio.sleep(0.05)
        run = await JobRunner(h.runtime).run("clicks.replay_spool")
        async with h.runtime.db.transaction(readonly=True) as session:
            replay = await session.get(JobRun, run)
        assert replay is not None and replay.counts is not None
        counts = replay.counts
        assert (counts["events"], counts["recorded"], counts["already_recorded"]) == (1, 0, 1)
        assert spool.stats().events == 0
        figures = await campaign(h, admin, c["id"])
        assert (figures["clicked_count"], figures["unique_users"]) == (2, 2)
        assert summary_of(await users(h, admin, c["id"]), "U2")["total_clicks"] == 1


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_replay_is_idempotent_and_keeps_what_it_cannot_apply(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        spool = wiring.parts(h.runtime).spool
        at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

        def event(event_id: str, campaign_id: int = c["id"]) -> ClickEvent:
            return ClickEvent(
                event_id, campaign_id, "U1", 0, "image_click", "https://x/", ("A",), at
            )

        for e in (event("e1"), event("e2"), event("e1"), event("lost", 999_999), event("e3")):
            await spool.append(e)
        await spool.rotate()
        torn = spool.directory / "clicks-1-1.ready"
        torn.write_bytes(json.dumps(event("e4").to_record()).encode() + b'\n{"event_id": "e5", "ci')

        result = await replay_spool(h)
        assert result == {
            "segments": 2,
            "events": 7,
            "recorded": 4,
            "already_recorded": 1,
            "rejected": 2,
        }
        figures = await campaign(h, admin, c["id"])
        assert figures["clicked_count"] == 4
        daily = await h.client.get(
            f"/api/clicks/campaigns/{c['id']}/daily",
            params={"from": "2026-01-01", "to": "2026-01-03"},
            headers=admin,
        )
        assert daily.json() == [
            {"business_date": "2026-01-01", "clicks": 0},
            {"business_date": "2026-01-02", "clicks": 4},
            {"business_date": "2026-01-03", "clicks": 0},
        ]
        rejected = list((spool.directory / "rejected").iterdir())
        lines = rejected[0].read_bytes().splitlines()
        assert len(lines) == 2 and b"lost" in b"".join(lines)

        await spool.append(event("e2"))  # spooled twice, e.g. after a commit timeout
        assert (await replay_spool(h))["already_recorded"] == 1
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 4
