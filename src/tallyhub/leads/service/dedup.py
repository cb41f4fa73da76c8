"""New or duplicate: decided for a batch's leads by insert-or-nothing into the contact pools
(the group's and the global one), so the unique keys, not a read, say which lead came first,
whatever the number of processes writing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.leads.models import Contact, GlobalContact
from tallyhub.leads.service.events import FreshLead

_C = Contact.__table__.c
_GC = GlobalContact.__table__.c

# Built once, with expanding IN lists, like incoming's queries.
_GROUP_POOL = select(_C.group_id, _C.line_id, _C.first_event_id).where(
    _C.group_id.in_(bindparam("groups", expanding=True)),
    _C.line_id.in_(bindparam("lines", expanding=True)),
)
_GLOBAL_POOL = select(_GC.line_id, _GC.first_group_id, _GC.first_event_id).where(
    _GC.line_id.in_(bindparam("lines", expanding=True))
)


@dataclass(frozen=True, slots=True)
class _Claims:
    """For each contact key, the batch's first event with it: the one that may insert it
    into the group's pool and into the global pool."""

    in_group: dict[tuple[int, str], FreshLead]
    globally: dict[str, FreshLead]


async def decide_duplicates(session: AsyncSession, dialect: str, fresh: list[FreshLead]) -> None:
    """Insert-or-nothing into both pools (the unique keys decide), then learn which rows
    this batch inserted: from RETURNING where the dialect returns only inserted rows
    (PostgreSQL, SQLite), else by reading back `first_event_id`, which only the inserting
    event can have written. An event is new exactly when its own row went in."""
    claims = _first_claims(fresh)
    returns = dialect in ("postgresql", "sqlite")
    in_group, in_global = await _insert_contacts(session, claims, returns)
    if returns:
        new_in_group = {(gid, line) for gid, line in in_group}
        new_globally = {line for (line,) in in_global}
    else:
        new_in_group, new_globally = await _contacts_this_batch_wrote(session, claims)
    _mark_duplicates(fresh, claims, new_in_group, new_globally)


def _first_claims(fresh: list[FreshLead]) -> _Claims:
    claims = _Claims({}, {})
    for item in fresh:
        claims.in_group.setdefault((item.group.id, item.event.incoming_line_id), item)
        claims.globally.setdefault(item.event.incoming_line_id, item)
    return claims


async def _insert_contacts(
    session: AsyncSession, claims: _Claims, returns: bool
) -> list[list[tuple[Any, ...]]]:
    """Insert-or-nothing each claim into its pool, keys sorted; with `returns`, the keys of
    the rows that went in (group pool, then global pool)."""
    group_rows = [
        {
            "group_id": gid,
            "line_id": line,
            "first_event_id": item.event.event_id,
            "first_seen_at": item.event.incoming_time,
        }
        for (gid, line), item in sorted(claims.in_group.items())
    ]
    global_rows = [
        {
            "line_id": line,
            "first_event_id": item.event.event_id,
            "first_group_id": item.group.id,
            "first_seen_at": item.event.incoming_time,
        }
        for line, item in sorted(claims.globally.items())
    ]
    return await write_rows(
        await session.connection(),
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


def _claimed_by(claim: FreshLead | None, owner: str) -> bool:
    """Whether `owner` is the event of this batch that claimed the row. The read-back
    covers every group × every line of the batch, so it also meets rows of pairs the
    batch never claimed (a line that came in for another group): those are not ours."""
    return claim is not None and claim.event.event_id == owner


async def _contacts_this_batch_wrote(
    session: AsyncSession, claims: _Claims
) -> tuple[set[tuple[int, str]], set[str]]:
    """Where the insert cannot say which rows it wrote: the pool rows whose first event is
    the claiming event's, which only its own insert can have written."""
    lines = bucketed(claims.globally)
    new_in_group = {
        (gid, line)
        for gid, line, owner in await session.execute(
            _GROUP_POOL, {"groups": bucketed(g for g, _ in claims.in_group), "lines": lines}
        )
        if _claimed_by(claims.in_group.get((gid, line)), owner)
    }
    new_globally = {
        line
        for line, gid, owner in await session.execute(_GLOBAL_POOL, {"lines": lines})
        if (gid, owner) == (claims.globally[line].group.id, claims.globally[line].event.event_id)
    }
    return new_in_group, new_globally


def _mark_duplicates(
    fresh: list[FreshLead],
    claims: _Claims,
    new_in_group: set[tuple[int, str]],
    new_globally: set[str],
) -> None:
    """An event is new when it claimed its contact and its claim went in, in the pool its
    group deduplicates by; every other event is a duplicate."""
    for item in fresh:
        line = item.event.incoming_line_id
        if item.group.dedup_scope == "global":
            item.is_duplicate = not (line in new_globally and claims.globally[line] is item)
        else:
            key = (item.group.id, line)
            item.is_duplicate = not (key in new_in_group and claims.in_group[key] is item)
