"""The Guanke client over real HTTP against the simulator: every page of a date read once
at any total and page size, the safety cap, records arriving while a walk runs (even when
concurrent pages answer out of order), retried failures, the refused key, and call times
read as China time into aware UTC."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tallyhub.callcenter.client import ApiKeyRejected, CallcenterClient, RecordsRead
from tallyhub.callcenter.config import CallcenterSettings
from tallyhub.callcenter.contract import (
    CALL_RECORDS,
    SYSTEM_BUSY,
    CallRecord,
    format_call_time,
    parse_call_time,
)
from tallyhub.callcenter.simulator import CallCenterWorld, create_app
from tallyhub.core.simulation import Faults, SimClock, running
from tallyhub.core.upstream import IncompleteSync, UpstreamError, UpstreamUnavailable

KEY = "client-test-key"
START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # 14:00 in China
TODAY = date(2026, 3, 1)
YESTERDAY = TODAY - timedelta(days=1)
# Retries without the production pauses, and no rate limit of ours in the way.
FAST = {
    "backoff_initial_seconds": 0.002,
    "backoff_max_seconds": 0.01,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
}
Hook = Callable[[Any], Awaitable[None]]


@dataclass
class Vendor:
    url: str
    clock: SimClock
    world: CallCenterWorld
    faults: Faults
    app: Any

    def served(self) -> int:
        total: int = self.app.state.requests.snapshot()["total"]
        return total

    def record_ids(self, day: date) -> list[str]:
        """Every record id of the date, in the vendor's order, straight from the world."""
        rows, total = self.world.records(day, 0, 10**9)
        assert len(rows) == total
        return [row["record_id"] for row in rows]

    def settings(self, *, key: str = KEY, **options: Any) -> CallcenterSettings:
        upstream = {**FAST, **options.pop("upstream", {})}
        return CallcenterSettings(base_url=self.url, api_key=key, upstream=upstream, **options)


@contextmanager
def vendor(records_per_day: int = 2000, tasks: int = 12, seed: int = 9) -> Iterator[Vendor]:
    clock = SimClock(START)
    app = create_app(
        seed=seed, records_per_day=records_per_day, clock=clock, api_key=KEY, tasks=tasks, agents=7
    )
    with running(app) as url:
        yield Vendor(url, clock, app.state.world, app.state.faults, app)


@pytest.fixture
def sim() -> Iterator[Vendor]:
    with vendor() as v:
        yield v


@asynccontextmanager
async def client_of(
    v: Vendor, *, request: Hook | None = None, response: Hook | None = None, **options: Any
) -> AsyncIterator[CallcenterClient]:
    async with CallcenterClient(v.settings(**options)) as client:
        if request is not None:
            client.http.event_hooks["request"].append(request)
        if response is not None:
            client.http.event_hooks["response"].append(response)
        yield client


def page_of(message: httpx.Request | httpx.Response) -> int | None:
    request = message if isinstance(message, httpx.Request) else message.request
    if request.url.path != CALL_RECORDS:
        return None
    return int(request.url.params["page"])


def assert_complete(read: RecordsRead, v: Vendor, day: date) -> None:
    ids = [record.record_id for record in read.records]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(v.record_ids(day))
    assert len(ids) == read.upstream_total == v.world.truth(day)["total_records"]
    assert read.missing == 0


# ---------------------------------------------------------------- the contract's times


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-01 08:00:00", datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
        ("2026-03-01 07:59:59", datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)),
        ("2026-12-31 23:59:59", datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_call_time_is_china_time_read_as_aware_utc(text: str, utc: datetime) -> None:
    parsed = parse_call_time(text)
    assert parsed == utc
    assert parsed.tzinfo is UTC
    assert format_call_time(parsed) == text


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-01T08:00:00",
        "2026-03-01 08:00:00+08:00",
        "2026-03-01 8:00:00",
        "2026-02-30 08:00:00",
        "",
        1772323200,
        datetime(2026, 3, 1, 8),  # naive
    ],
)
def test_a_call_time_in_another_shape_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_call_time(bad)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_call_times_round_trip_through_the_vendors_text(moment: datetime) -> None:
    instant = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_call_time(format_call_time(instant)) == instant


# ---------------------------------------------------------------- complete walks


