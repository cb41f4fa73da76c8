"""Business days: "today" for an owner with a timezone and a daily reset time.

A business day starts at `reset` local time. An instant belongs to the local date, or to
the day before when its local time is earlier than the reset. Daily counts are rows keyed
by (owner, business_date), so no reset job exists that could be missed or raced.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone; raises ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


def parse_reset_time(value: str) -> time:
    """'HH:MM' (24-hour) to a time; raises ValueError naming the bad value."""
    match = _HHMM.match(value)
    if not match:
        raise ValueError(f"reset_time must be HH:MM (00:00-23:59), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def business_date(instant: datetime, tz: str, reset: time) -> date:
    """The business date that `instant` (aware) falls in."""
    if instant.tzinfo is None:
        raise ValueError("business_date needs an aware datetime")
    local = instant.astimezone(zone(tz))
    day = local.date()
    if local.time().replace(tzinfo=None) < reset:
        day -= timedelta(days=1)
    return day
