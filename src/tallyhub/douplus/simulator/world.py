"""The simulated DOU+ world: accounts, their orders (drawn from the seed, created over the
history before the clock's start and on demand), their tokens, and the two reads the API
answers, the order list and the report. Thread-safe: tests change it from their own thread
while the server reads it from another."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import threading
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tallyhub.core.simulation import SimClock
from tallyhub.douplus.simulator.contract import (
    ACCESS_TOKEN_EXPIRED,
    EMPTY_ACCESS_TOKEN,
    INVALID_ACCESS_TOKEN,
    INVALID_GRANT_TYPE,
    INVALID_REFRESH_TOKEN,
    REFRESH_TOKEN_EXPIRED,
    ApiError,
    bad_parameter,
    local_time,
    midnight,
    yuan,
    yuan_text,
)
from tallyhub.douplus.simulator.orders import ZERO, Order, summed
from tallyhub.douplus.simulator.queries import ListQuery, Paging, ReportQuery

SEC_UID_PREFIX = "MS4wLjABAAAA"
HISTORY_DAYS = 60  # the world's orders are created within this many days before the start
_DAY = 86400.0
_HOUR = 3600.0

_NICKNAMES = ("小鹿的厨房", "阿杰健身", "旅行的猫", "数码老王", "晴天穿搭", "读书的橙子")
_MOODS = ("超实用的", "一分钟学会", "第一次尝试", "真实测评：", "跟我一起", "周末的")
_TOPICS = ("家常菜", "健身打卡", "旅行vlog", "护肤心得", "萌宠日常", "数码开箱", "春季穿搭")


@dataclass
class Grant:
    """An issued token: whose it is and until when (epoch seconds, by the SimClock)."""

    sec_uid: str
    expires_at: float


@dataclass
class Account:
    sec_uid: str
    nickname: str
    author_id: str
    rng: random.Random
    access_token: str = ""
    refresh_token: str = ""
    keys: list[tuple[float, int]] = field(default_factory=list)  # (created, number), sorted
    by_created: list[Order] = field(default_factory=list)  # in the order of `keys`
    by_number: list[Order] = field(default_factory=list)  # by order_id as a number
    items: list[tuple[str, str]] = field(default_factory=list)  # (item_id, title), in order

    def add(self, orders: list[Order]) -> None:
        self.by_created.extend(orders)
        self.by_created.sort(key=lambda o: (o.created, o.number))
        self.keys = [(o.created, o.number) for o in self.by_created]
        self.by_number.extend(orders)
        self.by_number.sort(key=lambda o: o.number)

    def existing(self, now: float) -> list[Order]:
        """Orders created at or before `now`, oldest first."""
        return self.by_created[: bisect.bisect_right(self.keys, (now, math.inf))]


def _sec_uid(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"douplus:{seed}:account:{index}".encode()).digest()
    return SEC_UID_PREFIX + urlsafe_b64encode(digest).decode().rstrip("=")


def _fate(rng: random.Random) -> str:
    roll = rng.random()
    for fate, below in (
        ("normal", 0.78),
        ("wait", 0.83),
        ("no_reach", 0.86),
        ("pause", 0.90),
        ("undelivered", 0.96),
    ):
        if roll < below:
            return fate
    return "offline"


class _Ids:
    """Unique numeric ids drawn from an account's random stream."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def draw(self, rng: random.Random, low: int, high: int) -> str:
        while True:
            candidate = str(rng.randrange(low, high))
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate


