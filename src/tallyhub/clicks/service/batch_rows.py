"""The plain rows a click batch writes (clicks.py, one_statement.py): its interaction
logs and messages, and the campaign and day counters it moves."""

from __future__ import annotations

from collections import Counter
from datetime import date

from tallyhub.clicks.models import Campaign, CampaignDailyStats, InteractionLog, Message
from tallyhub.clicks.service.agents import DIRECT
from tallyhub.clicks.service.events import FreshClick
from tallyhub.clicks.service.summaries import table_of
from tallyhub.core.bulk import RowSet

CAMPAIGNS = table_of(Campaign)

# ---------------------------------------------------------------- messages and logs


def message_rows(people: list[FreshClick], member_ids: dict[str, int]) -> RowSet:
    return RowSet(
        Message,
        [
            {
                "member_id": member_ids[item.event.line_id],
                "campaign_id": item.event.campaign_id,
                "direction": "incoming",
                "message_type": "text",
                "content": {
                    "event": "campaign_click",
                    "campaign_id": item.event.campaign_id,
                    "source_campaign_id": item.event.source_campaign_id,
                    "target": item.event.target,
                    "tags": list(item.event.tags),
                },
                "event_id": item.event.event_id,
                "created_at": item.event.triggered_at,
            }
            for item in people
            if item.event.line_id
        ],
    )


def log_rows(fresh: list[FreshClick]) -> RowSet:
    return RowSet(
        InteractionLog,
        [
            {
                "event_id": item.event.event_id,
                "line_id": item.event.line_id,
                "campaign_id": item.event.campaign_id,
                "source_campaign_id": item.event.source_campaign_id,
                "interaction_type": item.event.interaction_type,
                "interaction_value": item.event.target,
                "tags": ",".join(item.event.tags),
                "triggered_at": item.event.triggered_at,
                "business_date": item.day,
                "user_agent": item.event.user_agent,
                "counted": item.counted,
                "referrer_host": (None if item.agent is None else item.event.referrer or DIRECT),
            }
            for item in fresh
        ],
    )


# ---------------------------------------------------------------- the hot rows, last


def daily_rows(people: list[FreshClick]) -> RowSet:
    per_day: Counter[tuple[int, date]] = Counter()
    for item in people:
        per_day[item.event.campaign_id, item.day] += 1
    return RowSet(
        CampaignDailyStats,
        [
            {"campaign_id": cid, "business_date": day, "clicks": n}
            for (cid, day), n in sorted(per_day.items())
        ],
        keys=("campaign_id", "business_date"),
        increment=("clicks",),
    )


def campaign_rows(fresh: list[FreshClick], new_users: Counter[int]) -> RowSet:
    """Every campaign of the batch: its clicks that count, its new users and its bots'
    clicks kept out of the counts."""
    counted: Counter[int] = Counter()
    bots: Counter[int] = Counter()
    for item in fresh:
        (counted if item.counted else bots)[item.event.campaign_id] += 1
    return RowSet(
        CAMPAIGNS,
        [
            {
                "id": cid,
                "clicked_count": counted[cid],
                "unique_users": new_users.get(cid, 0),
                "bot_clicks": bots[cid],
            }
            for cid in sorted(counted.keys() | bots.keys())
        ],
        keys=("id",),
        increment=("clicked_count", "unique_users", "bot_clicks"),
        update=True,
    )
