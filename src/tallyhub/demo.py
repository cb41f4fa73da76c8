"""Demo data for `make run`: a demo admin, a few lead groups with accounts, a few
thousand incoming leads over the last 14 days, and a click-tracking campaign with its
clicks. Idempotent: event ids are fixed, so a second run counts nothing again."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import schemas as click_schemas
from tallyhub.clicks import service as clicks
from tallyhub.clicks.models import Campaign
from tallyhub.core.auth import Principal, Role, User, create_user
from tallyhub.core.columns import utcnow
from tallyhub.core.runtime import Runtime
from tallyhub.leads import schemas as lead_schemas
from tallyhub.leads import service as leads
from tallyhub.leads.models import Group

DEMO_GROUPS = [
    ("Demo · Tokyo team", "Asia/Tokyo", "06:00", "current", 8),
    ("Demo · Shanghai team", "Asia/Shanghai", "00:00", "global", 6),
    ("Demo · Bangkok night shift", "Asia/Bangkok", "20:00", "global", 5),
]


DEMO_CAMPAIGN = "Demo · Spring sale"
DEMO_TAGS = ["spring", "vip", "coupon", "new", ""]


async def seed(
    runtime: Runtime, *, incoming: int = 3000, click_events: int = 1500
) -> dict[str, int]:
    if runtime.settings.env == "production":
        raise RuntimeError("demo data is refused when TALLYHUB_ENV=production")
    db = runtime.db

    async def ensure_admin(session: AsyncSession) -> int:
        user = await session.scalar(select(User).where(User.username == "demo"))
        if user is None:
            user = await create_user(session, "demo", "demo", Role.admin)
        return user.id

    admin_id = await db.run(ensure_admin)
    admin = Principal(admin_id, "demo", Role.admin)
    rng = random.Random(20261122)
    codes: list[tuple[str, list[str]]] = []
    for remark, tz, reset, scope, n_accounts in DEMO_GROUPS:

        async def ensure_group(
            session: AsyncSession,
            remark: str = remark,
            tz: str = tz,
            reset: str = reset,
            scope: str = scope,
            n_accounts: int = n_accounts,
        ) -> tuple[str, list[str]]:
            group = await session.scalar(
                select(Group).where(Group.remark == remark, Group.deleted_at.is_(None))
            )
            if group is None:
                group = await leads.create_group(
                    session,
                    admin,
                    lead_schemas.GroupCreate(
                        remark=remark,
                        timezone=tz,
                        reset_time=reset,
                        dedup_scope=scope,
                        description="Demo data",
                    ),
                    runtime.settings.timezone,
                )
            line_ids = [
                f"{remark.split('·')[1].strip().split()[0].lower()}-{i:02d}"
                for i in range(n_accounts)
            ]
            await leads.sync_accounts(
                session,
                runtime.hub,
                group,
                [
                    lead_schemas.AccountReport(
                        line_id=line_id,
                        display_name=f"Account {line_id}",
                        platform_type="line_business" if i % 3 == 0 else "line",
                        online_status="online" if i % 4 else "offline",
                    )
                    for i, line_id in enumerate(line_ids)
                ],
            )
            return group.activation_code, line_ids

        codes.append(await db.run(ensure_group))

    now = utcnow()
    events = []
    for n in range(incoming):
        code, line_ids = codes[n % len(codes)]
        events.append(
            leads.IncomingEvent(
                activation_code=code,
                account_line_id=rng.choice(line_ids),
                incoming_line_id=f"U{rng.randrange(incoming * 2 // 3):06d}",
                event_id=f"demo-{n:06d}",
                incoming_time=now - timedelta(seconds=rng.randrange(14 * 86400)),
                received_at=now,
            )
        )
    events.sort(key=lambda e: e.incoming_time)
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]

        async def apply(session: AsyncSession, chunk: list[leads.IncomingEvent] = chunk) -> None:
            await leads.apply_incoming(session, runtime.hub, chunk)

        await db.run(apply)
    campaign_id = await _seed_clicks(runtime, admin, click_events)
    return {
        "groups": len(codes),
        "incoming_events": incoming,
        "campaign_id": campaign_id,
        "click_events": click_events,
    }


async def _seed_clicks(runtime: Runtime, admin: Principal, count: int) -> int:
    """One campaign with `count` clicks by 200 users over the last 14 days."""

    async def ensure_campaign(session: AsyncSession) -> int:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        if campaign is None:
            campaign = await clicks.create_campaign(
                session,
                admin,
                click_schemas.CampaignCreate(
                    name=DEMO_CAMPAIGN, allowed_hosts=["shop.example.com", "*.example.org"]
                ),
                runtime.settings.timezone,
            )
        return campaign.id

    campaign_id = await runtime.db.run(ensure_campaign)
    rng = random.Random(20261123)
    now = utcnow()
    events = sorted(
        (
            clicks.ClickEvent(
                event_id=f"demo-click-{n:06d}",
                campaign_id=campaign_id,
                line_id=f"Udemo{rng.randrange(200):04d}",
                source_campaign_id=rng.choice([0, 0, 100, 200]),
                interaction_type=rng.choice(["image_click", "button_url", "rich_menu"]),
                target=rng.choice(["https://shop.example.com/sale", "https://blog.example.org/"]),
                tags=tuple(clicks.normalize_tags(rng.choice(DEMO_TAGS))),
                triggered_at=now - timedelta(seconds=rng.randrange(14 * 86400)),
            )
            for n in range(count)
        ),
        key=lambda e: e.triggered_at,
    )
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]

        async def apply(session: AsyncSession, chunk: list[clicks.ClickEvent] = chunk) -> None:
            await clicks.apply_clicks(session, chunk)

        await runtime.db.run(apply)
    return campaign_id
