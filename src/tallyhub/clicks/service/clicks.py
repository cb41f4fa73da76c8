"""The click write path: `apply_clicks` applies a whole batch in one transaction.

Per batch: replayed event ids already in the log answer "already recorded" (replay is
idempotent); each click's agent is classified (agents.py), and a bot's click is kept out
of the people's counts when its campaign filters bots: it is logged and moves only the
campaign's `bot_clicks` and its day's `bot` breakdown. For the clicks that count,
members new to this process are inserted-or-nothing first (their ids go into the
messages); then one `write_rows()` writes the (campaign, user) rows new to this process,
the summary upsert (deltas coalesced per (campaign, uid, src)), the new tags
(summaries.py), the interaction logs, the messages and the breakdown deltas (one per
campaign and day, breakdowns.py); the campaign counters, the daily rows and the new tag
strings move last, together.

On PostgreSQL each `write_rows()` is a single statement over one array per column, so a
batch costs four round trips (BEGIN, the rows, the counters, COMMIT) however many clicks,
new users and new tags it holds; elsewhere each set is an executemany. A usual batch on
PostgreSQL (fresh clicks of known members) is less still: one statement outside a
transaction, committed by PostgreSQL itself (one_statement.py). Round trips count
twice on a busy server: each one waits for a turn of the event loop that is also serving
the HTTP requests, and a row locked before one is held through it.

Lock order, the same in every transaction (batches, recalibration): members, campaign
users, summaries (then their tags), campaigns, daily rows, breakdown rows (which only a
fold and recalibration lock); keys sorted inside each. The hottest rows (a campaign and
its day) come last, so they are held for the shortest time: from the last statement to
the commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, time
from typing import Any

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tallyhub.clicks.models import Campaign, CampaignUser, InteractionLog, Member
from tallyhub.clicks.service import one_statement
from tallyhub.clicks.service.agents import Agent, classify
from tallyhub.clicks.service.batch_rows import campaign_rows, daily_rows, log_rows, message_rows
from tallyhub.clicks.service.breakdowns import delta_rows
from tallyhub.clicks.service.events import ClickEvent, FreshClick
from tallyhub.clicks.service.summaries import (
    SummaryMoves,
    TagKey,
    in_slices,
    move_summaries,
    tag_strings,
)
from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date
from tallyhub.core.db import after_commit, custom_plans
from tallyhub.core.errors import NotFound

RECORDED = "recorded"
ALREADY_RECORDED = "already_recorded"
MIDNIGHT = time(0, 0)


# What a click's User-Agent is (agents.classify), or None: classification turned off
# (TALLYHUB_CLICKS__CLASSIFY_AGENTS=false), every click counts and moves no breakdown.
Classifier = Callable[[str | None], Agent | None]


class KnownRows:
    """Rows this process has seen committed together with its own click logs: members
    (uid → id), (campaign, user) rows and summary tags. Nothing deletes such rows
    (recalibration removes only rows that no log supports), so a batch need not read them
    again. Filled only after commit; cleared when it grows past `max_entries`."""

    def __init__(self, max_entries: int = 300_000) -> None:
        self.max_entries = max_entries
        self.members: dict[str, int] = {}
        self.campaign_users: set[tuple[int, str]] = set()
        self.tags: set[TagKey] = set()

    def learn(
        self,
        members: dict[str, int],
        campaign_users: Sequence[tuple[int, str]],
        tags: Sequence[TagKey],
    ) -> None:
        size = len(self.members) + len(self.campaign_users) + len(self.tags)
        if size + len(members) + len(campaign_users) + len(tags) > self.max_entries:
            self.members.clear()
            self.campaign_users.clear()
            self.tags.clear()
        self.members.update(members)
        self.campaign_users.update(campaign_users)
        self.tags.update(tags)


# ---------------------------------------------------------------- statements, built once


# Lookups by expanding IN lists, always given `bucketed()` values: few list lengths, so
# the driver's prepared statements are reused.
_RECORDED = select(InteractionLog.event_id).where(
    InteractionLog.event_id.in_(bindparam("ids", expanding=True))
)
_SETTINGS = select(Campaign.id, Campaign.timezone, Campaign.filter_bots).where(
    Campaign.id.in_(bindparam("ids", expanding=True))
)
_MEMBERS = select(Member.line_uid, Member.id).where(
    Member.line_uid.in_(bindparam("uids", expanding=True))
)
_CAMPAIGN_USER_KEY = tuple_(CampaignUser.campaign_id, CampaignUser.line_id)
_CAMPAIGN_USER_OWNERS = select(
    CampaignUser.campaign_id, CampaignUser.line_id, CampaignUser.first_event_id
).where(_CAMPAIGN_USER_KEY.in_(bindparam("keys", expanding=True)))
_USER_KEY = ("campaign_id", "line_id")
# Dialects whose INSERT … ON CONFLICT DO NOTHING RETURNING returns exactly the rows it
# inserted (MariaDB has no such RETURNING: it reads back instead).
_RETURNS_INSERTED = ("postgresql", "sqlite")


# ---------------------------------------------------------------- the batch


async def apply_clicks(
    session: AsyncSession,
    events: Sequence[ClickEvent],
    *,
    known: KnownRows | None = None,
    may_be_recorded: Callable[[ClickEvent], bool] | None = None,
    classifier: Classifier = classify,
) -> list[str | Exception]:
    """Record a batch of clicks; one result per event: RECORDED, ALREADY_RECORDED, or the
    event's own error (an unknown campaign).

    Only events for which `may_be_recorded` is true (all, by default: replays) are looked
    up by event id first; a fresh click from the edge cannot be in the log yet."""
    results: list[str | Exception | None] = [None] * len(events)
    first_index, repeats = _repeated_event_ids(events)
    firsts = [events[i] for i in first_index.values()]
    to_check = [
        event_id
        for event_id, i in first_index.items()
        if may_be_recorded is None or may_be_recorded(events[i])
    ]
    cache = known if known is not None else KnownRows()
    single = not to_check and _one_statement_fits(session, firsts, cache, classifier)
    conn = await session.connection(
        execution_options={"isolation_level": "AUTOCOMMIT"} if single else None
    )
    recorded = await _already_recorded(conn, to_check)
    settings = await _settings(conn, firsts)
    fresh = _date_fresh_clicks(events, first_index, recorded, settings, results, classifier)
    if fresh:
        await _record_fresh(session, conn, fresh, cache, single=single)
        for item in fresh:
            results[item.index] = RECORDED
    for i, first in repeats.items():
        results[i] = ALREADY_RECORDED if results[first] == RECORDED else results[first]
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _repeated_event_ids(events: Sequence[ClickEvent]) -> tuple[dict[str, int], dict[int, int]]:
    """Where each event id first appears in the batch, and the events that repeat one (by
    index: the index of its first appearance); a repeat gets its first's answer."""
    first_index: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, event in enumerate(events):
        if event.event_id in first_index:
            repeats[i] = first_index[event.event_id]
        else:
            first_index[event.event_id] = i
    return first_index, repeats


