"""Incoming leads through the group-commit writer.

`apply_incoming` applies a whole batch in the writer's transaction: it resolves groups and
accounts with set queries, decides new/duplicate by insert-or-nothing into the contact
pools, moves every counter (coalesced, one row per key, keys sorted), writes the log rows,
and queues the live push for after commit. The writes go through core's `write_rows()`:
on PostgreSQL the two pools are one statement, the four counter tables another and the
logs a third, each row set as one array per column; elsewhere executemany per table.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date, parse_reset_time
from tallyhub.core.db import after_commit
from tallyhub.core.errors import DomainError, NotFound, Unauthorized
from tallyhub.core.realtime import Hub
from tallyhub.leads import schemas
from tallyhub.leads.models import (
    Contact,
    GlobalContact,
    Group,
    GroupDailyStats,
    GroupStats,
    IncomingLog,
    LineAccount,
    LineAccountDailyStats,
    LineAccountStats,
)
from tallyhub.leads.service.groups import (
    TOPIC,
    account_messages,
    client_refusal,
    group_message,
)

_G = Group.__table__.c
_A = LineAccount.__table__.c
_L = IncomingLog.__table__.c
_C = Contact.__table__.c
_GC = GlobalContact.__table__.c
_AS = LineAccountStats.__table__.c
_AD = LineAccountDailyStats.__table__.c

# Built once; every IN list is an expanding parameter, so each compiles once and is cached.
_GROUPS_BY_CODE = select(
    _G.id,
    _G.activation_code,
    _G.is_active,
    _G.deleted_at,
    _G.dedup_scope,
    _G.timezone,
    _G.reset_time,
    _G.owner_id,
).where(_G.activation_code.in_(bindparam("codes", expanding=True)))
_ACCOUNTS = select(_A.group_id, _A.line_id, _A.id).where(
    _A.group_id.in_(bindparam("groups", expanding=True)),
    _A.line_id.in_(bindparam("lines", expanding=True)),
    _A.deleted_at.is_(None),
)
_RECORDED = select(
    _L.group_id, _L.event_id, _L.is_duplicate, _L.today_after, _L.total_after
).where(  # both columns, so the (group_id, event_id) unique index answers it
    _L.group_id.in_(bindparam("groups", expanding=True)),
    _L.event_id.in_(bindparam("ids", expanding=True)),
)
_GROUP_POOL = select(_C.group_id, _C.line_id, _C.first_event_id).where(
    _C.group_id.in_(bindparam("groups", expanding=True)),
    _C.line_id.in_(bindparam("lines", expanding=True)),
)
_GLOBAL_POOL = select(_GC.line_id, _GC.first_group_id, _GC.first_event_id).where(
    _GC.line_id.in_(bindparam("lines", expanding=True))
)
_ACCOUNT_TOTALS = select(_AS.line_account_id, _AS.total_incoming, _AS.duplicate_incoming).where(
    _AS.line_account_id.in_(bindparam("ids", expanding=True))
)
_ACCOUNT_TODAYS = select(_AD.line_account_id, _AD.business_date, _AD.incoming).where(
    _AD.line_account_id.in_(bindparam("ids", expanding=True)),
    _AD.business_date.in_(bindparam("days", expanding=True)),
)


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    activation_code: str
    account_line_id: str
    incoming_line_id: str
    event_id: str
    incoming_time: datetime
    received_at: datetime


def make_event(activation_code: str, report: schemas.IncomingReport) -> IncomingEvent:
    now = utcnow()
    return IncomingEvent(
        activation_code=activation_code,
        account_line_id=report.account_line_id,
        incoming_line_id=report.incoming_line_id,
        event_id=report.event_id or uuid.uuid4().hex,
        incoming_time=report.incoming_time or now,
        received_at=now,
    )


@dataclass(frozen=True, slots=True)
class _Group:
    id: int
    owner_id: int | None
    dedup_scope: str
    timezone: str
    reset: time
    refusal: DomainError | None


@dataclass(slots=True)
class _Resolved:
    index: int
    event: IncomingEvent
    group: _Group
    account_id: int
    day: date
    today: date
    is_duplicate: bool = False


async def apply_incoming(
    session: AsyncSession, hub: Hub, events: Sequence[IncomingEvent]
) -> list[schemas.IncomingResult | Exception]:
    results: list[schemas.IncomingResult | Exception | None] = [None] * len(events)
    dialect = session.get_bind().dialect.name
    now = utcnow()

    # 1. Groups by activation code, accounts by (group, line_id): one query each.
    groups: dict[str, _Group] = {
        row.activation_code: _Group(
            row.id,
            row.owner_id,
            row.dedup_scope,
            row.timezone,
            parse_reset_time(row.reset_time),
            client_refusal(row.is_active, row.deleted_at),
        )
        for row in await session.execute(
            _GROUPS_BY_CODE, {"codes": bucketed(e.activation_code for e in events)}
        )
    }
    live_groups = {g.id for g in groups.values() if g.refusal is None}
    accounts: dict[tuple[int, str], int] = {}
    if live_groups:
        lines = bucketed(e.account_line_id for e in events)
        accounts = {
            (g, line): aid
            for g, line, aid in await session.execute(
                _ACCOUNTS, {"groups": bucketed(live_groups), "lines": lines}
            )
        }

    # 2. Event ids (the client's, unique per group) already recorded answer with what they
    #    answered first; a repeat inside the batch answers like its first occurrence.
    first_index: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for i, event in enumerate(events):
        key = (event.activation_code, event.event_id)
        if key in first_index:
            repeats[i] = first_index[key]
        else:
            first_index[key] = i
    recorded = {
        (row.group_id, row.event_id): row
        for row in await session.execute(
            _RECORDED,
            {
                "groups": bucketed(g.id for g in groups.values()) or [0],
                "ids": bucketed(event_id for _, event_id in first_index),
            },
        )
    }

    fresh: list[_Resolved] = []
    for i in first_index.values():
        event = events[i]
        group = groups.get(event.activation_code)
        if group is None:
            results[i] = Unauthorized("unknown activation code", code="unknown_activation_code")
            continue
        row = recorded.get((group.id, event.event_id))
        if row is not None:
            results[i] = schemas.IncomingResult(
                event_id=event.event_id,
                is_duplicate=row.is_duplicate,
                today_incoming=row.today_after,
                total_incoming=row.total_after,
            )
            continue
        if group.refusal is not None:
            results[i] = group.refusal
            continue
        account_id = accounts.get((group.id, event.account_line_id))
        if account_id is None:
            results[i] = NotFound(
                f"account {event.account_line_id!r} not found in this group",
                code="account_not_found",
            )
            continue
        fresh.append(
            _Resolved(
                index=i,
                event=event,
                group=group,
                account_id=account_id,
                day=business_date(event.incoming_time, group.timezone, group.reset),
                today=business_date(now, group.timezone, group.reset),
            )
        )

    if fresh:
        await _decide_duplicates(session, dialect, fresh)
        await _apply_counters_and_logs(session, dialect, fresh, results)
        await _queue_push(session, hub, fresh)

    for i, first in repeats.items():
        results[i] = results[first]
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


async def _decide_duplicates(session: AsyncSession, dialect: str, fresh: list[_Resolved]) -> None:
    """Insert-or-nothing into both pools (the unique keys decide), then learn which rows
    this batch inserted: from RETURNING where the dialect returns only inserted rows
    (PostgreSQL, SQLite), else by reading back `first_event_id`, which only the inserting
    event can have written. An event is new exactly when its own row went in."""
    group_pool: dict[tuple[int, str], _Resolved] = {}
    global_pool: dict[str, _Resolved] = {}
    for item in fresh:
        group_pool.setdefault((item.group.id, item.event.incoming_line_id), item)
        global_pool.setdefault(item.event.incoming_line_id, item)
    group_rows = [
        {
            "group_id": gid,
            "line_id": line,
            "first_event_id": item.event.event_id,
            "first_seen_at": item.event.incoming_time,
        }
        for (gid, line), item in sorted(group_pool.items())
    ]
    global_rows = [
        {
            "line_id": line,
            "first_event_id": item.event.event_id,
            "first_group_id": item.group.id,
            "first_seen_at": item.event.incoming_time,
        }
        for line, item in sorted(global_pool.items())
    ]
    conn = await session.connection()
    returns = dialect in ("postgresql", "sqlite")
    in_group, in_global = await write_rows(
        conn,
        RowSet(
            Contact,
            group_rows,
            keys=("group_id", "line_id"),
            returning=("group_id", "line_id") if returns else (),
        ),
        RowSet(
            GlobalContact,
            global_rows,
            keys=("line_id",),
            returning=("line_id",) if returns else (),
        ),
    )
    if returns:
        new_in_group = {(gid, line) for gid, line in in_group}
        new_globally = {line for (line,) in in_global}
    else:
        lines = bucketed(global_pool)
        new_in_group = {
            (gid, line)
            for gid, line, owner in await session.execute(
                _GROUP_POOL, {"groups": bucketed(g for g, _ in group_pool), "lines": lines}
            )
            if owner == group_pool[gid, line].event.event_id
        }
        new_globally = {
            line
            for line, gid, owner in await session.execute(_GLOBAL_POOL, {"lines": lines})
            if (gid, owner) == (global_pool[line].group.id, global_pool[line].event.event_id)
        }

    for item in fresh:
        line = item.event.incoming_line_id
        if item.group.dedup_scope == "global":
            item.is_duplicate = not (line in new_globally and global_pool[line] is item)
        else:
            key = (item.group.id, line)
            item.is_duplicate = not (key in new_in_group and group_pool[key] is item)


async def _apply_counters_and_logs(
    session: AsyncSession,
    dialect: str,
    fresh: list[_Resolved],
    results: list[schemas.IncomingResult | Exception | None],
) -> None:
    """Move the counters, write the logs, fill `results`."""
    group_n: Counter[int] = Counter()
    group_dup: Counter[int] = Counter()
    account_n: Counter[int] = Counter()
    account_dup: Counter[int] = Counter()
    group_day: Counter[tuple[int, date]] = Counter()
    group_day_dup: Counter[tuple[int, date]] = Counter()
    account_day: Counter[tuple[int, date]] = Counter()
    account_day_dup: Counter[tuple[int, date]] = Counter()
    account_group: dict[int, int] = {}
    for item in fresh:
        gid, aid, dup = item.group.id, item.account_id, int(item.is_duplicate)
        account_group[aid] = gid
        group_n[gid] += 1
        group_dup[gid] += dup
        account_n[aid] += 1
        account_dup[aid] += dup
        group_day[gid, item.day] += 1
        group_day_dup[gid, item.day] += dup
        account_day[aid, item.day] += 1
        account_day_dup[aid, item.day] += dup

    # Coalesced deltas, one row per key, keys in sorted order, in one write: the groups'
    # stats rows first (recalibration locks them too), so batches from any number of
    # processes cannot deadlock; an account's and a day's rows belong to a group held.
    await write_rows(
        await session.connection(),
        _totals(GroupStats, "group_id", group_n, group_dup),
        _totals(LineAccountStats, "line_account_id", account_n, account_dup),
        RowSet(
            GroupDailyStats,
            [
                {
                    "group_id": gid,
                    "business_date": day,
                    "incoming": n,
                    "duplicate_incoming": group_day_dup[gid, day],
                }
                for (gid, day), n in sorted(group_day.items())
            ],
            keys=("group_id", "business_date"),
            increment=("incoming", "duplicate_incoming"),
        ),
        RowSet(
            LineAccountDailyStats,
            [
                {
                    "line_account_id": aid,
                    "business_date": day,
                    "group_id": account_group[aid],
                    "incoming": n,
                    "duplicate_incoming": account_day_dup[aid, day],
                }
                for (aid, day), n in sorted(account_day.items())
            ],
            keys=("line_account_id", "business_date"),
            increment=("incoming", "duplicate_incoming"),
        ),
    )

    # The figures after this batch, read back from the rows this transaction holds.
    ids = sorted(account_n)
    totals: dict[int, tuple[int, int]] = {
        aid: (total, dup)
        for aid, total, dup in await session.execute(_ACCOUNT_TOTALS, {"ids": bucketed(ids)})
    }
    todays = {
        (aid, day): n
        for aid, day, n in await session.execute(
            _ACCOUNT_TODAYS, {"ids": bucketed(ids), "days": bucketed(item.today for item in fresh)}
        )
    }

    # Each event answers with the figures as they stood right after it, in batch order.
    later_total: Counter[int] = Counter()
    later_today: Counter[tuple[int, date]] = Counter()
    logs: list[dict[str, Any]] = []
    for item in reversed(fresh):
        aid = item.account_id
        total = totals.get(aid, (0, 0))[0] - later_total[aid]
        today = todays.get((aid, item.today), 0) - later_today[aid, item.today]
        later_total[aid] += 1
        if item.day == item.today:
            later_today[aid, item.today] += 1
        event = item.event
        logs.append(
            {
                "event_id": event.event_id,
                "group_id": item.group.id,
                "line_account_id": aid,
                "incoming_line_id": event.incoming_line_id,
                "is_duplicate": item.is_duplicate,
                "incoming_time": event.incoming_time,
                "business_date": item.day,
                "received_at": event.received_at,
                "total_after": total,
                "today_after": today,
            }
        )
        results[item.index] = schemas.IncomingResult(
            event_id=event.event_id,
            is_duplicate=item.is_duplicate,
            today_incoming=today,
            total_incoming=total,
        )
    logs.reverse()
    await write_rows(await session.connection(), RowSet(IncomingLog, logs))


async def _queue_push(session: AsyncSession, hub: Hub, fresh: list[_Resolved]) -> None:
    """After commit, push each touched group's and account's figures."""
    if not hub.wanted(TOPIC):
        return
    messages: list[dict[str, Any]] = []
    for gid in sorted({item.group.id for item in fresh}):
        message = await group_message(session, gid)
        if message is not None:
            messages.append(message)
    messages += await account_messages(session, {item.account_id for item in fresh})

    async def publish() -> None:
        for message in messages:
            await hub.publish(TOPIC, message)

    after_commit(session, publish)


def _totals(
    model: type[GroupStats] | type[LineAccountStats],
    key: str,
    totals: Mapping[int, int],
    duplicates: Mapping[int, int],
) -> RowSet:
    """A batch's deltas to the all-time counters of groups or accounts: one row per id,
    ids sorted, updating rows that exist (they are created with their group or account)."""
    return RowSet(
        model,
        [
            {key: k, "total_incoming": totals[k], "duplicate_incoming": duplicates[k]}
            for k in sorted(totals)
        ],
        keys=(key,),
        increment=("total_incoming", "duplicate_incoming"),
        update=True,
    )
