"""Demo data of the clicks domain: one campaign with clicks by 200 users over the last 14
days. Idempotent: event ids are fixed."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import schemas, service
from tallyhub.clicks.models import Campaign
from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.runtime import Runtime

DEMO_CAMPAIGN = "Demo · Spring sale"
DEMO_TAGS = ["spring", "vip", "coupon", "new", ""]
CLICKS = 1500


async def seed(runtime: Runtime, admin: Principal) -> dict[str, int]:
    async def ensure_campaign(session: AsyncSession) -> int:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        if campaign is None:
            campaign = await service.create_campaign(
                session,
                admin,
                schemas.CampaignCreate(
                    name=DEMO_CAMPAIGN, allowed_hosts=["shop.example.com", "*.example.org"]
                ),
                runtime.settings.timezone,
            )
        return campaign.id

    campaign_id = await runtime.db.run(ensure_campaign)
    events = _click_events(campaign_id, CLICKS)
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]

        async def apply(session: AsyncSession, chunk: list[service.ClickEvent] = chunk) -> None:
            await service.apply_clicks(session, chunk)

        await runtime.db.run(apply)
    return {"campaign_id": campaign_id, "click_events": len(events)}


def _click_events(campaign_id: int, count: int) -> list[service.ClickEvent]:
    rng = random.Random(20261123)
    now = utcnow()
    events = [
        service.ClickEvent(
            event_id=f"demo-click-{n:06d}",
            campaign_id=campaign_id,
            line_id=f"Udemo{rng.randrange(200):04d}",
            source_campaign_id=rng.choice([0, 0, 100, 200]),
            interaction_type=rng.choice(["image_click", "button_url", "rich_menu"]),
            target=rng.choice(["https://shop.example.com/sale", "https://blog.example.org/"]),
            tags=tuple(service.normalize_tags(rng.choice(DEMO_TAGS))),
            triggered_at=now - timedelta(seconds=rng.randrange(14 * 86400)),
        )
        for n in range(count)
    ]
    events.sort(key=lambda e: e.triggered_at)
    return events
