"""A group's accounts: the admin's list and deletion, and what the desktop client reports
about them (the account list it syncs, an account's online status). Every writer of a
group's account counters row-locks the group's stats row first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.errors import BadRequest, Conflict, NotFound
from tallyhub.core.realtime import Hub
from tallyhub.leads import schemas
from tallyhub.leads.models import (
    Group,
    GroupStats,
    LineAccount,
    LineAccountDailyStats,
    LineAccountStats,
)
from tallyhub.leads.service.groups import group_today
from tallyhub.leads.service.live import publish_group

_ACCOUNT_COUNTERS = ("total_accounts", "online_accounts", "line_accounts", "line_business_accounts")


async def list_accounts(session: AsyncSession, group: Group) -> list[schemas.AccountWithStats]:
    """Online first, then by total incoming, highest first."""
    today = group_today(group)
    rows = await session.execute(
        select(
            LineAccount,
            LineAccountStats.total_incoming,
            LineAccountStats.duplicate_incoming,
            LineAccountDailyStats.incoming,
        )
        .outerjoin(LineAccountStats, LineAccountStats.line_account_id == LineAccount.id)
        .outerjoin(
            LineAccountDailyStats,
            (LineAccountDailyStats.line_account_id == LineAccount.id)
            & (LineAccountDailyStats.business_date == today),
        )
        .where(LineAccount.group_id == group.id, LineAccount.deleted_at.is_(None))
        .order_by(
            (LineAccount.online_status == "online").desc(),
            func.coalesce(LineAccountStats.total_incoming, 0).desc(),
            LineAccount.id,
        )
    )
    return [
        schemas.AccountWithStats(
            id=a.id,
            group_id=a.group_id,
            line_id=a.line_id,
            display_name=a.display_name,
            platform_type=a.platform_type,
            online_status=a.online_status,
            last_online_time=a.last_online_time,
            created_at=a.created_at,
            total_incoming=total or 0,
            duplicate_incoming=dup or 0,
            today_incoming=day or 0,
        )
        for a, total, dup, day in rows
    ]


async def delete_account(
    session: AsyncSession, hub: Hub, principal: Principal, account_id: int
) -> None:
    account = await session.scalar(
        select(LineAccount)
        .join(Group, Group.id == LineAccount.group_id)
        .where(
            LineAccount.id == account_id,
            LineAccount.deleted_at.is_(None),
            Group.deleted_at.is_(None),
            principal.visible(Group.owner_id),
        )
    )
    if account is None:
        raise NotFound(f"account {account_id} not found", code="account_not_found")
    await lock_group_stats(session, account.group_id)
    # Conditional: only the transaction that really deletes it moves the counters.
    deleted = await session.execute(
        update(LineAccount)
        .where(LineAccount.id == account.id, LineAccount.deleted_at.is_(None))
        .values(deleted_at=utcnow(), deletion_mark=account.id)
    )
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"account {account_id} not found", code="account_not_found")
    deltas = _no_account_moves()
    _count_account(deltas, account.platform_type, account.online_status == "online", -1)
    await _move_account_counters(session, account.group_id, deltas)
    await publish_group(session, hub, account.group_id, [account.id])


async def lock_group_stats(session: AsyncSession, group_id: int) -> GroupStats:
    """Row-lock the group's stats so account changes in this group are serialized."""
    stats = await session.scalar(
        select(GroupStats).where(GroupStats.group_id == group_id).with_for_update()
    )
    if stats is None:
        raise NotFound(f"group {group_id} has no stats row", code="group_not_found")
    return stats


def _no_account_moves() -> dict[str, int]:
    return dict.fromkeys(_ACCOUNT_COUNTERS, 0)


def _platform_field(platform: str) -> str:
    return "line_accounts" if platform == "line" else "line_business_accounts"


def _count_account(deltas: dict[str, int], platform: str, online: bool, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) one account in the group's account counters."""
    deltas["total_accounts"] += sign
    deltas[_platform_field(platform)] += sign
    deltas["online_accounts"] += sign * online


async def _move_account_counters(
    session: AsyncSession, group_id: int, deltas: Mapping[str, int]
) -> None:
    """The counters that moved, in one atomic statement; none when nothing moved."""
    moved = {name: getattr(GroupStats, name) + n for name, n in deltas.items() if n}
    if moved:
        await session.execute(
            update(GroupStats).where(GroupStats.group_id == group_id).values(moved)
        )


async def sync_accounts(
    session: AsyncSession, hub: Hub, group: Group, reports: Sequence[schemas.AccountReport]
) -> schemas.AccountSyncResult:
    """Create new accounts and apply changed fields, all or nothing."""
    line_ids = _reported_line_ids(reports)
    stats = await lock_group_stats(session, group.id)
    accounts_before = stats.total_accounts
    known = await _live_accounts(session, group.id, line_ids)
    new = [r for r in reports if r.line_id not in known]
    _check_account_limit(group, accounts_before, len(new))
    now = utcnow()
    deltas = _no_account_moves()
    _add_accounts(session, group.id, new, now, deltas)
    touched = _apply_reported_changes(reports, known, now, deltas)
    updated = len(touched)
    await session.flush()
    if new:
        touched += await _open_account_stats(session, group.id, new)
    await _move_account_counters(session, group.id, deltas)
    await session.flush()
    if new or updated:
        await publish_group(session, hub, group.id, touched)
    return schemas.AccountSyncResult(
        created=len(new),
        updated=updated,
        unchanged=len(reports) - len(new) - updated,
        total_accounts=accounts_before + deltas["total_accounts"],
    )


