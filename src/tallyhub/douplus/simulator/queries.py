"""Reading the order list's and the report's query parameters as the upstream does (every
refusal is a 40001 naming the parameter), and paging: the asked page of a sorted list and
its exact `total_number` and `total_page`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from tallyhub.douplus.simulator.contract import (
    MAX_FILTER_IDS,
    MAX_PAGE_SIZE,
    MAX_SPAN_DAYS,
    STATUSES,
    bad_parameter,
)
from tallyhub.douplus.simulator.orders import Order

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INTEGER = re.compile(r"-?\d{1,12}")
_ID = re.compile(r"\d{1,25}")


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int

    def cut(self, rows: list[Order]) -> list[Order]:
        offset = (self.page - 1) * self.page_size
        return rows[offset : offset + self.page_size]

    def info(self, total: int) -> dict[str, int]:
        return {
            "page": self.page,
            "page_size": self.page_size,
            "total_number": total,
            "total_page": math.ceil(total / self.page_size),
        }


@dataclass(frozen=True)
class ListQuery:
    """The order list's filter and order. An empty `order_id` list filters nothing."""

    order_ids: frozenset[str] | None = None
    scene_type: str | None = None
    status: str | None = None
    by_order_id: bool = False
    descending: bool = True

    def select(self, orders: list[Order], now: float) -> list[Order]:
        """`orders` (oldest first) filtered and sorted as asked."""
        if self.scene_type == "LIVE":
            return []  # every simulated order promotes a video
        if self.order_ids:
            orders = [order for order in orders if order.order_id in self.order_ids]
        if self.status is not None:
            orders = [order for order in orders if order.status(now) == self.status]
        if self.by_order_id:
            orders = sorted(orders, key=lambda order: order.number)
        return orders[::-1] if self.descending else orders


@dataclass(frozen=True)
class ReportQuery:
    begin: date
    end: date
    order_ids: frozenset[str] | None = None
    item_ids: frozenset[str] | None = None

    def keeps(self, order: Order) -> bool:
        if self.order_ids and order.order_id not in self.order_ids:
            return False
        return not self.item_ids or order.item_id in self.item_ids


def _int(raw: str | None, name: str, default: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise bad_parameter(name, f"not an integer: {raw!r}")
    value = int(raw)
    if not 1 <= value <= high:
        raise bad_parameter(name, f"must be between 1 and {high}")
    return value


def read_paging(page: str | None, page_size: str | None) -> Paging:
    return Paging(_int(page, "page", 1, 10**9), _int(page_size, "page_size", 10, MAX_PAGE_SIZE))


def _json(raw: str | None, name: str, kind: type) -> Any:
    """A JSON query field (None when absent), which must decode to `kind`."""
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_parameter(name, "not valid JSON") from None
    if not isinstance(value, kind):
        raise bad_parameter(name, f"must be a JSON {'object' if kind is dict else 'list'}")
    return value


def _choice(value: Any, name: str, allowed: Iterable[str], default: str | None) -> str | None:
    if value is None or value == "":
        return default
    if value not in allowed:
        raise bad_parameter(name, f"must be one of {', '.join(allowed)}")
    return str(value)


def _ids(value: Any, name: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_parameter(name, "must be a list of ids")
    if len(value) > MAX_FILTER_IDS:
        raise bad_parameter(name, f"at most {MAX_FILTER_IDS} ids")
    ids = frozenset(str(item) for item in value)
    if not all(_ID.fullmatch(one) for one in ids):
        raise bad_parameter(name, "ids are digit strings")
    return ids


def read_list_query(raw_filter: str | None, by_field: str | None, by_type: str | None) -> ListQuery:
    spec = _json(raw_filter, "filter", dict) or {}
    sort_by = _choice(by_field, "order_by_field", ("CREATE_TIME", "ORDER_ID"), "CREATE_TIME")
    direction = _choice(by_type, "order_by_type", ("ASC", "DESC"), "DESC")
    return ListQuery(
        order_ids=_ids(spec.get("order_id"), "filter.order_id"),
        scene_type=_choice(spec.get("scene_type"), "filter.scene_type", ("VIDEO", "LIVE"), None),
        status=_choice(spec.get("status"), "filter.status", STATUSES, None),
        by_order_id=sort_by == "ORDER_ID",
        descending=direction == "DESC",
    )


def _day(value: Any, name: str) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise bad_parameter(name, "a date as YYYY-MM-DD is required")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_parameter(name, f"no such date: {value}") from None


def _stat_time(raw: str | None) -> tuple[date, date]:
    spec = _json(raw, "stat_time", dict)
    if spec is None:
        raise bad_parameter("stat_time", "required")
    begin = _day(spec.get("begin_time"), "stat_time.begin_time")
    end = _day(spec.get("end_time"), "stat_time.end_time")
    if begin > end:
        raise bad_parameter("stat_time", "begin_time is after end_time")
    if (end - begin).days > MAX_SPAN_DAYS:
        raise bad_parameter("stat_time", f"spans more than {MAX_SPAN_DAYS} days")
    return begin, end


def read_report_query(
    stat_time: str | None, group_by: str | None, raw_filter: str | None
) -> ReportQuery:
    begin, end = _stat_time(stat_time)
    groups = _json(group_by, "group_by", list) or ["GROUP_BY_AD_ID"]
    if groups != ["GROUP_BY_AD_ID"]:
        raise bad_parameter("group_by", 'the simulator answers ["GROUP_BY_AD_ID"] only')
    spec = _json(raw_filter, "filter", dict) or {}
    return ReportQuery(
        begin,
        end,
        _ids(spec.get("order_ids"), "filter.order_ids"),
        _ids(spec.get("item_ids"), "filter.item_ids"),
    )