class DouplusWorld:
    """The simulated accounts, their orders and tokens. Thread-safe: tests change it from
    their own thread while the server reads it from another."""

    def __init__(
        self,
        *,
        seed: int,
        accounts: int,
        orders_per_account: int,
        clock: SimClock,
        app_id: str,
        app_secret: str,
        access_token_ttl: int,
        refresh_token_ttl: int,
    ) -> None:
        self.seed, self.clock = seed, clock
        self.app_id, self.app_secret = app_id, app_secret
        self.access_token_ttl, self.refresh_token_ttl = access_token_ttl, refresh_token_ttl
        self._lock = threading.RLock()
        self._ids = _Ids()
        self._serial = itertools.count(1)
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._auth_codes: dict[str, str] = {}  # unused code -> sec_uid
        self.accounts: dict[str, Account] = {}
        start = clock.now().timestamp()
        for index in range(accounts):
            account = self._new_account(index)
            self.accounts[account.sec_uid] = account
            account.add(self._history(account, orders_per_account, start))
            self._grant(account)

    # ---- building

    def _new_account(self, index: int) -> Account:
        rng = random.Random(f"douplus:{self.seed}:orders:{index}")
        base = _NICKNAMES[index % len(_NICKNAMES)]
        nickname = base if index < len(_NICKNAMES) else f"{base}{index // len(_NICKNAMES) + 1}"
        author_id = f"dy{rng.randrange(10**8, 10**9)}"
        return Account(_sec_uid(self.seed, index), nickname, author_id, rng)

    def _history(self, account: Account, count: int, start: float) -> list[Order]:
        """`count` orders created over the HISTORY_DAYS before `start`."""
        newest = math.floor(start)
        span = int(HISTORY_DAYS * _DAY)
        stamps = sorted(newest - account.rng.randrange(1, span) for _ in range(count))
        return [self._new_order(account, float(stamp)) for stamp in stamps]

    def _item(self, account: Account) -> tuple[str, str]:
        """A new video about a third of the time, else one of the latest three."""
        rng = account.rng
        if account.items and rng.random() >= 1 / 3:
            return rng.choice(account.items[-3:])
        item_id = self._ids.draw(rng, 7 * 10**18, 75 * 10**17)
        title = f"{rng.choice(_MOODS)}{rng.choice(_TOPICS)} 第{len(account.items) + 1}期"
        account.items.append((item_id, title))
        return item_id, title

    def _new_order(self, account: Account, created: float) -> Order:
        rng = account.rng
        order_id = self._ids.draw(rng, 10**15, 10**19)  # 16 to 19 digits
        item_id, title = self._item(account)
        fate = _fate(rng)
        duration = rng.uniform(2 * _HOUR, 48 * _HOUR)
        return Order(
            order_id=order_id,
            number=int(order_id),
            task_id=self._ids.draw(rng, 10**15, 10**19),
            ad_id=self._ids.draw(rng, 7 * 10**18, 75 * 10**17),
            item_id=item_id,
            title=title,
            created=created,
            budget=rng.randrange(50, 501) * 100,
            fate=fate,
            unpaid=rng.uniform(30, 600),
            audit=rng.uniform(300, _HOUR),
            wait=rng.uniform(_HOUR, 24 * _HOUR) if fate in ("wait", "no_reach") else 0.0,
            duration=duration,
            pause_at=rng.uniform(0.2, 0.7) * duration,
            pause_len=rng.uniform(_HOUR, 12 * _HOUR) if fate == "pause" else 0.0,
            stop=rng.uniform(0.05, 0.9) if fate == "undelivered" else 1.0,
            play_per_fen=rng.uniform(0.3, 1.5),
            show_ratio=rng.uniform(1.1, 1.8),
            rates=(
                rng.uniform(0.01, 0.06),
                rng.uniform(0.001, 0.008),
                rng.uniform(0.0005, 0.004),
                rng.uniform(0.0005, 0.005),
                rng.uniform(0.005, 0.03),
                0.0 if rng.random() < 0.3 else rng.uniform(0.0002, 0.003),
            ),
            rank=round(rng.uniform(0.15, 0.65), 4),
        )

    # ---- what tests and the control routes call

    def now(self) -> float:
        return self.clock.now().timestamp()

    def account(self, sec_uid: str) -> Account:
        try:
            return self.accounts[sec_uid]
        except KeyError:
            raise LookupError(f"no simulated account {sec_uid!r}") from None

    def add_orders(self, sec_uid: str, count: int) -> list[str]:
        """`count` new orders of the account, created at the clock's now; their ids."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            account = self.account(sec_uid)
            now = float(math.floor(self.now()))
            orders = [self._new_order(account, now) for _ in range(count)]
            account.add(orders)
        return [order.order_id for order in orders]

    def expire_access_token(self, sec_uid: str) -> None:
        """Every access token of the account expires now (40102 from here on)."""
        self._expire(self._access, sec_uid)

    def expire_refresh_token(self, sec_uid: str) -> None:
        """Every refresh token of the account expires now (40103 from here on)."""
        self._expire(self._refresh, sec_uid)

    def _expire(self, grants: dict[str, Grant], sec_uid: str) -> None:
        with self._lock:
            self.account(sec_uid)
            now = self.now()
            for grant in grants.values():
                if grant.sec_uid == sec_uid:
                    grant.expires_at = min(grant.expires_at, now)

    def issue_auth_code(self, sec_uid: str) -> str:
        """A single-use auth_code for the account (what its owner's consent would give)."""
        with self._lock:
            self.account(sec_uid)
            code = self._token("code")
            self._auth_codes[code] = sec_uid
        return code

    def totals(self, sec_uid: str, created_since: date | None = None) -> dict[str, Any]:
        """The truth a sync must reach: the account's existing orders (created on or after
        `created_since`, a Shanghai date) and their summed cumulative figures now."""
        with self._lock:
            now = self.now()
            since = -math.inf if created_since is None else midnight(created_since)
            orders = [o for o in self.account(sec_uid).existing(now) if o.created >= since]
            figures = summed(order.figures(now) for order in orders)
        return {
            "order_count": len(orders),
            "stat_cost": yuan_text(figures.cost),
            "total_play": figures.total_play,
            "custom_like": figures.custom_like,
            "dy_share": figures.dy_share,
            "dy_comment": figures.dy_comment,
            "dy_follow": figures.dy_follow,
            "dy_home_visited": figures.dy_home_visited,
            "dp_target_convert_cnt": figures.dp_target_convert_cnt,
            "show_cnt": figures.show_cnt,
        }

    def account_views(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.now()
            return [
                {
                    "aweme_sec_uid": account.sec_uid,
                    "nickname": account.nickname,
                    "access_token": account.access_token,
                    "refresh_token": account.refresh_token,
                    "expires_in": max(0, int(self._access[account.access_token].expires_at - now)),
                    "order_count": len(account.existing(now)),
                }
                for account in self.accounts.values()
            ]

    # ---- the two reads

    def order_list(self, account: Account, query: ListQuery, paging: Paging) -> dict[str, Any]:
        with self._lock:
            now = self.now()
            orders = query.select(account.existing(now), now)
            rows = [_order_row(account, order, now) for order in paging.cut(orders)]
        return {"order_list": rows, "page_info": paging.info(len(orders))}

    def order_report(self, account: Account, query: ReportQuery, paging: Paging) -> dict[str, Any]:
        """Each order's growth within the Shanghai days asked for, the last one up to now."""
        with self._lock:
            now = self.now()
            begin = midnight(query.begin)
            after_end = midnight(query.end + timedelta(days=1))
            end = min(after_end, now)
            orders = [
                order
                for order in account.by_number
                if order.created <= now and order.created < after_end and query.keeps(order)
            ]
            rows = [_metrics_row(order, begin, end) for order in paging.cut(orders)]
        return {"order_metrics": rows, "page_info": paging.info(len(orders))}

    # ---- tokens

    def _token(self, kind: str) -> str:
        serial = next(self._serial)
        return hashlib.sha256(f"douplus:{self.seed}:{kind}:{serial}".encode()).hexdigest()[:40]

    def _grant(self, account: Account) -> dict[str, Any]:
        """New access and refresh tokens for the account, which become its current ones."""
        now = self.now()
        account.access_token, account.refresh_token = self._token("access"), self._token("refresh")
        self._access[account.access_token] = Grant(account.sec_uid, now + self.access_token_ttl)
        self._refresh[account.refresh_token] = Grant(account.sec_uid, now + self.refresh_token_ttl)
        return {
            "access_token": account.access_token,
            "expires_in": self.access_token_ttl,
            "refresh_token": account.refresh_token,
            "refresh_token_expires_in": self.refresh_token_ttl,
            "advertiser_ids": [],
        }

    def _check_app(self, body: dict[str, Any], grant_type: str) -> None:
        if str(body.get("app_id", "")) != self.app_id:
            raise bad_parameter("app_id", "unknown app")
        if body.get("secret") != self.app_secret:
            raise bad_parameter("secret", "does not match app_id")
        if body.get("grant_type") != grant_type:
            raise ApiError(INVALID_GRANT_TYPE, f"invalid grant_type: expected {grant_type!r}")

    def exchange_auth_code(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_app(body, "auth_code")
        with self._lock:
            sec_uid = self._auth_codes.pop(str(body.get("auth_code", "")), None)
            if sec_uid is None:
                raise bad_parameter("auth_code", "unknown or already used")
            return self._grant(self.accounts[sec_uid])

    def refresh(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rotates the refresh token: the old one answers 40107 from here on. Access tokens
        issued before stay valid until they expire."""
        self._check_app(body, "refresh_token")
        with self._lock:
            token = str(body.get("refresh_token", ""))
            grant = self._refresh.get(token)
            if grant is None:
                raise ApiError(INVALID_REFRESH_TOKEN, "invalid refresh token")
            if self.now() >= grant.expires_at:
                raise ApiError(REFRESH_TOKEN_EXPIRED, "refresh token expired")
            del self._refresh[token]
            return self._grant(self.accounts[grant.sec_uid])

    def authorize(self, access_token: str | None, sec_uid: str | None) -> Account:
        """The account a request may read, or the business error it gets."""
        if not access_token:
            raise ApiError(EMPTY_ACCESS_TOKEN, "access token is empty")
        with self._lock:
            grant = self._access.get(access_token)
            if grant is None:
                raise ApiError(INVALID_ACCESS_TOKEN, "invalid access token")
            if self.now() >= grant.expires_at:
                raise ApiError(ACCESS_TOKEN_EXPIRED, "access token expired")
        if not sec_uid:
            raise bad_parameter("aweme_sec_uid", "required")
        if grant.sec_uid != sec_uid:
            raise ApiError(INVALID_ACCESS_TOKEN, "access token does not cover this aweme_sec_uid")
        return self.accounts[sec_uid]


# ---- the answers


def _order_row(account: Account, order: Order, now: float) -> dict[str, Any]:
    return {
        "order": {
            "order_id": order.order_id,
            "task_id": order.task_id,
            "order_create_time": local_time(order.created),
            "task_status": order.status(now),
            "budget": order.budget,
        },
        "ad_list": [{"ad_id": order.ad_id}],
        "item_info_list": [
            {
                "aweme_item_id": order.item_id,
                "aweme_item_title": order.title,
                "aweme_author_unique_id": account.author_id,
                "aweme_item_cover": f"https://sim.invalid/douplus/cover/{order.item_id}.jpeg",
            }
        ],
    }


def _metrics_row(order: Order, begin: float, end: float) -> dict[str, Any]:
    grown = order.figures(end).minus(order.figures(begin)) if end > begin else ZERO
    converts = grown.dp_target_convert_cnt
    return {
        "dimension_data": {
            "order_id": order.order_id,
            "ad_id": order.ad_id,
            "item_id": order.item_id,
        },
        "metrics_data": {
            "stat_cost": yuan(grown.cost),
            "total_play": grown.total_play,
            "custom_like": grown.custom_like,
            "dy_share": grown.dy_share,
            "dy_comment": grown.dy_comment,
            "dy_follow": grown.dy_follow,
            "dy_home_visited": grown.dy_home_visited,
            "play_duration_5s_rank": order.rank if grown.total_play else 0.0,
            "dp_target_convert_cnt": converts,
            "custom_convert_cost": round(grown.cost / 100 / converts, 2) if converts else 0.0,
            "show_cnt": grown.show_cnt,
        },
    }