def _reported_line_ids(reports: Sequence[schemas.AccountReport]) -> set[str]:
    """The report's line ids; a report naming an account twice is refused whole."""
    seen: set[str] = set()
    for report in reports:
        if report.line_id in seen:
            raise BadRequest(f"line_id {report.line_id!r} appears twice", code="duplicate_line_id")
        seen.add(report.line_id)
    return seen


async def _live_accounts(
    session: AsyncSession, group_id: int, line_ids: set[str]
) -> dict[str, LineAccount]:
    """The group's (not deleted) accounts among these line ids, by line id."""
    return {
        a.line_id: a
        for a in await session.scalars(
            select(LineAccount).where(
                LineAccount.group_id == group_id,
                LineAccount.deleted_at.is_(None),
                LineAccount.line_id.in_(line_ids),
            )
        )
    }


def _check_account_limit(group: Group, accounts_before: int, adding: int) -> None:
    if group.account_limit is not None and accounts_before + adding > group.account_limit:
        raise Conflict(
            f"account_limit is {group.account_limit}: the group has {accounts_before} "
            f"accounts and this report adds {adding}",
            code="account_limit_exceeded",
        )


def _add_accounts(
    session: AsyncSession,
    group_id: int,
    new: Sequence[schemas.AccountReport],
    now: datetime,
    deltas: dict[str, int],
) -> None:
    for report in new:
        online = report.online_status == "online"
        session.add(
            LineAccount(
                group_id=group_id,
                line_id=report.line_id,
                display_name=report.display_name,
                platform_type=report.platform_type,
                online_status=report.online_status,
                last_online_time=now if online else None,
            )
        )
        _count_account(deltas, report.platform_type, online, 1)


def _apply_reported_changes(
    reports: Sequence[schemas.AccountReport],
    known: Mapping[str, LineAccount],
    now: datetime,
    deltas: dict[str, int],
) -> list[int]:
    """Apply each known account's reported fields; the ids of the accounts that changed."""
    changed: list[int] = []
    for report in reports:
        account = known.get(report.line_id)
        if account is not None and _take_report(account, report, now, deltas):
            changed.append(account.id)
    return changed


def _take_report(
    account: LineAccount, report: schemas.AccountReport, now: datetime, deltas: dict[str, int]
) -> bool:
    """Copy what the report changes onto the account, moving the counters; whether any did."""
    changed = False
    if report.display_name is not None and report.display_name != account.display_name:
        account.display_name, changed = report.display_name, True
    if report.platform_type != account.platform_type:
        deltas[_platform_field(account.platform_type)] -= 1
        deltas[_platform_field(report.platform_type)] += 1
        account.platform_type, changed = report.platform_type, True
    if report.online_status != account.online_status:
        deltas["online_accounts"] += 1 if report.online_status == "online" else -1
        if report.online_status == "online":
            account.last_online_time = now
        account.online_status, changed = report.online_status, True
    return changed


async def _open_account_stats(
    session: AsyncSession, group_id: int, new: Sequence[schemas.AccountReport]
) -> list[int]:
    """Give each just-created account its stats row; their ids."""
    ids = list(
        await session.scalars(
            select(LineAccount.id).where(
                LineAccount.group_id == group_id,
                LineAccount.deleted_at.is_(None),
                LineAccount.line_id.in_([r.line_id for r in new]),
            )
        )
    )
    session.add_all(
        LineAccountStats(
            line_account_id=aid, group_id=group_id, total_incoming=0, duplicate_incoming=0
        )
        for aid in ids
    )
    return ids


async def change_status(
    session: AsyncSession, hub: Hub, group: Group, line_id: str, status: str
) -> schemas.StatusChangeResult:
    """Counters move only when the status really changes: the UPDATE is conditional on
    the old status, so of two simultaneous identical reports only one changes a row."""
    account_id = await session.scalar(
        select(LineAccount.id).where(
            LineAccount.group_id == group.id,
            LineAccount.line_id == line_id,
            LineAccount.deleted_at.is_(None),
        )
    )
    if account_id is None:
        raise NotFound(f"account {line_id!r} not found in this group", code="account_not_found")
    # The group's stats row first, as every writer of this group's counters does: an
    # incoming batch holds it while its log rows take foreign-key locks on the account.
    await lock_group_stats(session, group.id)
    values: dict[str, Any] = {"online_status": status}
    if status == "online":
        values["last_online_time"] = utcnow()
    result = await session.execute(
        update(LineAccount)
        .where(
            LineAccount.id == account_id,
            LineAccount.online_status != status,
            LineAccount.deleted_at.is_(None),
        )
        .values(values)
    )
    changed = result.rowcount == 1  # type: ignore[attr-defined]
    if changed:
        step = 1 if status == "online" else -1
        await _move_account_counters(session, group.id, {"online_accounts": step})
        await publish_group(session, hub, group.id, [account_id])
    online = await session.scalar(
        select(GroupStats.online_accounts).where(GroupStats.group_id == group.id)
    )
    return schemas.StatusChangeResult(
        line_id=line_id,
        online_status=status,
        changed=changed,
        online_accounts=online or 0,
    )
