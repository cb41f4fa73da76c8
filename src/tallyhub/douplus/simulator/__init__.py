"""A faithful local fake of the Ocean Engine open API v3.0 for DOU+ ad orders: the order list,
the order report, OAuth, their envelope and error codes, on a deterministic world whose
orders spend and gather plays as the simulated clock moves.

Every order's figures are closed-form functions of the time since its creation (a curve
drawn per order from the seed), so a world of 40,000 orders builds in well under a second
and any instant is answered without replaying history. Figures only grow: cumulative cost,
plays and the rest never go down, cost never passes the budget, and an order that spends its
whole budget is DELIVERIED. Nothing changes once an order is in one of FINAL_STATUSES.

Where the public contract leaves a choice, the simulator takes this one: every order
promotes a video (no LIVE orders); a status filter compares the status as of the clock's
now; an empty id list in a filter filters nothing; a stat_time span is end - begin in days
(at most 180); an unknown or used auth_code is a 40001 naming auth_code; a refresh rotates
the refresh token, while access tokens issued before stay valid until they expire.

The package, by topic: `contract` (paths, statuses, codes, limits, units), `orders` (an
order's curve), `world` (accounts, orders, tokens and the two reads), `queries` (reading the
parameters, paging) and `app` (the routes and `create_app`).
"""

from __future__ import annotations

from tallyhub.douplus.simulator.app import (
    AuthCodeRequest,
    Envelopes,
    ExpireRequest,
    OrdersRequest,
    create_app,
)
from tallyhub.douplus.simulator.contract import (
    ACCESS_TOKEN_EXPIRED,
    ACCESS_TOKEN_PATH,
    BAD_PARAMETER,
    EMPTY_ACCESS_TOKEN,
    FINAL_STATUSES,
    INVALID_ACCESS_TOKEN,
    INVALID_GRANT_TYPE,
    INVALID_REFRESH_TOKEN,
    LIST_PATH,
    MAX_FILTER_IDS,
    MAX_PAGE_SIZE,
    MAX_SPAN_DAYS,
    REFRESH_TOKEN_EXPIRED,
    REFRESH_TOKEN_PATH,
    REPORT_PATH,
    SHANGHAI,
    STATUSES,
    SYSTEM_ERROR,
    TOO_FREQUENT,
    ApiError,
)
from tallyhub.douplus.simulator.orders import ZERO, Figures, Order
from tallyhub.douplus.simulator.queries import ListQuery, Paging, ReportQuery
from tallyhub.douplus.simulator.world import (
    HISTORY_DAYS,
    SEC_UID_PREFIX,
    Account,
    DouplusWorld,
    Grant,
)

__all__ = [
    "ACCESS_TOKEN_EXPIRED",
    "ACCESS_TOKEN_PATH",
    "BAD_PARAMETER",
    "EMPTY_ACCESS_TOKEN",
    "FINAL_STATUSES",
    "HISTORY_DAYS",
    "INVALID_ACCESS_TOKEN",
    "INVALID_GRANT_TYPE",
    "INVALID_REFRESH_TOKEN",
    "LIST_PATH",
    "MAX_FILTER_IDS",
    "MAX_PAGE_SIZE",
    "MAX_SPAN_DAYS",
    "REFRESH_TOKEN_EXPIRED",
    "REFRESH_TOKEN_PATH",
    "REPORT_PATH",
    "SEC_UID_PREFIX",
    "SHANGHAI",
    "STATUSES",
    "SYSTEM_ERROR",
    "TOO_FREQUENT",
    "ZERO",
    "Account",
    "ApiError",
    "AuthCodeRequest",
    "DouplusWorld",
    "Envelopes",
    "ExpireRequest",
    "Figures",
    "Grant",
    "ListQuery",
    "Order",
    "OrdersRequest",
    "Paging",
    "ReportQuery",
    "create_app",
]
