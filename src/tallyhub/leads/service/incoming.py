"""Incoming leads through the group-commit writer.

`apply_incoming` applies a whole batch in the writer's transaction: it resolves groups and
accounts with set queries, decides new/duplicate by insert-or-nothing into the contact
pools (`dedup`), moves every counter (coalesced, one row per key, keys sorted), writes the log rows,
and queues the live push for after commit. The writes go through core's `write_rows()`:
on PostgreSQL the two pools are one statement, the four counter tables another and the
logs a third, each row set as one array per column; elsewhere executemany per table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date, parse_reset_time
from tallyhub.core.errors import NotFound, Unauthorized
from tallyhub.core.realtime import Hub
from tallyhub.leads import schemas
from tallyhub.leads.models import (
    Group,
    GroupDailyStats,
    GroupStats,
    IncomingLog,
    LineAccount,
    LineAccountDailyStats,
    LineAccountStats,
)
from tallyhub.leads.service.client import client_refusal
from tallyhub.leads.service.dedup import decide_duplicates
from tallyhub.leads.service.events import BatchGroup, FreshLead, IncomingEvent
from tallyhub.leads.service.live import TOPIC, publish_groups

_G = Group.__table__.c
_A = LineAccount.__table__.c
_L = IncomingLog.__table__.c
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
_ACCOUNT_TOTALS = select(_AS.line_account_id, _AS.total_incoming, _AS.duplicate_incoming).where(
    _AS.line_account_id.in_(bindparam("ids", expanding=True))
)
_ACCOUNT_TODAYS = select(_AD.line_account_id, _AD.business_date, _AD.incoming).where(
    _AD.line_account_id.in_(bindparam("ids", expanding=True)),
    _AD.business_date.in_(bindparam("days", expanding=True)),
)


async def apply_incoming(
    session: AsyncSession, hub: Hub, events: Sequence[IncomingEvent]
) -> list[schemas.IncomingResult | Exception]:
    results: list[schemas.IncomingResult | Exception | None] = [None] * len(events)
    dialect = session.get_bind().dialect.name
    now = utcnow()
    groups = await _groups_by_code(session, events)
    accounts = await _accounts_by_line(session, groups, events)
    firsts, repeats = _first_occurrences(events)
    recorded = await _recorded_answers(session, groups, firsts)
    fresh = _resolve_fresh(events, firsts.values(), groups, accounts, recorded, now, results)
    if fresh:
        await decide_duplicates(session, dialect, fresh)
        await _apply_counters_and_logs(session, fresh, results)
        await _queue_push(session, hub, fresh)
    for i, first in repeats.items():
        results[i] = results[first]
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------- resolving the batch


async def _groups_by_code(
    session: AsyncSession, events: Sequence[IncomingEvent]
) -> dict[str, BatchGroup]:
    """The batch's groups by activation code, each with why its clients are refused, if
    they are: one query."""
    return {
        row.activation_code: BatchGroup(
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


async def _accounts_by_line(
    session: AsyncSession, groups: Mapping[str, BatchGroup], events: Sequence[IncomingEvent]
) -> dict[tuple[int, str], int]:
    """Account ids by (group, line_id), in the groups that take leads: one query, or none
    when no group does."""
    live_groups = {g.id for g in groups.values() if g.refusal is None}
    if not live_groups:
        return {}
    lines = bucketed(e.account_line_id for e in events)
    return {
        (g, line): aid
        for g, line, aid in await session.execute(
            _ACCOUNTS, {"groups": bucketed(live_groups), "lines": lines}
        )
    }


def _first_occurrences(
    events: Sequence[IncomingEvent],
) -> tuple[dict[tuple[str, str], int], dict[int, int]]:
    """Each (activation code, event id)'s first index in the batch, and for each repeat
    inside the batch, the index of its first occurrence (it answers like that one)."""
    first_index: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for i, event in enumerate(events):
        key = (event.activation_code, event.event_id)
        if key in first_index:
            repeats[i] = first_index[key]
        else:
            first_index[key] = i
    return first_index, repeats


async def _recorded_answers(
    session: AsyncSession, groups: Mapping[str, BatchGroup], firsts: Mapping[tuple[str, str], int]
) -> dict[tuple[int, str], Any]:
    """Log rows of event ids (the client's, unique per group) already recorded, by (group,
    event id): such an event answers with what it answered first."""
    return {
        (row.group_id, row.event_id): row
        for row in await session.execute(
            _RECORDED,
            {
                "groups": bucketed(g.id for g in groups.values()) or [0],
                "ids": bucketed(event_id for _, event_id in firsts),
            },
        )
    }


def _resolve_fresh(
    events: Sequence[IncomingEvent],
    firsts: Iterable[int],
    groups: Mapping[str, BatchGroup],
    accounts: Mapping[tuple[int, str], int],
    recorded: Mapping[tuple[int, str], Any],
    now: datetime,
    results: list[schemas.IncomingResult | Exception | None],
) -> list[FreshLead]:
    """The events this batch applies; every other first occurrence gets its answer now."""
    fresh: list[FreshLead] = []
    for i in firsts:
        resolved = _resolve(i, events[i], groups, accounts, recorded, now)
        if isinstance(resolved, FreshLead):
            fresh.append(resolved)
        else:
            results[i] = resolved
    return fresh


def _resolve(
    index: int,
    event: IncomingEvent,
    groups: Mapping[str, BatchGroup],
    accounts: Mapping[tuple[int, str], int],
    recorded: Mapping[tuple[int, str], Any],
    now: datetime,
) -> FreshLead | schemas.IncomingResult | Exception:
    """The event with its group, account and business days, or its answer: an unknown
    code, what it answered when first recorded, the group's refusal, an unknown account."""
    group = groups.get(event.activation_code)
    if group is None:
        return Unauthorized("unknown activation code", code="unknown_activation_code")
    row = recorded.get((group.id, event.event_id))
    if row is not None:
        return schemas.IncomingResult(
            event_id=event.event_id,
            is_duplicate=row.is_duplicate,
            today_incoming=row.today_after,
            total_incoming=row.total_after,
        )
    if group.refusal is not None:
        return group.refusal
    account_id = accounts.get((group.id, event.account_line_id))
    if account_id is None:
        return NotFound(
            f"account {event.account_line_id!r} not found in this group",
            code="account_not_found",
        )
    return FreshLead(
        index=index,
        event=event,
        group=group,
        account_id=account_id,
        day=business_date(event.incoming_time, group.timezone, group.reset),
        today=business_date(now, group.timezone, group.reset),
    )


