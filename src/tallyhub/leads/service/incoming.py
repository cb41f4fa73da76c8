"""Incoming leads through the group-commit writer.

`apply_incoming` applies a whole batch in the writer's transaction: it resolves groups and
accounts with set queries, decides new/duplicate by insert-or-nothing into the contact
pools, moves every counter with one atomic statement per key (keys sorted), writes the
log rows, and queues the live push for after commit.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.daywindow import business_date, parse_reset_time
from tallyhub.core.db import after_commit, upsert, utcnow
from tallyhub.core.http import NotFound, Unauthorized
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
from tallyhub.leads.service.groups import TOPIC, check_client_group, group_message


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


@dataclass(slots=True)
class _Resolved:
    index: int
    event: IncomingEvent
    group: Group
    account_id: int
    day: date
    today: date
    is_duplicate: bool = False


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def apply_incoming(
    session: AsyncSession, hub: Hub, events: Sequence[IncomingEvent]
) -> list[schemas.IncomingResult | Exception]:
    results: list[schemas.IncomingResult | Exception | None] = [None] * len(events)
    dialect = _dialect(session)
    now = utcnow()

    # 1. Groups by activation code, accounts by (group, line_id): one query each.
    codes = {e.activation_code for e in events}
    groups = {
        g.activation_code: g
        for g in await session.scalars(select(Group).where(Group.activation_code.in_(codes)))
    }
    wanted_accounts = {
        (groups[e.activation_code].id, e.account_line_id)
        for e in events
        if e.activation_code in groups
    }
    accounts: dict[tuple[int, str], int] = {}
    if wanted_accounts:
        rows = await session.execute(
            select(LineAccount.group_id, LineAccount.line_id, LineAccount.id).where(
                LineAccount.group_id.in_({g for g, _ in wanted_accounts}),
                LineAccount.line_id.in_({line for _, line in wanted_accounts}),
                LineAccount.deleted_at.is_(None),
            )
        )
        accounts = {(g, line): aid for g, line, aid in rows}

    # 2. Event ids already recorded (a retry) answer with what they answered first.
    first_index: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, event in enumerate(events):
        if event.event_id in first_index:
            repeats[i] = first_index[event.event_id]
        else:
            first_index[event.event_id] = i
    recorded = {
        log.event_id: log
        for log in await session.scalars(
            select(IncomingLog).where(IncomingLog.event_id.in_(first_index))
        )
    }

    fresh: list[_Resolved] = []
    for event_id, i in first_index.items():
        event = events[i]
        if event_id in recorded:
            log = recorded[event_id]
            results[i] = schemas.IncomingResult(
                event_id=event_id,
                is_duplicate=log.is_duplicate,
                today_incoming=log.today_after,
                total_incoming=log.total_after,
            )
            continue
        group = groups.get(event.activation_code)
        if group is None:
            results[i] = Unauthorized("unknown activation code", code="unknown_activation_code")
            continue
        try:
            check_client_group(group)
        except Exception as refused:
            results[i] = refused
            continue
        account_id = accounts.get((group.id, event.account_line_id))
        if account_id is None:
            results[i] = NotFound(
                f"account {event.account_line_id!r} not found in this group",
                code="account_not_found",
            )
            continue
        reset = parse_reset_time(group.reset_time)
        fresh.append(
            _Resolved(
                index=i,
                event=event,
                group=group,
                account_id=account_id,
                day=business_date(event.incoming_time, group.timezone, reset),
                today=business_date(now, group.timezone, reset),
            )
        )

    if fresh:
        await _decide_duplicates(session, dialect, fresh)
        figures = await _apply_counters_and_logs(session, dialect, fresh, results)
        await _queue_push(session, hub, fresh, figures)

    for i, first in repeats.items():
        results[i] = results[first]
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


async def _decide_duplicates(session: AsyncSession, dialect: str, fresh: list[_Resolved]) -> None:
    """Insert-or-nothing into both pools, then read back who inserted each contact: an
    event is new exactly when the pool row carries its own event id."""
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
    await session.execute(
        upsert(
            dialect,
            Contact,
            group_rows,
            keys=["group_id", "line_id"],
        )
    )
    global_rows = [
        {
            "line_id": line,
            "first_event_id": item.event.event_id,
            "first_group_id": item.group.id,
            "first_seen_at": item.event.incoming_time,
        }
        for line, item in sorted(global_pool.items())
    ]
    await session.execute(
        upsert(
            dialect,
            GlobalContact,
            global_rows,
            keys=["line_id"],
        )
    )

    group_owner = {
        (gid, line): event_id
        for gid, line, event_id in await session.execute(
            select(Contact.group_id, Contact.line_id, Contact.first_event_id).where(
                or_(
                    *(
                        and_(Contact.group_id == gid, Contact.line_id.in_(lines))
                        for gid, lines in _lines_by_group(group_pool).items()
                    )
                )
            )
        )
    }
    global_owner = dict(
        (
            await session.execute(
                select(GlobalContact.line_id, GlobalContact.first_event_id).where(
                    GlobalContact.line_id.in_(global_pool)
                )
            )
        )
        .tuples()
        .all()
    )

    for item in fresh:
        if item.group.dedup_scope == "global":
            owner = global_owner.get(item.event.incoming_line_id)
        else:
            owner = group_owner.get((item.group.id, item.event.incoming_line_id))
        item.is_duplicate = owner != item.event.event_id


def _lines_by_group(pool: dict[tuple[int, str], Any]) -> dict[int, list[str]]:
    lines: dict[int, list[str]] = defaultdict(list)
    for gid, line in pool:
        lines[gid].append(line)
    return lines


async def _apply_counters_and_logs(
    session: AsyncSession,
    dialect: str,
    fresh: list[_Resolved],
    results: list[schemas.IncomingResult | Exception | None],
) -> dict[int, tuple[int, int, int]]:
    """Move the counters, write the logs, fill `results`; returns each touched account's
    (total, duplicate, today) figures after the batch."""
    group_total: Counter[int] = Counter()
    group_dup: Counter[int] = Counter()
    account_total: Counter[int] = Counter()
    account_dup: Counter[int] = Counter()
    group_day: Counter[tuple[int, date]] = Counter()
    group_day_dup: Counter[tuple[int, date]] = Counter()
    account_day: Counter[tuple[int, date]] = Counter()
    account_day_dup: Counter[tuple[int, date]] = Counter()
    account_group: dict[int, int] = {}
    for item in fresh:
        gid, aid, dup = item.group.id, item.account_id, int(item.is_duplicate)
        account_group[aid] = gid
        group_total[gid] += 1
        group_dup[gid] += dup
        account_total[aid] += 1
        account_dup[aid] += dup
        group_day[gid, item.day] += 1
        group_day_dup[gid, item.day] += dup
        account_day[aid, item.day] += 1
        account_day_dup[aid, item.day] += dup

    # One statement per hot key, keys in sorted order (no deadlock between batches).
    for gid in sorted(group_total):
        await session.execute(
            update(GroupStats)
            .where(GroupStats.group_id == gid)
            .values(
                total_incoming=GroupStats.total_incoming + group_total[gid],
                duplicate_incoming=GroupStats.duplicate_incoming + group_dup[gid],
            )
        )
    for aid in sorted(account_total):
        await session.execute(
            update(LineAccountStats)
            .where(LineAccountStats.line_account_id == aid)
            .values(
                total_incoming=LineAccountStats.total_incoming + account_total[aid],
                duplicate_incoming=LineAccountStats.duplicate_incoming + account_dup[aid],
            )
        )
    await session.execute(
        upsert(
            dialect,
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
            keys=["group_id", "business_date"],
            increment=["incoming", "duplicate_incoming"],
        )
    )
    await session.execute(
        upsert(
            dialect,
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
            keys=["line_account_id", "business_date"],
            increment=["incoming", "duplicate_incoming"],
        )
    )

    # The figures after this batch, read back from the rows we just locked and moved.
    totals: dict[int, int] = {}
    duplicates: dict[int, int] = {}
    for aid, total, dup in await session.execute(
        select(
            LineAccountStats.line_account_id,
            LineAccountStats.total_incoming,
            LineAccountStats.duplicate_incoming,
        ).where(LineAccountStats.line_account_id.in_(account_total))
    ):
        totals[aid], duplicates[aid] = total, dup
    today_keys = {(item.account_id, item.today) for item in fresh}
    todays = {
        (aid, day): n
        for aid, day, n in await session.execute(
            select(
                LineAccountDailyStats.line_account_id,
                LineAccountDailyStats.business_date,
                LineAccountDailyStats.incoming,
            ).where(
                LineAccountDailyStats.line_account_id.in_({a for a, _ in today_keys}),
                LineAccountDailyStats.business_date.in_({d for _, d in today_keys}),
            )
        )
    }

    # Each event answers with the figures as they stood right after it, in batch order.
    later_total: Counter[int] = Counter()
    later_today: Counter[tuple[int, date]] = Counter()
    answers: dict[int, tuple[int, int]] = {}
    for item in reversed(fresh):
        aid = item.account_id
        total = totals.get(aid, 0) - later_total[aid]
        today = todays.get((aid, item.today), 0) - later_today[aid, item.today]
        answers[item.index] = (total, today)
        later_total[aid] += 1
        if item.day == item.today:
            later_today[aid, item.today] += 1

    await session.execute(
        insert(IncomingLog),
        [
            {
                "event_id": item.event.event_id,
                "group_id": item.group.id,
                "line_account_id": item.account_id,
                "incoming_line_id": item.event.incoming_line_id,
                "is_duplicate": item.is_duplicate,
                "incoming_time": item.event.incoming_time,
                "business_date": item.day,
                "received_at": item.event.received_at,
                "total_after": answers[item.index][0],
                "today_after": answers[item.index][1],
            }
            for item in fresh
        ],
    )
    for item in fresh:
        total, today = answers[item.index]
        results[item.index] = schemas.IncomingResult(
            event_id=item.event.event_id,
            is_duplicate=item.is_duplicate,
            today_incoming=today,
            total_incoming=total,
        )
    return {
        item.account_id: (
            totals.get(item.account_id, 0),
            duplicates.get(item.account_id, 0),
            todays.get((item.account_id, item.today), 0),
        )
        for item in fresh
    }


async def _queue_push(
    session: AsyncSession,
    hub: Hub,
    fresh: list[_Resolved],
    figures: dict[int, tuple[int, int, int]],
) -> None:
    """After commit, push each touched group's and account's figures."""
    if not hub.wanted(TOPIC):
        return
    messages: list[dict[str, Any]] = []
    for gid in sorted({item.group.id for item in fresh}):
        message = await group_message(session, gid)
        if message is not None:
            messages.append(message)
    groups = {item.account_id: item.group for item in fresh}
    for aid, (total, dup, today) in sorted(figures.items()):
        group = groups[aid]
        messages.append(
            {
                "type": "account_stats",
                "group_id": group.id,
                "owner_id": group.owner_id,
                "line_account_id": aid,
                "total_incoming": total,
                "duplicate_incoming": dup,
                "today_incoming": today,
            }
        )

    async def publish() -> None:
        for message in messages:
            await hub.publish(TOPIC, message)

    after_commit(session, publish)
