"""The DOU+ domain's logic, by topic: accounts and tokens, order sync, figures sync, the
videos rollup, syncing many accounts, sync state, and the read side. Services flush and
never commit: the HTTP edge or the job's `Database.run` does."""

from tallyhub.douplus.service.accounts import (
    AccountTokens,
    delete_account,
    get_account,
    oauth_state,
    read_oauth_state,
    save_account,
)
from tallyhub.douplus.service.context import SyncContext, window_of
from tallyhub.douplus.service.orders import Mode, OrdersOutcome, sync_orders
from tallyhub.douplus.service.queries import (
    account_out,
    account_stats,
    list_accounts,
    list_orders,
    list_videos,
    order_detail,
    summary,
    video_windows,
)
from tallyhub.douplus.service.stats import StatsOutcome, sync_stats
from tallyhub.douplus.service.sync import (
    active_accounts,
    request_sync,
    sync_now,
    sync_orders_of_all,
    sync_requested,
    sync_stats_of_all,
)
from tallyhub.douplus.service.videos import aggregate_videos

__all__ = [
    "AccountTokens",
    "Mode",
    "OrdersOutcome",
    "StatsOutcome",
    "SyncContext",
    "account_out",
    "account_stats",
    "active_accounts",
    "aggregate_videos",
    "delete_account",
    "get_account",
    "list_accounts",
    "list_orders",
    "list_videos",
    "oauth_state",
    "order_detail",
    "read_oauth_state",
    "request_sync",
    "save_account",
    "summary",
    "sync_now",
    "sync_orders",
    "sync_orders_of_all",
    "sync_requested",
    "sync_stats",
    "sync_stats_of_all",
    "video_windows",
    "window_of",
]
