"""Business days: "today" for an owner with a timezone and a daily reset time.

A business day starts at `reset` local time. An instant belongs to the local date, or to
the day before when its local time is earlier than the reset. Daily counts are rows keyed
by (owner, business_date), so no reset job exists that could be missed or raced.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# What an IANA zone name looks like ("Asia/Tokyo", "Etc/GMT+9"), and the longest one a
# zone column holds: anything else is refused before the zone files are looked at.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
MAX_ZONE_LENGTH = 64


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone; raises ValueError naming it when unknown. A name of a directory of
    zones ("America") or one too long for a file name fails to open as a file (OSError):
    unknown too."""
    if len(name) > MAX_ZONE_LENGTH or not _ZONE_NAME.fullmatch(name):
        raise ValueError(f"unknown time zone {name[:MAX_ZONE_LENGTH]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


def check_zone(value: str | None) -> str | None:
    """A validator for a time-zone field: the name as given, once it is known (or None)."""
    if value is not None:
        zone(value)
    return value


def parse_reset_time(value: str) -> time:
    """'HH:MM' (24-hour) to a time; raises ValueError naming the bad value."""
    match = _HHMM.fullmatch(value)
    if not match:
        raise ValueError(f"reset_time must be HH:MM (00:00-23:59), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


@lru_cache(maxsize=8192)
def day_start(day: date, tz: str, reset: time) -> datetime:
    """The first UTC instant of business date `day`: the earliest instant whose local wall
    time reaches `day` at `reset`. Usually that is the reset's first occurrence; when the
    reset falls in a spring-forward gap it is the moment the clock jumps past it."""
    local_zone = zone(tz)
    wall = datetime.combine(day, reset)
    first = wall.replace(tzinfo=local_zone, fold=0).astimezone(UTC)
    if first.astimezone(local_zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 maps before the jump, fold=0 after it; find the jump to the second.
    before = wall.replace(tzinfo=local_zone, fold=1).astimezone(UTC)
    after = first
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(local_zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0) if after.microsecond else after


def business_date(instant: datetime, tz: str, reset: time) -> date:
    """The business date that `instant` (aware) falls in: the latest day that has started.

    Days start at `day_start`, so the date never goes backwards, also in a repeated hour
    when clocks fall back (even one that repeats midnight)."""
    if instant.tzinfo is None:
        raise ValueError("business_date needs an aware datetime")
    moment = instant.astimezone(UTC)
    local_day = moment.astimezone(zone(tz)).date()
    for day in (local_day + timedelta(days=1), local_day):
        if day_start(day, tz, reset) <= moment:
            return day
    return local_day - timedelta(days=1)