async def _already_recorded(conn: AsyncConnection, event_ids: list[str]) -> set[str]:
    """The event ids among `event_ids` that the log holds already (replays)."""
    if not event_ids:
        return set()
    await custom_plans(conn)
    return set((await conn.execute(_RECORDED, {"ids": bucketed(event_ids)})).scalars())


def _date_fresh_clicks(
    events: Sequence[ClickEvent],
    first_index: dict[str, int],
    recorded: set[str],
    settings: dict[int, tuple[str, bool]],
    results: list[str | Exception | None],
    classifier: Classifier,
) -> list[FreshClick]:
    """The clicks to record, each with its business date in its campaign's time zone, its
    agent and whether it counts. The others get their answer in `results`: already
    recorded, or their campaign not found."""
    fresh: list[FreshClick] = []
    days: dict[tuple[str, int], date] = {}
    for event_id, i in first_index.items():
        event = events[i]
        if event_id in recorded:
            results[i] = ALREADY_RECORDED
            continue
        tz, filter_bots = _settings_of(event, settings)
        if tz is None:
            results[i] = NotFound(
                f"campaign {event.campaign_id} not found", code="campaign_not_found"
            )
            continue
        # Days start on a whole second, so clicks in the same second share their date.
        second = (tz, int(event.triggered_at.timestamp()))
        day = days.get(second)
        if day is None:
            day = days[second] = business_date(event.triggered_at, tz, MIDNIGHT)
        agent = classifier(event.user_agent)
        counted = agent is None or not (filter_bots and agent.is_bot)
        fresh.append(FreshClick(i, event, day, agent, counted))
    return fresh


