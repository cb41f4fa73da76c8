"""Demo data of the clicks domain: one campaign with clicks by 200 users over the last 14
days, from phones and desktops of several kinds and referrers, and the link-preview
fetches of LINE, Telegram and Facebook that are kept out of its counts. Idempotent: event
ids are fixed."""

from __future__ import annotations

import random
from dataclasses import replace
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
BOT_CLICKS = 120
# People: LINE's in-app browser most of all, then phones' and desktops' own browsers.
PEOPLE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36"
    " Line/14.8.1/IAB",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323d) NetType/WIFI"
    " Language/zh_CN",
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.1 Safari/605.1.15",
)
REFERRERS = (None, None, None, "line.me", "line.me", "t.co", "www.google.com", "shop.example.com")
# Link-preview fetchers: LINE's, Telegram's and Facebook's.
PREVIEWS = (
    "facebookexternalhit/1.1;line-poker/1.0",
    "facebookexternalhit/1.1;line-poker/1.0",
    "TelegramBot (like TwitterBot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
)


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
    events = sorted(
        _click_events(campaign_id, CLICKS) + _preview_events(campaign_id, BOT_CLICKS),
        key=lambda e: e.triggered_at,
    )
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]

        async def apply(session: AsyncSession, chunk: list[service.ClickEvent] = chunk) -> None:
            await service.apply_clicks(session, chunk)

        await runtime.db.run(apply)
    return {
        "campaign_id": campaign_id,
        "click_events": CLICKS,
        "bot_click_events": BOT_CLICKS,
    }


def _click_events(campaign_id: int, count: int, seed: int = 20261123) -> list[service.ClickEvent]:
    rng = random.Random(seed)
    now = utcnow()
    return [
        service.ClickEvent(
            event_id=f"demo-click-{n:06d}",
            campaign_id=campaign_id,
            line_id=f"Udemo{rng.randrange(200):04d}",
            source_campaign_id=rng.choice([0, 0, 100, 200]),
            interaction_type=rng.choice(["image_click", "button_url", "rich_menu"]),
            target=rng.choice(["https://shop.example.com/sale", "https://blog.example.org/"]),
            tags=tuple(service.normalize_tags(rng.choice(DEMO_TAGS))),
            triggered_at=now - timedelta(seconds=rng.randrange(14 * 86400)),
            user_agent=rng.choice(PEOPLE),
            referrer=rng.choice(REFERRERS),
        )
        for n in range(count)
    ]


def _preview_events(campaign_id: int, count: int) -> list[service.ClickEvent]:
    """A chat app fetching a link sent to a user, to show its preview: a user's click of
    the sale page, fetched by a preview bot (no tags, no Referer)."""
    seed = 20261206
    rng = random.Random(seed + 1)  # the fetchers, apart from the clicks' own draws
    return [
        replace(
            event,
            event_id=f"demo-preview-{n:06d}",
            source_campaign_id=0,
            interaction_type="image_click",
            target="https://shop.example.com/sale",
            tags=(),
            user_agent=rng.choice(PREVIEWS),
            referrer=None,
        )
        for n, event in enumerate(_click_events(campaign_id, count, seed))
    ]
