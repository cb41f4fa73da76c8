"""The leads domain's logic, split by topic: groups, their accounts, the desktop client's
login, incoming leads (resolved in incoming, new or duplicate in dedup), what is pushed
live, and recalibration. Services flush; the edge commits."""

from tallyhub.leads.service.accounts import (
    change_status,
    delete_account,
    list_accounts,
    sync_accounts,
)
from tallyhub.leads.service.client import (
    CodeGate,
    authenticate_client,
    check_client_group,
    client_summary,
    login,
)
from tallyhub.leads.service.events import IncomingEvent, make_event
from tallyhub.leads.service.groups import (
    MAX_DAILY_DAYS,
    create_group,
    daily,
    delete_group,
    get_group,
    incoming_page,
    list_groups,
    rotate_activation_code,
    update_group,
    with_stats,
)
from tallyhub.leads.service.incoming import apply_incoming
from tallyhub.leads.service.live import TOPIC, publish_group, publish_group_deleted
from tallyhub.leads.service.recalibration import recalibrate
from tallyhub.leads.service.summary import summary

__all__ = [
    "MAX_DAILY_DAYS",
    "TOPIC",
    "CodeGate",
    "IncomingEvent",
    "apply_incoming",
    "authenticate_client",
    "change_status",
    "check_client_group",
    "client_summary",
    "create_group",
    "daily",
    "delete_account",
    "delete_group",
    "get_group",
    "incoming_page",
    "list_accounts",
    "list_groups",
    "login",
    "make_event",
    "publish_group",
    "publish_group_deleted",
    "recalibrate",
    "rotate_activation_code",
    "summary",
    "sync_accounts",
    "update_group",
    "with_stats",
]