async def _walk_records(v: Vendor, day: date, **options: Any) -> RecordsRead:
    async with client_of(v, **options) as client:
        return await client.call_records(day)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.integers(min_value=0, max_value=2600),
    page_size=st.integers(min_value=40, max_value=1000),
    concurrency=st.integers(min_value=1, max_value=8),
)
@example(records=0, page_size=1000, concurrency=8)
@example(records=1000, page_size=1000, concurrency=8)
@example(records=1001, page_size=1000, concurrency=8)
@example(records=2000, page_size=40, concurrency=1)  # 50 pages: just within the cap
@example(records=2001, page_size=40, concurrency=3)  # 51 pages: over it
@example(records=1999, page_size=999, concurrency=2)
def test_every_record_is_read_once_at_any_total_and_page_size(
    records: int, page_size: int, concurrency: int
) -> None:
    cap = 50
    upstream = {"page_concurrency": concurrency, "max_pages": cap}
    needed = math.ceil(records / page_size)
    with vendor(records_per_day=records) as v:
        walk = _walk_records(v, YESTERDAY, record_page_size=page_size, upstream=upstream)
        if needed > cap:  # past the cap: refused, never cut short
            with pytest.raises(IncompleteSync, match="safety cap"):
                asyncio.run(walk)
            assert v.served() == 1
            return
        read = asyncio.run(walk)
        assert_complete(read, v, YESTERDAY)
        assert v.served() == read.pages == max(1, needed)
    assert read.totals == [records] * max(1, needed)
    truth = v.world.truth(YESTERDAY)
    assert Counter(r.grade for r in read.records) == +Counter(truth["grades"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=st.integers(min_value=1, max_value=60), page_size=st.integers(1, 25))
@example(tasks=20, page_size=20)
@example(tasks=1, page_size=1)
def test_every_task_is_read_once_at_any_count_and_page_size(tasks: int, page_size: int) -> None:
    with vendor(records_per_day=300, tasks=tasks) as v:

        async def walk() -> list[Any]:
            async with client_of(v, task_page_size=page_size) as client:
                return await client.task_stats(YESTERDAY)

        items = asyncio.run(walk())
        truth = v.world.truth(YESTERDAY)
        assert v.served() == max(1, math.ceil(len(truth["by_task"]) / page_size))
    assert [item.task_id for item in items] == list(truth["by_task"])
    for item in items:
        expected = {k: v for k, v in truth["by_task"][item.task_id].items() if k[:6] != "grade_"}
        assert item.model_dump() == expected
    assert sum(item.callout_number for item in items) == 300


async def test_the_task_walk_stops_at_the_safety_cap() -> None:
    with vendor(tasks=30) as v:
        async with client_of(v, task_page_size=2, upstream={"max_pages": 3}) as client:
            with pytest.raises(IncompleteSync, match="safety cap"):
                await client.task_stats(YESTERDAY)
        assert v.served() == 1


async def test_records_keep_their_china_call_times_as_utc(sim: Vendor) -> None:
    read = await _walk_records(sim, YESTERDAY)
    rows, _ = sim.world.records(YESTERDAY, 0, 10**9)
    texts = {row["record_id"]: row["call_time"] for row in rows}
    assert all(record.call_time.tzinfo is UTC for record in read.records)
    assert all(format_call_time(r.call_time) == texts[r.record_id] for r in read.records)
    assert read.records[0] == CallRecord.model_validate(rows[0])


# ---------------------------------------------------------------- a day still growing


async def test_records_added_after_page_1_are_read_and_the_growth_is_told(sim: Vendor) -> None:
    added: list[str] = []

    async def after_page_1(response: httpx.Response) -> None:
        if page_of(response) == 1 and not added:
            added.extend(sim.world.add_arrivals(YESTERDAY, 1500))

    read = await _walk_records(
        sim,
        YESTERDAY,
        response=after_page_1,
        record_page_size=300,
        upstream={"page_concurrency": 3},
    )
    assert_complete(read, sim, YESTERDAY)
    assert len(read.records) == 3500
    assert set(added) <= {record.record_id for record in read.records}
    assert read.totals[0] == 2000
    assert read.totals[-1] == 3500
    assert read.pages == math.ceil(3500 / 300)


async def test_today_is_read_to_the_last_call_the_clock_let_in(sim: Vendor) -> None:
    async def after_page_1(response: httpx.Response) -> None:
        if page_of(response) == 1 and sim.clock.now() == START:
            sim.clock.advance(2 * 3600)

    read = await _walk_records(
        sim, TODAY, response=after_page_1, record_page_size=100, upstream={"page_concurrency": 4}
    )
    assert_complete(read, sim, TODAY)
    assert read.totals[0] < read.totals[-1] == len(read.records) < 2000
    latest = max(record.call_time for record in read.records)
    assert START < latest <= sim.clock.now()


async def test_a_page_answered_before_records_arrived_is_read_again(sim: Vendor) -> None:
    """Pages 2 and 3 in flight at once: page 3 (the last, not full) answers first, then
    records arrive and page 2 answers with a larger total. Walking on to page 4 alone would
    miss the records that came to fill page 3; the walk reads page 3 again."""
    page_3_answered = asyncio.Event()

    async def hold_page_2(request: httpx.Request) -> None:
        if page_of(request) == 2 and not page_3_answered.is_set():
            await page_3_answered.wait()
            sim.world.add_arrivals(YESTERDAY, 1000)

    async def note_page_3(response: httpx.Response) -> None:
        if page_of(response) == 3:
            page_3_answered.set()

    read = await _walk_records(
        sim,
        YESTERDAY,
        request=hold_page_2,
        response=note_page_3,
        record_page_size=800,  # 2000 records: pages of 800, 800, 400
        upstream={"page_concurrency": 2},
    )
    assert_complete(read, sim, YESTERDAY)
    assert len(read.records) == 3000
    # Page 1, then 2 (after the arrivals) and 3 (before), then 4, then page 3 again.
    assert read.totals == [2000, 3000, 2000, 3000, 3000]
    assert read.pages == sim.served() == 5


async def test_a_growing_day_past_the_cap_is_refused(sim: Vendor) -> None:
    async def after_page_1(response: httpx.Response) -> None:
        if page_of(response) == 1:
            sim.world.add_arrivals(YESTERDAY, 2000)

    with pytest.raises(IncompleteSync, match="safety cap"):
        await _walk_records(
            sim,
            YESTERDAY,
            response=after_page_1,
            record_page_size=500,
            upstream={"max_pages": 5, "page_concurrency": 2},
        )


# ---------------------------------------------------------------- failures


async def test_a_burst_of_5xx_and_429_is_retried_and_the_walk_completes(sim: Vendor) -> None:
    sim.faults.add(status=503, count=3)
    sim.faults.add(status=429, count=2, retry_after=0)
    sim.faults.add(business_code=SYSTEM_BUSY, count=2)
    # Seven failures in a row meet page 1: more than the default six attempts allow.
    read = await _walk_records(sim, YESTERDAY, record_page_size=250, upstream={"attempts": 8})
    assert_complete(read, sim, YESTERDAY)
    assert read.pages == 8
    assert sim.served() == 8 + 3 + 2 + 2
    assert sim.faults.pending() == []


async def test_a_rate_limited_walk_completes(sim: Vendor) -> None:
    sim.faults.rate_limit_per_second = 40
    read = await _walk_records(
        sim, YESTERDAY, record_page_size=40, upstream={"page_concurrency": 8, "attempts": 30}
    )
    assert_complete(read, sim, YESTERDAY)
    assert read.pages == 50


async def test_a_vendor_that_keeps_failing_is_unavailable(sim: Vendor) -> None:
    sim.faults.add(status=502, count=10)
    async with client_of(sim, upstream={"attempts": 3}) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.call_records(YESTERDAY)
        assert client.requests_made == 3


async def test_a_business_error_is_not_retried(sim: Vendor) -> None:
    sim.faults.add(business_code=40300, count=1)
    async with client_of(sim) as client:
        with pytest.raises(UpstreamError) as refused:
            await client.task_stats(YESTERDAY)
        assert client.requests_made == 1
    assert refused.value.code == 40300
    assert not isinstance(refused.value, UpstreamUnavailable)


@pytest.mark.parametrize("key", ["wrong-key", ""])
async def test_a_refused_key_is_401_and_never_retried(sim: Vendor, key: str) -> None:
    async with CallcenterClient(sim.settings(key=key)) as client:
        with pytest.raises(ApiKeyRejected, match="HTTP 401") as refused:
            await client.call_records(YESTERDAY)
        assert client.requests_made == 1
    assert isinstance(refused.value, UpstreamError)
    assert sim.served() == 1


async def test_a_base_url_given_to_the_client_wins_over_the_settings(sim: Vendor) -> None:
    settings = sim.settings(upstream={"attempts": 1}).model_copy(
        update={"base_url": "http://127.0.0.1:9"}
    )
    async with CallcenterClient(settings, base_url=sim.url) as client:
        items = await client.task_stats(YESTERDAY)
    assert len(items) == len(sim.world.truth(YESTERDAY)["by_task"])