def _settings_of(
    event: ClickEvent, settings: dict[int, tuple[str, bool]]
) -> tuple[str | None, bool]:
    """(time zone, filters bots) of the event's campaign: as the edge knew them, or as
    read (`settings`); no time zone when there is no such campaign."""
    if event.settled:
        return event.timezone, bool(event.filter_bots)
    tz, filter_bots = settings.get(event.campaign_id, (None, True))
    return event.timezone or tz, filter_bots if event.filter_bots is None else event.filter_bots


async def _record_fresh(
    session: AsyncSession,
    conn: AsyncConnection,
    fresh: list[FreshClick],
    cache: KnownRows,
    *,
    single: bool,
) -> None:
    """Write the fresh clicks' rows, in one statement when `single` (the connection is in
    autocommit mode) or else in the caller's transaction; the rows they proved to exist
    are learnt once that commits."""
    dialect = conn.dialect.name
    people = [item for item in fresh if item.counted]
    member_ids = await _members(conn, dialect, people, cache)
    users = _CampaignUsers(dialect, people, cache)
    summaries = move_summaries(dialect, [item.event for item in people], cache.tags)
    if single:
        await _write_in_one_statement(conn, fresh, people, member_ids, users, summaries)
    else:
        await _write(conn, fresh, people, member_ids, users, summaries)
    tag_keys = summaries.tag_keys
    user_keys = users.keys
    after_commit(session, lambda: cache.learn(member_ids, user_keys, tag_keys))


def _one_statement_fits(
    session: AsyncSession, events: Sequence[ClickEvent], cache: KnownRows, classifier: Classifier
) -> bool:
    """A usual batch on PostgreSQL (one_statement.py): every campaign's settings came
    with its click and every member whose click counts is known, so nothing needs to be
    read first."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    members = cache.members
    return all(
        e.settled and (e.line_id is None or e.line_id in members or _kept_out(e, classifier))
        for e in events
    )


def _kept_out(event: ClickEvent, classifier: Classifier) -> bool:
    """A bot's click its campaign keeps out of the counts (its settings known)."""
    agent = classifier(event.user_agent)
    return bool(event.filter_bots) and agent is not None and agent.is_bot


async def _write_in_one_statement(
    conn: AsyncConnection,
    fresh: list[FreshClick],
    people: list[FreshClick],
    member_ids: dict[str, int],
    users: _CampaignUsers,
    summaries: SummaryMoves,
) -> None:
    """The usual batch on PostgreSQL (one_statement.py), on a connection in autocommit
    mode; the general path when a summary's tag string must be re-sorted."""
    try:
        await one_statement.write_batch(
            conn,
            users=users.rows,
            summaries=summaries,
            logs=log_rows(fresh),
            messages=message_rows(people, member_ids),
            campaigns=campaign_rows(fresh, Counter()),
            daily=daily_rows(people),
            deltas=delta_rows(fresh),
        )
    except one_statement.TagsOutOfOrder:
        # Nothing was written: the general path, in a transaction of its own on
        # this connection (it is in autocommit mode, so BEGIN and COMMIT are ours).
        await conn.exec_driver_sql("BEGIN")
        try:
            await _write(conn, fresh, people, member_ids, users, summaries)
        except BaseException:
            await conn.exec_driver_sql("ROLLBACK")
            raise
        await conn.exec_driver_sql("COMMIT")


async def _write(
    conn: AsyncConnection,
    fresh: list[FreshClick],
    people: list[FreshClick],
    member_ids: dict[str, int],
    users: _CampaignUsers,
    summaries: SummaryMoves,
) -> None:
    """The general path, inside the caller's transaction: the rows in one `write_rows()`,
    then, from what they returned, the counters and tag strings in another."""
    users_returned, summaries_returned, *_ = await write_rows(
        conn,
        users.rows,
        summaries.rows,
        summaries.tag_rows,
        log_rows(fresh),
        message_rows(people, member_ids),
        delta_rows(fresh),
    )
    new_users = await users.count_new(conn, users_returned)
    strings = await tag_strings(conn, summaries, summaries_returned)
    # The hottest rows last, in one statement: held from here to the commit only.
    await write_rows(
        conn,
        campaign_rows(fresh, new_users),
        daily_rows(people),
        strings,
    )


