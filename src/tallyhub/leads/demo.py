"""Demo data of the leads domain: a few groups with accounts in three time zones, and a
few thousand incoming leads over the last 14 days. Idempotent: event ids are fixed."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.runtime import Runtime
from tallyhub.leads import schemas, service
from tallyhub.leads.models import Group

DEMO_GROUPS = [
    ("Demo · Tokyo team", "Asia/Tokyo", "06:00", "current", 8),
    ("Demo · Shanghai team", "Asia/Shanghai", "00:00", "global", 6),
    ("Demo · Bangkok night shift", "Asia/Bangkok", "20:00", "global", 5),
]
INCOMING = 3000


async def seed(runtime: Runtime, admin: Principal) -> dict[str, int]:
    codes = [await _ensure_group(runtime, admin, *group) for group in DEMO_GROUPS]
    events = _incoming_events(codes, INCOMING)
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]

        async def apply(session: AsyncSession, chunk: list[service.IncomingEvent] = chunk) -> None:
            await service.apply_incoming(session, runtime.hub, chunk)

        await runtime.db.run(apply)
    return {"groups": len(codes), "incoming_events": len(events)}


async def _ensure_group(
    runtime: Runtime,
    admin: Principal,
    remark: str,
    tz: str,
    reset: str,
    scope: str,
    n_accounts: int,
) -> tuple[str, list[str]]:
    """The group (created once) with its accounts; its activation code and LINE ids."""
    prefix = remark.split("·")[1].strip().split()[0].lower()
    line_ids = [f"{prefix}-{i:02d}" for i in range(n_accounts)]
    accounts = [
        schemas.AccountReport(
            line_id=line_id,
            display_name=f"Account {line_id}",
            platform_type="line_business" if i % 3 == 0 else "line",
            online_status="online" if i % 4 else "offline",
        )
        for i, line_id in enumerate(line_ids)
    ]

    async def ensure(session: AsyncSession) -> str:
        group = await session.scalar(
            select(Group).where(Group.remark == remark, Group.deleted_at.is_(None))
        )
        if group is None:
            create = schemas.GroupCreate(
                remark=remark,
                timezone=tz,
                reset_time=reset,
                dedup_scope=scope,
                description="Demo data",
            )
            group = await service.create_group(session, admin, create, runtime.settings.timezone)
        await service.sync_accounts(session, runtime.hub, group, accounts)
        return group.activation_code

    return await runtime.db.run(ensure), line_ids


def _incoming_events(codes: list[tuple[str, list[str]]], count: int) -> list[service.IncomingEvent]:
    """`count` leads spread over the groups and the last 14 days, oldest first."""
    rng = random.Random(20261122)
    now = utcnow()
    events = []
    for n in range(count):
        code, line_ids = codes[n % len(codes)]
        events.append(
            service.IncomingEvent(
                activation_code=code,
                account_line_id=rng.choice(line_ids),
                incoming_line_id=f"U{rng.randrange(count * 2 // 3):06d}",
                event_id=f"demo-{n:06d}",
                incoming_time=now - timedelta(seconds=rng.randrange(14 * 86400)),
                received_at=now,
            )
        )
    events.sort(key=lambda e: e.incoming_time)
    return events
