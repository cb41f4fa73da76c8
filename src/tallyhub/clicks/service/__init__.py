"""The clicks domain's logic, split by topic: a click (events) and what it must satisfy
(tracking), how a batch of clicks is written (clicks, with the per-user summaries and tag
sets in summaries), the spool for when the database cannot take them, the live recorder
(recording), the campaign cache (rules) with its local snapshot, the admin reads and
writes (campaigns), the dashboard's figures (figures), and recalibration; who sent a
click (agents) and the per-day breakdowns it moves (breakdowns, with their fold). Services
flush; the edge commits."""

from tallyhub.clicks.service.agents import Agent, classify, referrer_host
from tallyhub.clicks.service.breakdowns import fold_breakdowns
from tallyhub.clicks.service.campaigns import (
    campaign_users,
    create_campaign,
    get_campaign,
    interactions,
    list_campaigns,
    make_link,
    update_campaign,
    update_member,
    user_summaries,
)
from tallyhub.clicks.service.clicks import (
    ALREADY_RECORDED,
    RECORDED,
    Classifier,
    KnownRows,
    apply_clicks,
)
from tallyhub.clicks.service.events import ClickEvent
from tallyhub.clicks.service.figures import (
    breakdown,
    daily,
    dimension_breakdown,
    summary,
    today_clicks,
    with_today,
)
from tallyhub.clicks.service.recalibration import recalibrate
from tallyhub.clicks.service.recording import SPOOLED, ClickRecorder
from tallyhub.clicks.service.rules import CampaignRules, CampaignsUnavailable
from tallyhub.clicks.service.snapshot import CampaignRule, CampaignSnapshot, snapshot_path
from tallyhub.clicks.service.spool import ClickSpool, SpoolTarget, replay_spool, spool_directory
from tallyhub.clicks.service.summaries import tags_of
from tallyhub.clicks.service.tracking import (
    EventIds,
    Refused,
    dedup_key,
    host_allowed,
    link_key,
    normalize_tags,
    parse_target,
    sign_link,
    verify_link,
)

__all__ = [
    "ALREADY_RECORDED",
    "RECORDED",
    "SPOOLED",
    "Agent",
    "CampaignRule",
    "CampaignRules",
    "CampaignSnapshot",
    "CampaignsUnavailable",
    "Classifier",
    "ClickEvent",
    "ClickRecorder",
    "ClickSpool",
    "EventIds",
    "KnownRows",
    "Refused",
    "SpoolTarget",
    "apply_clicks",
    "breakdown",
    "campaign_users",
    "classify",
    "create_campaign",
    "daily",
    "dedup_key",
    "dimension_breakdown",
    "fold_breakdowns",
    "get_campaign",
    "host_allowed",
    "interactions",
    "link_key",
    "list_campaigns",
    "make_link",
    "normalize_tags",
    "parse_target",
    "recalibrate",
    "referrer_host",
    "replay_spool",
    "sign_link",
    "snapshot_path",
    "spool_directory",
    "summary",
    "tags_of",
    "today_clicks",
    "update_campaign",
    "update_member",
    "user_summaries",
    "verify_link",
    "with_today",
]