async def _settings(
    conn: AsyncConnection, events: Sequence[ClickEvent]
) -> dict[int, tuple[str, bool]]:
    """(time zone, filters bots) of the campaigns whose events do not carry them; a
    campaign missing here does not exist."""
    wanted = {e.campaign_id for e in events if not e.settled}
    if not wanted:
        return {}
    rows = await conn.execute(_SETTINGS, {"ids": bucketed(wanted)})
    return {cid: (tz, bool(filter_bots)) for cid, tz, filter_bots in rows}


# ---------------------------------------------------------------- members


async def _members(
    conn: AsyncConnection, dialect: str, fresh: list[FreshClick], cache: KnownRows
) -> dict[str, int]:
    """Member id by uid, creating the members seen for the first time."""
    uids = {item.event.line_id for item in fresh if item.event.line_id}
    known = {uid: cache.members[uid] for uid in uids if uid in cache.members}
    unknown = sorted(uids - known.keys())
    if not unknown:
        return known
    await custom_plans(conn)
    known.update((await conn.execute(_MEMBERS, {"uids": bucketed(unknown)})).tuples().all())
    missing = [uid for uid in unknown if uid not in known]
    if missing:
        now = utcnow()
        rows = [{"line_uid": uid, "created_at": now, "updated_at": now} for uid in missing]
        if dialect in _RETURNS_INSERTED:
            (inserted,) = await write_rows(
                conn, RowSet(Member, rows, keys=("line_uid",), returning=("line_uid", "id"))
            )
            known.update((uid, member_id) for uid, member_id in inserted)
            missing = [uid for uid in missing if uid not in known]  # inserted meanwhile
        else:
            await write_rows(conn, RowSet(Member, rows, keys=("line_uid",)))
        if missing:
            known.update((await conn.execute(_MEMBERS, {"uids": bucketed(missing)})).tuples().all())
    return known


class _CampaignUsers:
    """One row per (campaign, user), inserted-or-nothing with the batch's other rows
    (`rows`, empty when every pair is known); then `count_new()` gives the users new to
    each campaign, counting only the rows this transaction really inserted. PostgreSQL and
    SQLite learn them from RETURNING; MariaDB reads the rows back and counts those whose
    `first_event_id` is this batch's."""

    def __init__(self, dialect: str, fresh: list[FreshClick], cache: KnownRows) -> None:
        firsts: dict[tuple[int, str], ClickEvent] = {}
        for item in fresh:
            event = item.event
            if event.line_id:
                key = (event.campaign_id, event.line_id)
                if key not in firsts or event.triggered_at < firsts[key].triggered_at:
                    firsts[key] = event
        self.firsts = firsts
        self.keys = list(firsts)
        self.unknown = sorted(key for key in self.keys if key not in cache.campaign_users)
        self.rows = RowSet(
            CampaignUser,
            [
                {
                    "campaign_id": cid,
                    "line_id": uid,
                    "first_event_id": firsts[cid, uid].event_id,
                    "first_clicked_at": firsts[cid, uid].triggered_at,
                }
                for cid, uid in self.unknown
            ],
            keys=_USER_KEY,
            returning=_USER_KEY if dialect in _RETURNS_INSERTED else (),
        )

    async def count_new(
        self, conn: AsyncConnection, inserted: Sequence[tuple[Any, ...]]
    ) -> Counter[int]:
        new_users: Counter[int] = Counter()
        if not self.unknown:
            return new_users
        if self.rows.returning:
            new_users.update(cid for cid, _uid in inserted)
            return new_users
        owners: list[Any] = []
        for keys in in_slices(self.unknown):
            owners += (await conn.execute(_CAMPAIGN_USER_OWNERS, {"keys": keys})).all()
        for cid, uid, event_id in owners:
            if self.firsts[cid, uid].event_id == event_id:
                new_users[cid] += 1
        return new_users
