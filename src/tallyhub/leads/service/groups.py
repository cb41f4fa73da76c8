"""Groups and their accounts: admin reads and writes, and the client's account reports."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import business_date, parse_reset_time
from tallyhub.core.db import after_commit
from tallyhub.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
)
from tallyhub.core.pagination import PageParams
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

TOPIC = "leads"


def new_activation_code() -> str:
    return secrets.token_urlsafe(18)  # 24 url-safe characters


def group_today(group: Group, now: datetime | None = None) -> date:
    return business_date(now or utcnow(), group.timezone, parse_reset_time(group.reset_time))


# ---------------------------------------------------------------- admin: groups


async def create_group(
    session: AsyncSession, principal: Principal, data: schemas.GroupCreate, default_tz: str
) -> Group:
    owner_id = principal.owner_for(data.owner_id, "group")
    group = Group(
        activation_code=new_activation_code(),
        remark=data.remark,
        description=data.description,
        is_active=data.is_active,
        dedup_scope=data.dedup_scope,
        reset_time=data.reset_time,
        timezone=data.timezone or default_tz,
        account_limit=data.account_limit,
        owner_id=owner_id,
    )
    session.add(group)
    await session.flush()
    session.add(
        GroupStats(
            group_id=group.id,
            total_accounts=0,
            online_accounts=0,
            line_accounts=0,
            line_business_accounts=0,
            total_incoming=0,
            duplicate_incoming=0,
        )
    )
    await session.flush()
    return group


async def get_group(session: AsyncSession, principal: Principal, group_id: int) -> Group:
    """The live group if this principal may see it; otherwise 404 (never reveal it exists)."""
    group = await session.scalar(
        select(Group).where(
            Group.id == group_id, Group.deleted_at.is_(None), principal.visible(Group.owner_id)
        )
    )
    if group is None:
        raise NotFound(f"group {group_id} not found", code="group_not_found")
    return group


async def _today_by_group(session: AsyncSession, groups: Sequence[Group]) -> dict[int, int]:
    """Today's incoming for each group, where today is the group's own business date."""
    now = utcnow()
    wanted = {g.id: group_today(g, now) for g in groups}
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            GroupDailyStats.group_id, GroupDailyStats.business_date, GroupDailyStats.incoming
        ).where(
            GroupDailyStats.group_id.in_(wanted),
            GroupDailyStats.business_date.in_(set(wanted.values())),
        )
    )
    return {gid: n for gid, day, n in rows if wanted.get(gid) == day}


_STAT_FIELDS = (
    "total_accounts",
    "online_accounts",
    "line_accounts",
    "line_business_accounts",
    "total_incoming",
    "duplicate_incoming",
)
_GROUP_FIELDS = tuple(schemas.Group.model_fields)


def _with_stats(
    group: Group, stats: GroupStats | None, today_incoming: int, today: date
) -> schemas.GroupWithStats:
    fields: dict[str, Any] = {name: getattr(group, name) for name in _GROUP_FIELDS}
    fields.update({name: getattr(stats, name) if stats else 0 for name in _STAT_FIELDS})
    return schemas.GroupWithStats(**fields, today_incoming=today_incoming, business_date=today)


async def with_stats(
    session: AsyncSession, groups: Sequence[Group]
) -> list[schemas.GroupWithStats]:
    if not groups:
        return []
    stats = {
        row.group_id: row
        for row in await session.scalars(
            select(GroupStats).where(GroupStats.group_id.in_([g.id for g in groups]))
        )
    }
    return await _assemble(session, [(g, stats.get(g.id)) for g in groups])


async def _assemble(
    session: AsyncSession, rows: Sequence[tuple[Group, GroupStats | None]]
) -> list[schemas.GroupWithStats]:
    today = await _today_by_group(session, [group for group, _ in rows])
    now = utcnow()
    return [
        _with_stats(group, stats, today.get(group.id, 0), group_today(group, now))
        for group, stats in rows
    ]


async def list_groups(
    session: AsyncSession,
    principal: Principal,
    paging: PageParams,
    search: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[schemas.GroupWithStats], int]:
    """One page of groups with their stats rows, newest first, and the total. A search
    scans the groups anyway, so it counts in the same scan (a window count); the plain
    list counts separately, so its page stays an index scan that stops after one page."""
    filters: list[Any] = [Group.deleted_at.is_(None), principal.visible(Group.owner_id)]
    if search:
        needle = search.lower()
        filters.append(
            or_(
                func.lower(Group.remark).contains(needle, autoescape=True),
                func.lower(Group.description).contains(needle, autoescape=True),
                Group.activation_code == search,
            )
        )
    if is_active is not None:
        filters.append(Group.is_active.is_(is_active))
    columns: list[Any] = [Group, GroupStats]
    if search:
        columns.append(func.count().over().label("total"))
    rows = (
        await session.execute(
            select(*columns)
            .outerjoin(GroupStats, GroupStats.group_id == Group.id)
            .where(*filters)
            .order_by(Group.created_at.desc(), Group.id.desc())
            .offset(paging.offset)
            .limit(paging.page_size)
        )
    ).all()
    if search and rows:
        total = rows[0].total
    else:  # the plain list, or past the last page (no row carries the window count)
        total = await session.scalar(select(func.count()).select_from(Group).where(*filters))
    page = await _assemble(session, [(row.Group, row.GroupStats) for row in rows])
    return page, total or 0


async def update_group(
    session: AsyncSession, principal: Principal, group_id: int, data: schemas.GroupUpdate
) -> Group:
    group = await get_group(session, principal, group_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field != "account_limit":
            continue
        setattr(group, field, value)
    await session.flush()
    return group


async def delete_group(session: AsyncSession, principal: Principal, group_id: int) -> None:
    group = await get_group(session, principal, group_id)
    group.deleted_at = utcnow()
    group.is_active = False
    await session.flush()


async def rotate_activation_code(
    session: AsyncSession, principal: Principal, group_id: int
) -> Group:
    group = await get_group(session, principal, group_id)
    group.activation_code = new_activation_code()
    await session.flush()
    return group


MAX_DAILY_DAYS = 3660


async def daily(
    session: AsyncSession, group: Group, start: date | None, end: date | None
) -> list[schemas.GroupDaily]:
    """One row per business day from `start` (default: the group's first day with leads)
    to `end` (default: today), days without leads included as zeros."""
    end = end or group_today(group)
    rows = {
        r.business_date: r
        for r in await session.scalars(
            select(GroupDailyStats).where(
                GroupDailyStats.group_id == group.id,
                GroupDailyStats.business_date <= end,
                *([GroupDailyStats.business_date >= start] if start else []),
            )
        )
    }
    start = start or min(rows, default=end)
    if (end - start).days >= MAX_DAILY_DAYS:
        raise BadRequest(
            f"at most {MAX_DAILY_DAYS} days at once; ask for a shorter from..to",
            code="bad_day_range",
        )
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [
        schemas.GroupDaily(
            business_date=day,
            incoming=rows[day].incoming if day in rows else 0,
            duplicate_incoming=rows[day].duplicate_incoming if day in rows else 0,
        )
        for day in days
    ]


async def incoming_page(
    session: AsyncSession, group: Group, paging: PageParams
) -> tuple[list[IncomingLog], int]:
    total = (
        await session.scalar(
            select(GroupStats.total_incoming).where(GroupStats.group_id == group.id)
        )
        or 0
    )
    rows = await session.scalars(
        select(IncomingLog)
        .where(IncomingLog.group_id == group.id)
        .order_by(IncomingLog.id.desc())
        .offset(paging.offset)
        .limit(paging.page_size)
    )
    return list(rows), total


# ---------------------------------------------------------------- admin: accounts


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
    await _move_account_counters(
        session, account.group_id, account.platform_type, account.online_status == "online", -1
    )
    await publish_group(session, hub, account.group_id, [account.id])


# ---------------------------------------------------------------- the desktop client


async def authenticate_client(session: AsyncSession, code: str | None) -> Group:
    if not code:
        raise Unauthorized("missing X-Activation-Code header", code="missing_activation_code")
    group = await session.scalar(select(Group).where(Group.activation_code == code))
    if group is None:
        raise Unauthorized("unknown activation code", code="unknown_activation_code")
    check_client_group(group)
    return group


def client_refusal(is_active: bool, deleted_at: datetime | None) -> DomainError | None:
    """Why a desktop client of this group is refused, or None."""
    if deleted_at is not None:
        return Forbidden("this group was deleted", code="group_deleted")
    if not is_active:
        return Forbidden("this group is not active", code="group_inactive")
    return None


def check_client_group(group: Group) -> None:
    refusal = client_refusal(group.is_active, group.deleted_at)
    if refusal is not None:
        raise refusal


async def client_summary(session: AsyncSession, group: Group) -> schemas.ClientSummary:
    (stats,) = await with_stats(session, [group])
    return schemas.ClientSummary(
        group_id=group.id,
        remark=group.remark,
        dedup_scope=group.dedup_scope,
        reset_time=group.reset_time,
        timezone=group.timezone,
        account_limit=group.account_limit,
        business_date=stats.business_date,
        total_accounts=stats.total_accounts,
        online_accounts=stats.online_accounts,
        today_incoming=stats.today_incoming,
        total_incoming=stats.total_incoming,
        duplicate_incoming=stats.duplicate_incoming,
    )


async def login(session: AsyncSession, group: Group) -> schemas.ClientSummary:
    group.last_login_at = utcnow()
    await session.flush()
    return await client_summary(session, group)


async def lock_group_stats(session: AsyncSession, group_id: int) -> GroupStats:
    """Row-lock the group's stats so account changes in this group are serialized."""
    stats = await session.scalar(
        select(GroupStats).where(GroupStats.group_id == group_id).with_for_update()
    )
    if stats is None:
        raise NotFound(f"group {group_id} has no stats row", code="group_not_found")
    return stats


async def _move_account_counters(
    session: AsyncSession, group_id: int, platform: str, online: bool, sign: int
) -> None:
    values: dict[str, Any] = {"total_accounts": GroupStats.total_accounts + sign}
    if platform == "line":
        values["line_accounts"] = GroupStats.line_accounts + sign
    else:
        values["line_business_accounts"] = GroupStats.line_business_accounts + sign
    if online:
        values["online_accounts"] = GroupStats.online_accounts + sign
    await session.execute(update(GroupStats).where(GroupStats.group_id == group_id).values(values))


async def sync_accounts(
    session: AsyncSession, hub: Hub, group: Group, reports: Sequence[schemas.AccountReport]
) -> schemas.AccountSyncResult:
    """Create new accounts and apply changed fields, all or nothing."""
    seen: set[str] = set()
    for report in reports:
        if report.line_id in seen:
            raise BadRequest(f"line_id {report.line_id!r} appears twice", code="duplicate_line_id")
        seen.add(report.line_id)
    stats = await lock_group_stats(session, group.id)
    accounts_before = stats.total_accounts
    existing = {
        a.line_id: a
        for a in await session.scalars(
            select(LineAccount).where(
                LineAccount.group_id == group.id,
                LineAccount.deleted_at.is_(None),
                LineAccount.line_id.in_(seen),
            )
        )
    }
    new = [r for r in reports if r.line_id not in existing]
    if group.account_limit is not None and accounts_before + len(new) > group.account_limit:
        raise Conflict(
            f"account_limit is {group.account_limit}: the group has {accounts_before} "
            f"accounts and this report adds {len(new)}",
            code="account_limit_exceeded",
        )
    now = utcnow()
    deltas = {
        "total_accounts": 0,
        "online_accounts": 0,
        "line_accounts": 0,
        "line_business_accounts": 0,
    }
    created = updated = 0
    touched: list[int] = []
    for report in new:
        account = LineAccount(
            group_id=group.id,
            line_id=report.line_id,
            display_name=report.display_name,
            platform_type=report.platform_type,
            online_status=report.online_status,
            last_online_time=now if report.online_status == "online" else None,
        )
        session.add(account)
        deltas["total_accounts"] += 1
        deltas[_platform_field(report.platform_type)] += 1
        deltas["online_accounts"] += report.online_status == "online"
        created += 1
    for report in reports:
        current = existing.get(report.line_id)
        if current is None:
            continue
        account = current
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
        updated += changed
        if changed:
            touched.append(account.id)
    await session.flush()
    if created:
        accounts = list(
            await session.scalars(
                select(LineAccount.id).where(
                    LineAccount.group_id == group.id,
                    LineAccount.deleted_at.is_(None),
                    LineAccount.line_id.in_([r.line_id for r in new]),
                )
            )
        )
        touched.extend(accounts)
        session.add_all(
            LineAccountStats(
                line_account_id=aid, group_id=group.id, total_incoming=0, duplicate_incoming=0
            )
            for aid in accounts
        )
    if any(deltas.values()):
        await session.execute(
            update(GroupStats)
            .where(GroupStats.group_id == group.id)
            .values({name: getattr(GroupStats, name) + n for name, n in deltas.items() if n})
        )
    await session.flush()
    if created or updated:
        await publish_group(session, hub, group.id, touched)
    return schemas.AccountSyncResult(
        created=created,
        updated=updated,
        unchanged=len(reports) - created - updated,
        total_accounts=accounts_before + deltas["total_accounts"],
    )


def _platform_field(platform: str) -> str:
    return "line_accounts" if platform == "line" else "line_business_accounts"


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
        await session.execute(
            update(GroupStats)
            .where(GroupStats.group_id == group.id)
            .values(online_accounts=GroupStats.online_accounts + step)
        )
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


# ---------------------------------------------------------------- live push


async def group_message(session: AsyncSession, group_id: int) -> dict[str, Any] | None:
    group = await session.get(Group, group_id)
    if group is None:
        return None
    (stats,) = await with_stats(session, [group])
    return {
        "type": "group_stats",
        "group_id": group.id,
        "owner_id": group.owner_id,
        **stats.model_dump(
            mode="json",
            include={
                "total_accounts",
                "online_accounts",
                "line_accounts",
                "line_business_accounts",
                "today_incoming",
                "total_incoming",
                "duplicate_incoming",
                "business_date",
            },
        ),
    }


async def account_messages(
    session: AsyncSession, account_ids: Collection[int]
) -> list[dict[str, Any]]:
    """`account_stats` messages for these accounts, figures as this transaction sees them
    (deleted accounts included, marked as such)."""
    if not account_ids:
        return []
    rows = (
        await session.execute(
            select(LineAccount, Group, LineAccountStats)
            .join(Group, Group.id == LineAccount.group_id)
            .outerjoin(LineAccountStats, LineAccountStats.line_account_id == LineAccount.id)
            .where(LineAccount.id.in_(sorted(account_ids)))
            .order_by(LineAccount.id)
        )
    ).all()
    now = utcnow()
    today = {account.id: group_today(group, now) for account, group, _ in rows}
    todays = {
        (aid, day): n
        for aid, day, n in await session.execute(
            select(
                LineAccountDailyStats.line_account_id,
                LineAccountDailyStats.business_date,
                LineAccountDailyStats.incoming,
            ).where(
                LineAccountDailyStats.line_account_id.in_(sorted(today)),
                LineAccountDailyStats.business_date.in_(sorted(set(today.values()))),
            )
        )
    }
    return [
        {
            "type": "account_stats",
            "group_id": group.id,
            "owner_id": group.owner_id,
            "line_account_id": account.id,
            "line_id": account.line_id,
            "online_status": account.online_status,
            "platform_type": account.platform_type,
            "deleted": account.deleted_at is not None,
            "total_incoming": stats.total_incoming if stats else 0,
            "duplicate_incoming": stats.duplicate_incoming if stats else 0,
            "today_incoming": todays.get((account.id, today[account.id]), 0),
        }
        for account, group, stats in rows
    ]


async def publish_group(
    session: AsyncSession, hub: Hub, group_id: int, account_ids: Collection[int] = ()
) -> None:
    """Queue the group's figures, and those of the accounts that changed, as committed by
    this transaction, for after commit."""
    if not hub.wanted(TOPIC):
        return
    message = await group_message(session, group_id)
    messages = ([message] if message else []) + await account_messages(session, account_ids)

    async def publish() -> None:
        for each in messages:
            await hub.publish(TOPIC, each)

    after_commit(session, publish)