# ---------------------------------------------------------------- counters and logs


@dataclass(frozen=True, slots=True)
class _Tally:
    """A batch's leads and duplicates, coalesced per group, per account, and per group or
    account and business day."""

    group_n: Counter[int]
    group_dup: Counter[int]
    account_n: Counter[int]
    account_dup: Counter[int]
    group_day: Counter[tuple[int, date]]
    group_day_dup: Counter[tuple[int, date]]
    account_day: Counter[tuple[int, date]]
    account_day_dup: Counter[tuple[int, date]]
    account_group: dict[int, int]


async def _apply_counters_and_logs(
    session: AsyncSession,
    fresh: list[FreshLead],
    results: list[schemas.IncomingResult | Exception | None],
) -> None:
    """Move the counters, write the logs, fill `results`."""
    tally = _tally(fresh)
    await _move_counters(session, tally)
    totals, todays = await _account_figures_after(session, sorted(tally.account_n), fresh)
    logs = _log_rows_and_answers(fresh, totals, todays, results)
    await write_rows(await session.connection(), RowSet(IncomingLog, logs))


def _tally(fresh: list[FreshLead]) -> _Tally:
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
    return _Tally(
        group_n,
        group_dup,
        account_n,
        account_dup,
        group_day,
        group_day_dup,
        account_day,
        account_day_dup,
        account_group,
    )


async def _move_counters(session: AsyncSession, tally: _Tally) -> None:
    """Coalesced deltas, one row per key, keys in sorted order, in one write: the groups'
    stats rows first (recalibration locks them too), so batches from any number of
    processes cannot deadlock; an account's and a day's rows belong to a group held."""
    await write_rows(
        await session.connection(),
        _totals(GroupStats, "group_id", tally.group_n, tally.group_dup),
        _totals(LineAccountStats, "line_account_id", tally.account_n, tally.account_dup),
        RowSet(
            GroupDailyStats,
            [
                {
                    "group_id": gid,
                    "business_date": day,
                    "incoming": n,
                    "duplicate_incoming": tally.group_day_dup[gid, day],
                }
                for (gid, day), n in sorted(tally.group_day.items())
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
                    "group_id": tally.account_group[aid],
                    "incoming": n,
                    "duplicate_incoming": tally.account_day_dup[aid, day],
                }
                for (aid, day), n in sorted(tally.account_day.items())
            ],
            keys=("line_account_id", "business_date"),
            increment=("incoming", "duplicate_incoming"),
        ),
    )


async def _account_figures_after(
    session: AsyncSession, ids: list[int], fresh: list[FreshLead]
) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, date], int]]:
    """The accounts' figures after this batch, read back from the rows this transaction
    holds: (total, duplicates) by account, and incoming by (account, today)."""
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
    return totals, todays


def _log_rows_and_answers(
    fresh: list[FreshLead],
    totals: Mapping[int, tuple[int, int]],
    todays: Mapping[tuple[int, date], int],
    results: list[schemas.IncomingResult | Exception | None],
) -> list[dict[str, Any]]:
    """Each event answers, and is logged, with the figures as they stood right after it,
    in batch order: the figures after the batch, less the events after it."""
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
    return logs


async def _queue_push(session: AsyncSession, hub: Hub, fresh: list[FreshLead]) -> None:
    """After commit, push each touched group's and account's figures."""
    if hub.wanted(TOPIC):
        await publish_groups(
            session,
            hub,
            sorted({item.group.id for item in fresh}),
            {item.account_id for item in fresh},
        )


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
