"""Recalibration of a campaign with tens of thousands of summaries: no statement of it grows
with the number of summaries (a tuple IN list of 8,192 keys overflowed PostgreSQL's
expression stack, 98,304 variables pass SQLite's limit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from tallyhub.clicks.models import Campaign, CampaignUser, ClickSummary
from tallyhub.clicks.service import ClickEvent, apply_clicks, recalibrate
from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.db import Database
from tests.conftest import TestDatabase

SUMMARIES = 20_000
BATCH = 2_000  # clicks per seeding transaction (PostgreSQL binds at most 32,767 values)
STRAYS = 10_000  # (campaign, user) rows no click supports


async def _campaign(db: Database) -> int:
    async def add(session: Any) -> int:
        result = await session.execute(
            insert(Campaign).values(
                name="at scale",
                allowed_hosts=["example.com"],
                timezone="UTC",
                clicked_count=0,
                unique_users=0,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
        return int(result.inserted_primary_key[0])

    return await db.run(add)


async def _seed_clicks(db: Database, cid: int) -> None:
    """One click by each of SUMMARIES users, through the click write path; every tenth
    with tags (each tagged summary costs MariaDB one more statement)."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for first in range(0, SUMMARIES, BATCH):
        events = [
            ClickEvent(
                event_id=f"e{n:06d}",
                campaign_id=cid,
                line_id=f"U{n:06d}",
                source_campaign_id=0,
                interaction_type="image_click",
                target="https://example.com/",
                tags=(f"T{n % 7}", "all") if n % 10 == 0 else (),
                triggered_at=start + timedelta(seconds=n),
                timezone="UTC",
            )
            for n in range(first, first + BATCH)
        ]

        async def write(session: Any, events: list[ClickEvent] = events) -> list[Any]:
            return await apply_clicks(session, events)

        assert set(await db.run(write)) == {"recorded"}


async def _tamper(db: Database, cid: int) -> None:
    """Strays the logs do not support, and one summary's tag string."""
    at = datetime(2026, 3, 2, tzinfo=UTC)

    async def work(session: Any) -> None:
        conn = await session.connection()
        rows = [
            {
                "campaign_id": cid,
                "line_id": f"STRAY{n:06d}",
                "first_event_id": "tampered",
                "first_clicked_at": at,
            }
            for n in range(STRAYS)
        ]
        await write_rows(conn, RowSet(CampaignUser, rows))
        await session.execute(
            update(ClickSummary).where(ClickSummary.line_id == "U000120").values(last_click_tag="Z")
        )

    await db.run(work)


async def test_twenty_thousand_summaries_of_one_campaign_recalibrate(
    test_db: TestDatabase,
) -> None:
    db = Database(test_db.url)
    try:
        cid = await _campaign(db)
        await _seed_clicks(db, cid)
        await _tamper(db, cid)

        run = await recalibrate(db, chunk_size=20)
        assert run.checked == {"campaigns": 1, "summaries": SUMMARIES}
        found = {(d["entity"], d["field"]) for d in run.drifts}
        assert run.drift_count == STRAYS + 1
        assert found == {("campaign_user", "exists"), ("summary", "last_click_tag")}

        again = await recalibrate(db, chunk_size=20)
        assert (again.checked, again.drift_count) == ({"campaigns": 1, "summaries": SUMMARIES}, 0)
        async with db.transaction(readonly=True) as session:
            users = await session.scalar(select(func.count()).select_from(CampaignUser))
            string = await session.scalar(
                select(ClickSummary.last_click_tag).where(ClickSummary.line_id == "U000120")
            )
            counted = await session.scalar(select(Campaign.clicked_count).where(Campaign.id == cid))
        assert (users, string, counted) == (SUMMARIES, "T1,all", SUMMARIES)
    finally:
        await db.dispose()
