"""The desktop client's side of a group: who may connect (by activation code), its login
and the summary it shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.columns import utcnow
from tallyhub.core.errors import DomainError, Forbidden, Unauthorized
from tallyhub.leads import schemas
from tallyhub.leads.models import Group
from tallyhub.leads.service.groups import with_stats


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
