"""Breakdown deltas and their fold, on SQLite, PostgreSQL and MariaDB: click batches insert
deltas while several folds run at once, and every click ends up counted exactly once, in
the rows or in a delta still to fold; the read sums both, before and after the fold job."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from tallyhub.clicks.models import Campaign, CampaignBreakdownDelta, CampaignDailyBreakdown
from tallyhub.clicks.service import ClickEvent, KnownRows, apply_clicks, classify
from tallyhub.clicks.service.breakdowns import (
    BreakdownKey,
    dimension_sums,
    fold_breakdowns,
    fold_deltas,
)
from tallyhub.core.auth import Role
from tallyhub.core.db import Database
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tests.clicks.helpers import LINE_PREVIEW, PERSON, click
from tests.conftest import TestDatabase
from tests.factories import make_campaign, make_user

DAY = date(2026, 12, 6)
AGENTS = (
    PERSON,
    LINE_PREVIEW,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0",
    "curl/8.5.0",
)
REFERRERS = (None, "line.me", "www.google.com")
WRITERS, BATCHES, CLICKS = 6, 12, 8


@pytest.fixture
async def db(test_db: TestDatabase) -> AsyncIterator[Database]:
    database = Database(test_db.url, pool_size=12, max_overflow=4)
    try:
        yield database
    finally:
        await database.dispose()


async def _campaigns(db: Database, n: int) -> list[int]:
    async with db.transaction() as session:
        result = await session.execute(
            insert(Campaign).returning(Campaign.id),
            [
                {"name": f"fold {i}", "allowed_hosts": ["example.com"], "timezone": "UTC"}
                for i in range(n)
            ],
        )
        return sorted(int(cid) for cid in result.scalars())


def _events(writer: int, batch: int, campaigns: list[int]) -> list[ClickEvent]:
    at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    rng = random.Random(writer * 1000 + batch)
    return [
        ClickEvent(
            event_id=uuid.uuid4().hex,
            campaign_id=rng.choice(campaigns),
            line_id=None,
            source_campaign_id=0,
            interaction_type="image_click",
            target="https://example.com/x",
            tags=(),
            triggered_at=at,
            user_agent=rng.choice(AGENTS),
            timezone="UTC",
            referrer=rng.choice(REFERRERS),
            filter_bots=True,
        )
        for _ in range(CLICKS)
    ]


def _expected(events: list[ClickEvent]) -> Counter[BreakdownKey]:
    expected: Counter[BreakdownKey] = Counter()
    for e in events:
        a = classify(e.user_agent)
        kind = (a.device, a.os, a.browser, e.referrer or "direct", a.bot_name or "")
        expected[e.campaign_id, DAY, not a.is_bot, *kind] += 1
    return expected


async def _rows(db: Database) -> Counter[BreakdownKey]:
    B = CampaignDailyBreakdown
    async with db.transaction(readonly=True) as session:
        rows = await session.execute(
            select(
                B.campaign_id,
                B.business_date,
                B.counted,
                B.device,
                B.os_family,
                B.browser_family,
                B.referrer_host,
                B.bot_name,
                B.clicks,
            )
        )
        return Counter({(int(r[0]), r[1], bool(r[2]), *r[3:8]): int(r[8]) for r in rows if r[8]})


async def test_batches_and_racing_folds_count_every_click_once(db: Database) -> None:
    campaigns = await _campaigns(db, 3)
    written: list[ClickEvent] = []
    deltas = 0  # one per campaign (and day) of each batch
    writing = True

    async def writer(n: int) -> None:
        nonlocal deltas
        known = KnownRows()
        for b in range(BATCHES):
            events = _events(n, b, campaigns)
            async with db.transaction() as session:
                await apply_clicks(session, events, known=known, may_be_recorded=lambda e: False)
            written.extend(events)
            deltas += len({e.campaign_id for e in events})

    async def folder() -> int:
        folded = 0
        while writing:
            # A few at a time, so that the folds meet each other and the batches often.
            folded += await db.run(lambda session: fold_deltas(session, limit=3))
            await asyncio.sleep(0)
        return folded

    folders = [asyncio.create_task(folder()) for _ in range(3)]
    try:
        await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(WRITERS))), 120)
    finally:
        writing = False
    folded_meanwhile = sum(await asyncio.gather(*folders))
    expected = _expected(written)
    assert sum(expected.values()) == WRITERS * BATCHES * CLICKS

    # Before the last fold, a read adds the rows and the deltas left.
    people = sum(n for key, n in expected.items() if key[0] == campaigns[0] and key[2])
    async with db.transaction(readonly=True) as session:
        values, days = await dimension_sums(session, campaigns[0], "device", DAY, DAY)
    assert sum(values.values()) == days[DAY] == people

    left = (await fold_breakdowns(db))["deltas"]
    assert folded_meanwhile > 0 and folded_meanwhile + left == deltas
    assert await _rows(db) == expected
    async with db.transaction(readonly=True) as session:
        assert await session.scalar(select(func.count()).select_from(CampaignBreakdownDelta)) == 0


async def test_the_fold_job_folds_what_the_tracked_clicks_left_and_the_read_stays_equal(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    # No fold of the serving process's own in the way: the job folds.
    async with harness_factory(test_db, clicks={"breakdown_fold_seconds": 3600}) as h:
        admin = await make_user(h, "admin", Role.admin)
        cid = (await make_campaign(h, admin))["id"]
        for uid, agent in [("U1", PERSON), ("U2", PERSON), ("U3", LINE_PREVIEW)]:
            assert (await click(h, cid=cid, uid=uid, user_agent=agent)).status_code == 302
        path = f"/api/clicks/campaigns/{cid}/breakdown"
        before = [
            (await h.client.get(path, params={"dimension": d}, headers=admin)).json()
            for d in ("device", "bot")
        ]
        assert before[0]["clicks"] == 2 and before[1]["values"]["items"][0]["key"] == "LINE"

        run_id = await JobRunner(h.runtime).run("clicks.fold_breakdowns")
        async with h.runtime.db.transaction(readonly=True) as session:
            run = await session.get(JobRun, run_id)
            left = await session.scalar(select(func.count()).select_from(CampaignBreakdownDelta))
        assert run is not None and run.status == "succeeded", run and run.error
        assert run.counts is not None and run.counts["deltas"] >= 1 and left == 0
        after = [
            (await h.client.get(path, params={"dimension": d}, headers=admin)).json()
            for d in ("device", "bot")
        ]
        assert after == before


async def test_a_fold_inside_a_longer_transaction_leaves_its_plan_settings_behind(
    db: Database,
) -> None:
    """A recalibration folds its campaigns' deltas in its own transaction and goes on:
    the settings the fold plans with on PostgreSQL must not stay for what follows."""
    campaigns = await _campaigns(db, 1)
    async with db.transaction() as session:
        await apply_clicks(
            session, _events(0, 0, campaigns), known=KnownRows(), may_be_recorded=lambda e: False
        )
    async with db.transaction() as session:
        assert await fold_deltas(session, campaigns) == 1
        if db.dialect == "postgresql":
            settings = await session.execute(
                text("SELECT current_setting('enable_sort'), current_setting('enable_seqscan')")
            )
            assert tuple(settings.one()) == ("on", "on")
    assert sum((await _rows(db)).values()) == CLICKS


async def test_a_fold_ends_while_batches_keep_coming(db: Database) -> None:
    """A turn folds what was committed when it began: under steady load it must not
    chase the deltas inserted meanwhile without end."""
    campaigns = await _campaigns(db, 2)
    writing = True
    batches = 0
    going = asyncio.Event()

    async def writer() -> None:
        nonlocal batches
        known = KnownRows()
        while writing:
            async with db.transaction() as session:
                await apply_clicks(
                    session,
                    _events(batches, 1, campaigns),
                    known=known,
                    may_be_recorded=lambda e: False,
                )
            batches += 1
            if batches == 5:
                going.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(going.wait(), 30)
        folded = (await asyncio.wait_for(fold_breakdowns(db), 30))["deltas"]
        still_writing = not task.done()
    finally:
        writing = False
        await task
    assert folded > 0 and still_writing
