"""The seed's tiered schedule, exactly: the times each call-center job fires over a
sample day, in the configured time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tallyhub.callcenter import jobs
from tallyhub.core.jobs.registry import JobSpec


def _fires(spec: JobSpec, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    start = datetime(2025, 10, 26, tzinfo=zone)
    moment, fired = start - timedelta(microseconds=1), []
    while True:
        moment = spec.next_slot(moment, tz)
        local = moment.astimezone(zone)
        if local.date() != start.date():
            return fired
        fired.append(local.strftime("%H:%M"))


def test_the_schedule_is_the_seeds_table_in_the_server_time_zone() -> None:
    tz = "Asia/Shanghai"
    every_ten = [f"{h:02d}:{m:02d}" for h in range(9, 24) for m in range(0, 60, 10)]
    assert _fires(jobs.tasks_t10, tz) == ["07:00"]
    assert _fires(jobs.records_t10, tz) == ["07:05"]
    assert _fires(jobs.tasks_t3, tz) == ["01:00", "10:00", "15:00", "21:00"]
    assert _fires(jobs.records_t3, tz) == ["01:05", "10:05", "15:05", "21:05"]
    assert _fires(jobs.tasks_today, tz) == [f"{h:02d}:00" for h in range(9, 24)]
    assert _fires(jobs.records_today, tz) == every_ten
    assert every_ten[0] == "09:00" and every_ten[-1] == "23:50"
    # Another zone moves the same wall-clock times with it.
    assert _fires(jobs.tasks_t10, "Europe/Berlin") == ["07:00"]
