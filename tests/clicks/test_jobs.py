"""Jobs of the clicks domain: recalibration after someone tampered with the counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, update

from tallyhub.clicks.models import (
    Campaign,
    CampaignDailyStats,
    CampaignUser,
    ClickSummary,
    ClickSummaryTag,
)
from tallyhub.core.auth import Role
from tallyhub.core.columns import utcnow
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tests.clicks.helpers import campaign, click, summary_of, users
from tests.conftest import TestDatabase
from tests.factories import make_campaign, make_user


async def test_recalibration_finds_and_fixes_tampered_counters(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    assert REGISTRY["clicks.replay_spool"].every_seconds == 10
    async with harness_factory(test_db, clicks={"dedup_window_ms": 0}) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        for uid, tag in [("U1", "A"), ("U1", "B"), ("U2", "B,C"), ("U2", "A"), (None, "")]:
            assert (await click(h, cid=c["id"], uid=uid, tag=tag)).status_code == 302
        before = await users(h, admin, c["id"])
        cid = c["id"]

        async def tamper(session: Any) -> None:
            await session.execute(
                update(Campaign).where(Campaign.id == cid).values(clicked_count=999, unique_users=0)
            )
            await session.execute(
                update(ClickSummary)
                .where(ClickSummary.line_id == "U1")
                .values(total_clicks=1, last_click_tag="Z")
            )
            await session.execute(
                delete(ClickSummaryTag).where(
                    ClickSummaryTag.line_id == "U2", ClickSummaryTag.tag == "C"
                )
            )
            await session.execute(
                insert(ClickSummaryTag).values(
                    campaign_id=cid,
                    line_id="U1",
                    source_campaign_id=0,
                    tag="BOGUS",
                    first_seen_at=utcnow(),
                    position=0,
                    first_event_id="tampered",
                )
            )
            await session.execute(update(CampaignDailyStats).values(clicks=42))
            await session.execute(delete(CampaignUser).where(CampaignUser.line_id == "U2"))

        await h.runtime.db.run(tamper)

        runner = JobRunner(h.runtime)
        run_id = await runner.run("clicks.recalibrate")
        async with h.runtime.db.transaction(readonly=True) as session:
            run = await session.get(JobRun, run_id)
        assert run is not None and run.status == "succeeded", run and run.error
        assert run.counts is not None and run.counts["drifts"] > 0

        listed = await h.client.get("/api/clicks/recalibrations", headers=admin)
        drifts = {(d["entity"], d["field"]): d for d in listed.json()["items"][0]["drifts"]}
        assert drifts["campaign", "clicked_count"]["stored"] == 999
        assert drifts["campaign", "clicked_count"]["actual"] == 5
        assert drifts["campaign", "unique_users"]["actual"] == 2
        assert drifts["summary", "total_clicks"]["actual"] == 2
        assert drifts["campaign_day", "clicks"]["stored"] == 42
        assert ("summary", "tags") in drifts and ("campaign_user", "exists") in drifts

        figures = await campaign(h, admin, c["id"])
        assert (figures["clicked_count"], figures["unique_users"]) == (5, 2)
        after = await users(h, admin, c["id"])
        assert after == before
        assert summary_of(after, "U2")["last_click_tag"] == "B,C,A"
        daily = await h.client.get(f"/api/clicks/campaigns/{c['id']}/daily", headers=admin)
        assert [d["clicks"] for d in daily.json()] == [5]

        second = await h.client.post("/api/clicks/recalibrate", headers=admin)
        assert second.status_code == 200 and second.json()["drift_count"] == 0
        # The restored (campaign, user) row keeps U2 from counting as new again.
        assert (await click(h, cid=c["id"], uid="U2")).status_code == 302
        assert (await campaign(h, admin, c["id"]))["unique_users"] == 2
