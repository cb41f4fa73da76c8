"""A usual click batch on PostgreSQL is one statement (clicks/service/one_statement.py);
elsewhere, or when the batch needs reads first, it is the general transaction. Both must
leave exactly the same rows, on every dialect."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select

from tallyhub.clicks.models import (
    Campaign,
    CampaignBreakdownDelta,
    CampaignDailyBreakdown,
    CampaignUser,
    ClickSummary,
    ClickSummaryTag,
    InteractionLog,
    Message,
)
from tallyhub.clicks.service import (
    RECORDED,
    ClickEvent,
    KnownRows,
    apply_clicks,
    fold_breakdowns,
)
from tallyhub.core.db import Database
from tests.clicks.helpers import LINE_PREVIEW
from tests.conftest import TestDatabase

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(test_db: TestDatabase) -> AsyncIterator[Database]:
    database = Database(test_db.url)
    try:
        yield database
    finally:
        await database.dispose()


async def _campaign(db: Database) -> int:
    async with db.transaction() as session:
        result = await session.execute(
            insert(Campaign).returning(Campaign.id),
            [{"name": "one statement", "allowed_hosts": ["example.com"], "timezone": "UTC"}],
        )
        return int(result.scalar_one())


def _click(cid: int, uid: str | None, at: datetime, *tags: str) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4().hex,
        campaign_id=cid,
        line_id=uid,
        source_campaign_id=5,
        interaction_type="image_click",
        target="https://example.com/x",
        tags=tags,
        triggered_at=at,
        user_agent="test",
        timezone="UTC",
        filter_bots=True,  # the campaign's settings, as the edge passes them
    )


class Statements:
    """Counts the statements an engine sends (BEGIN and COMMIT are not statements here)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


async def _apply(db: Database, known: KnownRows, *events: ClickEvent) -> list[Any]:
    async with db.transaction() as session:
        return await apply_clicks(session, events, known=known, may_be_recorded=lambda e: False)


async def _summary(db: Database, cid: int, uid: str) -> tuple[int, str | None, list[str]]:
    async with db.engine.connect() as conn:
        total, string = (
            await conn.execute(
                select(ClickSummary.total_clicks, ClickSummary.last_click_tag).where(
                    ClickSummary.campaign_id == cid, ClickSummary.line_id == uid
                )
            )
        ).one()
        tags = (
            await conn.execute(
                select(ClickSummaryTag.tag)
                .where(ClickSummaryTag.campaign_id == cid, ClickSummaryTag.line_id == uid)
                .order_by(
                    ClickSummaryTag.first_seen_at, ClickSummaryTag.position, ClickSummaryTag.id
                )
            )
        ).scalars()
        return int(total), string, list(tags)


async def test_a_usual_batch_is_one_statement_on_postgresql_with_the_same_rows(
    db: Database,
) -> None:
    cid = await _campaign(db)
    known = KnownRows()
    # The first batch meets its members: the general path, everywhere.
    assert await _apply(db, known, _click(cid, "U1", T0, "A")) == [RECORDED]

    statements = Statements(db)
    batch = [
        _click(cid, "U1", T0 + timedelta(seconds=1), "B", "A"),
        _click(cid, "U1", T0 + timedelta(seconds=2), "C"),
        _click(cid, None, T0 + timedelta(seconds=3)),
        _click(cid, "U1", T0 + timedelta(seconds=4)),
        # LINE fetching the link of a user never seen: a bot's click, kept out of the
        # counts, needs no member, so it does not keep the batch from one statement.
        replace(_click(cid, "U_NEW", T0 + timedelta(seconds=5), "Z"), user_agent=LINE_PREVIEW),
    ]
    assert await _apply(db, known, *batch) == [RECORDED] * 5
    if db.dialect == "postgresql":
        assert statements.count == 1
    else:
        assert statements.count > 1

    assert await _summary(db, cid, "U1") == (4, "A,B,C", ["A", "B", "C"])
    async with db.engine.connect() as conn:
        counters = (
            await conn.execute(
                select(Campaign.clicked_count, Campaign.unique_users, Campaign.bot_clicks).where(
                    Campaign.id == cid
                )
            )
        ).one()
        assert tuple(counters) == (5, 1, 1)
        logs = await conn.scalar(select(func.count()).select_from(InteractionLog))
        messages = await conn.scalar(select(func.count()).select_from(Message))
        users = await conn.scalar(select(func.count()).select_from(CampaignUser))
        assert (logs, messages, users) == (6, 4, 1)
        # A delta per batch (one campaign, one day each), folded into the rows.
        deltas = await conn.scalar(select(func.count()).select_from(CampaignBreakdownDelta))
        assert deltas == 2
    assert await fold_breakdowns(db) == {"deltas": 2}
    async with db.engine.connect() as conn:
        B = CampaignDailyBreakdown
        breakdowns = (
            await conn.execute(
                select(B.counted, B.bot_name, B.clicks).order_by(B.counted, B.bot_name)
            )
        ).all()
        assert [tuple(row) for row in breakdowns] == [(False, "LINE", 1), (True, "", 5)]
        rows = (
            await conn.execute(
                select(
                    Message.campaign_id,
                    Message.direction,
                    Message.message_type,
                    Message.content,
                    Message.event_id,
                    Message.created_at,
                ).order_by(Message.id)
            )
        ).all()
    # The first batch took the general path, the second one statement: the same messages.
    assert [tuple(r)[:4] for r in rows] == [
        (
            cid,
            "incoming",
            "text",
            {
                "event": "campaign_click",
                "campaign_id": cid,
                "source_campaign_id": 5,
                "target": "https://example.com/x",
                "tags": tags,
            },
        )
        for tags in (["A"], ["B", "A"], ["C"], [])
    ]
    assert [(r.event_id, r.created_at) for r in rows[1:]] == [
        (e.event_id, e.triggered_at) for e in (batch[0], batch[1], batch[3])
    ]


