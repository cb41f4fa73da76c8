"""Business days across time zones, DST changes and reset times (core/daywindow.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyhub.core.daywindow import business_date, parse_reset_time

# Zones with and without DST, half- and quarter-hour offsets, a 30-minute DST shift
# (Lord Howe), the southern hemisphere, and zones that changed their base offset.
ZONES = [
    "UTC",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Asia/Jerusalem",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/Havana",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Pacific/Kiritimati",
]
DST_ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
]
FIRST_YEAR, LAST_YEAR = 2000, 2035

instants = st.datetimes(
    min_value=datetime(FIRST_YEAR, 1, 1), max_value=datetime(LAST_YEAR, 12, 31)
).map(lambda naive: naive.replace(tzinfo=UTC))
resets = st.builds(time, hour=st.integers(0, 23), minute=st.integers(0, 59))
zones = st.sampled_from(ZONES)


def local_of(instant: datetime, tz: str) -> datetime:
    return instant.astimezone(ZoneInfo(tz))


def wall(local: datetime) -> time:
    return local.time().replace(tzinfo=None)


def is_ambiguous(local: datetime) -> bool:
    """The wall time occurs twice (the repeated hour of a fall-back)."""
    return local.utcoffset() != local.replace(fold=1 - local.fold).utcoffset()


@cache
def transitions(tz: str) -> tuple[datetime, ...]:
    """Every UTC-offset change of `tz` in the tested years, to the second."""
    zone = ZoneInfo(tz)
    found: list[datetime] = []
    day = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = datetime(LAST_YEAR, 12, 31, tzinfo=UTC)
    while day < end:
        following = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            low, high = day, following  # offset(low) != offset(high): bisect to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
        day = following
    return tuple(found)


@st.composite
def near_a_transition(draw: st.DrawFn) -> tuple[str, datetime, time]:
    """A DST zone, one of its offset changes, and a reset time close to the wall-clock
    time of that change (where business days are most easily got wrong)."""
    tz = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from(transitions(tz)))
    before = local_of(change - timedelta(seconds=1), tz)
    shift = draw(st.integers(-120, 120))
    around = (datetime.combine(date(2000, 1, 1), wall(before)) + timedelta(minutes=shift)).time()
    reset = draw(st.one_of(resets, st.just(around.replace(second=0, microsecond=0))))
    return tz, change, reset


# ---------------------------------------------------------------- properties


@settings(max_examples=400, deadline=None)
@given(instant=instants, tz=zones, reset=resets)
def test_result_is_the_local_date_or_the_day_before(
    instant: datetime, tz: str, reset: time
) -> None:
    local = local_of(instant, tz)
    assert business_date(instant, tz, reset) in (local.date(), local.date() - timedelta(days=1))


@settings(max_examples=400, deadline=None)
@given(instant=instants, tz=zones, reset=resets)
def test_it_is_the_local_date_exactly_when_the_wall_time_has_reached_the_reset(
    instant: datetime, tz: str, reset: time
) -> None:
    local = local_of(instant, tz)
    # In the repeated hour of a fall-back the wall time alone cannot say whether the
    # reset has passed (see the monotonicity tests); everywhere else it decides.
    if is_ambiguous(local):
        return
    expected = local.date() if wall(local) >= reset else local.date() - timedelta(days=1)
    assert business_date(instant, tz, reset) == expected


@settings(max_examples=300, deadline=None)
@given(instant=instants, tz=zones)
def test_with_a_midnight_reset_it_is_the_local_date(instant: datetime, tz: str) -> None:
    assert business_date(instant, tz, time(0, 0)) == local_of(instant, tz).date()


@settings(max_examples=300, deadline=None)
@given(
    instant=instants,
    tz=zones,
    reset=resets,
    zone_of_input=st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Pacific/Apia"]),
)
def test_the_zone_the_instant_is_expressed_in_does_not_matter(
    instant: datetime, tz: str, reset: time, zone_of_input: str
) -> None:
    same_instant = instant.astimezone(ZoneInfo(zone_of_input))
    assert business_date(same_instant, tz, reset) == business_date(instant, tz, reset)


@settings(max_examples=300, deadline=None)
@given(
    first=instants,
    gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    tz=zones,
    reset=resets,
)
def test_monotonic_for_random_instants(
    first: datetime, gap: timedelta, tz: str, reset: time
) -> None:
    assert business_date(first, tz, reset) <= business_date(first + gap, tz, reset)


@settings(max_examples=250, deadline=None)
@given(case=near_a_transition())
def test_each_business_day_is_one_unbroken_stretch_across_dst_changes(
    case: tuple[str, datetime, time],
) -> None:
    """Walking minute by minute across a DST change, the business date never goes back
    and never repeats a day it already left: a day's count cannot reopen."""
    tz, change, reset = case
    instant = change - timedelta(hours=3)
    previous = business_date(instant, tz, reset)
    for _ in range(6 * 60):
        instant += timedelta(minutes=1)
        current = business_date(instant, tz, reset)
        assert current >= previous, (
            f"{tz} reset {reset:%H:%M}: {instant.isoformat()} "
            f"({local_of(instant, tz).isoformat()}) is in {current}, "
            f"a minute earlier it was already {previous}"
        )
        previous = current


