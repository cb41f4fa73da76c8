"""A job's schedule as parts a page can say in words in any language ("every 30 seconds",
"daily at 03:00", "每天 03:00"), so that no client has to parse cron expressions."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from tallyhub.core.jobs.registry import JobSpec

ScheduleKind = Literal["interval", "hourly", "daily", "weekly", "cron"]
_NUMBER = re.compile(r"^\d+$")
_EVERY_N_MINUTES = re.compile(r"^\*/(\d+)$")
_WEEKDAYS = re.compile(r"^[0-7](,[0-7])*$")


class CronFields(BaseModel):
    minute: str
    hour: str
    day: str = Field(description="Day of the month")
    month: str
    weekday: str = Field(description="Day of the week (0 or 7 = Sunday)")


class ScheduleOut(BaseModel):
    """What `kind` says, its parts: interval → `seconds`; hourly → `minute`; daily →
    `hour`, `minute`; weekly → `weekdays`, `hour`, `minute`; cron (any other expression)
    → `fields`. Hours and minutes are local to the job list's `timezone`."""

    kind: ScheduleKind = Field(description="interval, hourly, daily, weekly or cron")
    seconds: int | None = Field(None, description="interval: the period")
    hour: int | None = Field(None, description="daily, weekly: the hour (0-23)")
    minute: int | None = Field(None, description="hourly, daily, weekly: the minute (0-59)")
    weekdays: list[int] | None = Field(
        None, description="weekly: the days, 0 = Sunday … 6 = Saturday"
    )
    fields: CronFields | None = Field(None, description="cron: the expression's five fields")


def describe(spec: JobSpec) -> ScheduleOut:
    if spec.every_seconds is not None:
        return ScheduleOut(kind="interval", seconds=spec.every_seconds)
    assert spec.cron is not None
    return describe_cron(spec.cron)


def describe_cron(expression: str) -> ScheduleOut:
    """The plainest kind an expression is: "*/5 * * * *" an interval of 300 s, "15 * * * *"
    hourly at :15, "0 3 * * *" daily at 03:00, "0 9 * * 1,5" weekly; else its fields."""
    parts = expression.split()
    if len(parts) != 5:
        return ScheduleOut(kind="cron")
    fields = CronFields(
        minute=parts[0], hour=parts[1], day=parts[2], month=parts[3], weekday=parts[4]
    )
    if fields.day != "*" or fields.month != "*":
        return ScheduleOut(kind="cron", fields=fields)
    return _every_minutes(fields) or _at_a_time(fields) or ScheduleOut(kind="cron", fields=fields)


def _every_minutes(fields: CronFields) -> ScheduleOut | None:
    """`*/n` minutes of every hour is a period when n divides the hour evenly."""
    every = _EVERY_N_MINUTES.match(fields.minute)
    if every is None or fields.hour != "*" or fields.weekday != "*":
        return None
    step = int(every.group(1))
    return ScheduleOut(kind="interval", seconds=step * 60) if step and 60 % step == 0 else None


def _at_a_time(fields: CronFields) -> ScheduleOut | None:
    if not _NUMBER.match(fields.minute):
        return None
    minute = int(fields.minute)
    if fields.hour == "*":
        return ScheduleOut(kind="hourly", minute=minute) if fields.weekday == "*" else None
    if not _NUMBER.match(fields.hour):
        return None
    hour = int(fields.hour)
    if fields.weekday == "*":
        return ScheduleOut(kind="daily", hour=hour, minute=minute)
    if not _WEEKDAYS.match(fields.weekday):
        return None
    days = sorted({int(day) % 7 for day in fields.weekday.split(",")})
    return ScheduleOut(kind="weekly", weekdays=days, hour=hour, minute=minute)