async def test_a_new_user_of_a_known_member_moves_unique_users_once(db: Database) -> None:
    first, second = await _campaign(db), await _campaign(db)
    known = KnownRows()
    await _apply(db, known, _click(first, "U2", T0))
    # U2 is a known member now; for the second campaign it is a new user, twice in a batch.
    await _apply(
        db,
        known,
        _click(second, "U2", T0 + timedelta(seconds=1), "X"),
        _click(second, "U2", T0 + timedelta(seconds=2), "Y"),
        _click(first, "U2", T0 + timedelta(seconds=3)),
    )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Campaign.id, Campaign.clicked_count, Campaign.unique_users).order_by(
                    Campaign.id
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [(first, 2, 1), (second, 2, 1)]
    assert await _summary(db, second, "U2") == (2, "X,Y", ["X", "Y"])


async def test_a_tag_first_seen_before_the_newest_stored_one_is_sorted_in(db: Database) -> None:
    """A slower batch (another process, an older click) brings a tag first seen before
    the summary's newest tag: the string is rebuilt in first-seen order. On PostgreSQL the
    one statement refuses it (nothing written) and the batch takes the general path."""
    cid = await _campaign(db)
    known = KnownRows()
    await _apply(db, known, _click(cid, "U3", T0 + timedelta(seconds=10), "LATE"))
    await _apply(db, known, _click(cid, "U3", T0 + timedelta(seconds=5), "EARLY", "LATE"))
    assert await _summary(db, cid, "U3") == (2, "EARLY,LATE", ["EARLY", "LATE"])
    async with db.engine.connect() as conn:
        logs = await conn.scalar(select(func.count()).select_from(InteractionLog))
        counter = await conn.scalar(select(Campaign.clicked_count).where(Campaign.id == cid))
    assert (logs, counter) == (2, 2)


async def test_the_rows_every_batch_updates_have_room_for_hot_updates(db: Database) -> None:
    """On PostgreSQL the summaries, campaigns and days leave a fifth of each page free, so
    that a row's new version can stay on its page without new index entries."""
    async with db.engine.connect() as conn:
        if db.dialect != "postgresql":
            # Nothing to set elsewhere; the migration must still have run through.
            assert await conn.scalar(select(func.count()).select_from(ClickSummary)) == 0
            return
        options = dict(
            (
                await conn.exec_driver_sql(
                    "SELECT relname, reloptions FROM pg_class WHERE relname IN "
                    "('click_summaries', 'campaigns', 'campaign_daily_stats')"
                )
            ).all()
        )
    assert options == {
        "click_summaries": ["fillfactor=80"],
        "campaigns": ["fillfactor=80"],
        "campaign_daily_stats": ["fillfactor=80"],
    }