@settings(max_examples=250, deadline=None)
@given(case=near_a_transition())
def test_every_business_day_starts_around_a_dst_change(case: tuple[str, datetime, time]) -> None:
    """Across a DST change no business day is skipped: consecutive minutes differ by at
    most one day (a zone that skips a calendar day is not in DST_ZONES)."""
    tz, change, reset = case
    instant = change - timedelta(hours=3)
    previous = business_date(instant, tz, reset)
    for _ in range(6 * 60):
        instant += timedelta(minutes=1)
        current = business_date(instant, tz, reset)
        assert abs((current - previous).days) <= 1
        previous = current


# ---------------------------------------------------------------- examples


def at(tz: str, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(tz), fold=fold)  # type: ignore[misc]


def test_tokyo_0559_belongs_to_yesterday_and_0600_to_today() -> None:
    six = time(6, 0)
    assert business_date(at("Asia/Tokyo", 2024, 3, 10, 5, 59), "Asia/Tokyo", six) == date(
        2024, 3, 9
    )
    assert business_date(at("Asia/Tokyo", 2024, 3, 10, 6, 0), "Asia/Tokyo", six) == date(
        2024, 3, 10
    )
    # The same instants seen from UTC (20:59 and 21:00 the evening before).
    assert business_date(datetime(2024, 3, 9, 20, 59, tzinfo=UTC), "Asia/Tokyo", six) == date(
        2024, 3, 9
    )
    assert business_date(datetime(2024, 3, 9, 21, 0, tzinfo=UTC), "Asia/Tokyo", six) == date(
        2024, 3, 10
    )


def test_a_reset_inside_the_spring_forward_gap_starts_the_day_when_the_clock_jumps() -> None:
    # New York, 2024-03-10: 01:59:59 EST is followed by 03:00:00 EDT; 02:30 never happens.
    reset = time(2, 30)
    tz = "America/New_York"
    assert business_date(at(tz, 2024, 3, 10, 1, 59), tz, reset) == date(2024, 3, 9)
    assert business_date(at(tz, 2024, 3, 10, 3, 0), tz, reset) == date(2024, 3, 10)
    assert business_date(at(tz, 2024, 3, 10, 23, 59), tz, reset) == date(2024, 3, 10)
    assert business_date(at(tz, 2024, 3, 11, 2, 29), tz, reset) == date(2024, 3, 10)


def test_a_reset_after_the_fall_back_hour_is_reached_once() -> None:
    # London, 2024-10-27: 01:00-01:59 happens twice; a 03:00 reset is unaffected.
    tz = "Europe/London"
    reset = time(3, 0)
    assert business_date(at(tz, 2024, 10, 27, 1, 30, fold=0), tz, reset) == date(2024, 10, 26)
    assert business_date(at(tz, 2024, 10, 27, 1, 30, fold=1), tz, reset) == date(2024, 10, 26)
    assert business_date(at(tz, 2024, 10, 27, 3, 0), tz, reset) == date(2024, 10, 27)


@pytest.mark.parametrize(
    ("tz", "reset", "first_pass", "second_pass", "day"),
    [
        # London 2024-10-27: 01:45 BST (00:45 UTC), then 01:15 GMT (01:15 UTC).
        ("Europe/London", time(1, 30), (2024, 10, 27, 1, 45), (2024, 10, 27, 1, 15), 27),
        # New York 2024-11-03: 01:45 EDT, then 01:15 EST.
        ("America/New_York", time(1, 30), (2024, 11, 3, 1, 45), (2024, 11, 3, 1, 15), 3),
        # Lord Howe 2024-04-07: 02:00 (+11) falls back 30 minutes to 01:30 (+10:30).
        ("Australia/Lord_Howe", time(1, 45), (2024, 4, 7, 1, 50), (2024, 4, 7, 1, 35), 7),
    ],
)
def test_a_reset_inside_the_repeated_hour_does_not_reopen_yesterday(
    tz: str,
    reset: time,
    first_pass: tuple[int, ...],
    second_pass: tuple[int, ...],
    day: int,
) -> None:
    """Once the reset has passed, the new business day has begun: the clock going back
    over the reset time must not move later leads into the day that already ended."""
    earlier = at(tz, *first_pass, fold=0)
    later = at(tz, *second_pass, fold=1)
    assert earlier.astimezone(UTC) < later.astimezone(UTC)
    started = business_date(earlier, tz, reset)
    assert started.day == day
    assert business_date(later, tz, reset) == started


def test_business_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        business_date(datetime(2024, 1, 1, 12, 0), "Asia/Tokyo", time(6, 0))


def test_business_date_refuses_an_unknown_zone_naming_it() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus_Mons"):
        business_date(datetime(2024, 1, 1, tzinfo=UTC), "Mars/Olympus_Mons", time(0, 0))


# ---------------------------------------------------------------- parse_reset_time


@settings(max_examples=200, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_parse_reset_time_reads_every_valid_hh_mm(hour: int, minute: int) -> None:
    assert parse_reset_time(f"{hour:02d}:{minute:02d}") == time(hour, minute)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "6:00",
        "06:0",
        "24:00",
        "23:60",
        "06:00:00",
        "0600",
        "06-00",
        "ab:cd",
        " 06:00",
        "06:00 ",
        "06:00\n",
        "-1:00",
        "0٦:3٠",  # Arabic-Indic digits: digits to a regex's \d, not to a clock
    ],
)
def test_parse_reset_time_rejects_bad_input_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_reset_time(value)
    assert repr(value) in str(raised.value)
