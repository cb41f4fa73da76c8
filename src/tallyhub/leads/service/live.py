"""What the hub pushes live on the leads topic: a group's figures and its accounts' figures,
as the transaction that changed them sees them, published only after it commits."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.columns import utcnow
from tallyhub.core.db import after_commit
from tallyhub.core.realtime import Hub
from tallyhub.leads.models import Group, LineAccount, LineAccountDailyStats, LineAccountStats
from tallyhub.leads.service.groups import group_today, with_stats

TOPIC = "leads"


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
                # its settings too, so an open page shows a change made elsewhere
                "remark",
                "timezone",
                "reset_time",
                "dedup_scope",
                "account_limit",
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
    await publish_groups(session, hub, [group_id], account_ids)


async def publish_groups(
    session: AsyncSession, hub: Hub, group_ids: Iterable[int], account_ids: Collection[int]
) -> None:
    """Like `publish_group`, for several groups: each group's figures, in the order given,
    then the accounts'. Nothing is read when no one listens."""
    if not hub.wanted(TOPIC):
        return
    messages: list[dict[str, Any]] = []
    for group_id in group_ids:
        message = await group_message(session, group_id)
        if message is not None:
            messages.append(message)
    messages += await account_messages(session, account_ids)

    async def publish() -> None:
        for each in messages:
            await hub.publish(TOPIC, each)

    after_commit(session, publish)


async def publish_group_deleted(session: AsyncSession, hub: Hub, group: Group) -> None:
    """Queue, for after commit, that the group is gone (pages drop its row)."""
    if not hub.wanted(TOPIC):
        return
    message = {"type": "group_deleted", "group_id": group.id, "owner_id": group.owner_id}

    async def publish() -> None:
        await hub.publish(TOPIC, message)

    after_commit(session, publish)
