"""The upstream client base over real HTTP, against a small upstream built on the simulator
kit: retries and what they wait, errors that are not retried, the rate limit, both page
walks to the upstream's own end (or `IncompleteSync`), and the metrics per upstream."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse
from tenacity import RetryCallState

from tallyhub.core.simulation import Faults, SimClock, running, simulator_app
from tallyhub.core.upstream import (
    IncompleteSync,
    PageResult,
    Retryable,
    TokenBucket,
    UpstreamClient,
    UpstreamError,
    UpstreamSettings,
    UpstreamUnavailable,
    paginate,
    paginate_cursor,
    retry_after_seconds,
)

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
# Tiny pauses, a rate limit that never bites and a client timeout no healthy answer nears.
FAST: dict[str, Any] = {
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
    "attempts": 4,
    "timeout_seconds": 5.0,
}
Chain = dict[str | None, tuple[list[int], str | None]]  # cursor -> (items, next cursor)


# ---------------------------------------------------------------- the upstream under test


@dataclass
class Listing:
    """Numbered pages of the items 1..total, oldest first. Just before page `grow_at` is
    answered, the total becomes `grow_to` (new items arrive during a walk)."""

    total: int = 0
    page_size: int = 10
    grow_at: int | None = None
    grow_to: int = 0
    tells_page_count: bool = True
    delay_per_page: float = 0.0  # when set, page n waits (20 - n) times it: later pages sooner
    asked: list[int] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, page: int) -> None:
        with self.lock:
            self.asked.append(page)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if page == self.grow_at:
                self.total = self.grow_to

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def answer(self, page: int) -> dict[str, Any]:
        with self.lock:
            total = self.total
        first = (page - 1) * self.page_size + 1
        items = list(range(first, min(total, first + self.page_size - 1) + 1))
        pages = -(-total // self.page_size)
        return {
            "items": items,
            "total": total,
            "total_page": pages if self.tells_page_count else None,
        }


class Upstream:
    """A small upstream on the simulator kit: faults, a request counter, and routes whose
    answers a test sets up."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.app = simulator_app("upstream under test", clock=SimClock(START), faults=self.faults)
        self.listing = Listing()
        self.chain: Chain = {}
        self.url = ""
        self._routes(self.app)

    def requests(self, path: str) -> int:
        by_path: dict[str, int] = self.app.state.requests.snapshot()["by_path"]
        return by_path.get(path, 0)

    def _routes(self, app: FastAPI) -> None:
        listing = self.listing

        @app.get("/ok")
        async def ok() -> dict[str, Any]:
            return {"ok": True}

        @app.get("/down")
        async def down() -> JSONResponse:
            return JSONResponse(
                {"message": "down"}, status_code=503, headers={"X-Request-Id": "r-7"}
            )

        @app.get("/refuses")
        async def refuses() -> None:
            raise HTTPException(400, "page_size: at most 100")

        @app.get("/pages")
        async def pages(page: int) -> dict[str, Any]:
            listing.enter(page)
            try:
                if listing.delay_per_page:
                    await asyncio.sleep(max(0, 20 - page) * listing.delay_per_page)
                return listing.answer(page)
            finally:
                listing.leave()

        @app.get("/cursor")
        async def cursor(cursor: str | None = None) -> dict[str, Any]:
            items, after = self.chain[cursor]
            return {"items": items, "next_cursor": after}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    served = Upstream()
    with running(served.app) as url:
        served.url = url
        yield served


class RecordingClient(UpstreamClient):
    """A domain's client as it would subclass the base, keeping the pauses tenacity chose
    between attempts. Each has its own upstream name, so its metrics are its own."""

    def __init__(self, base_url: str, settings: UpstreamSettings) -> None:
        super().__init__(base_url, settings)
        self.name = f"test_{uuid.uuid4().hex[:10]}"
        self.waits: list[float] = []

    def _wait(self, state: RetryCallState) -> float:
        wait = super()._wait(state)
        self.waits.append(wait)
        return wait


@pytest.fixture
async def client(upstream: Upstream) -> AsyncIterator[RecordingClient]:
    async with RecordingClient(upstream.url, UpstreamSettings(**FAST)) as made:
        yield made


def _client(url: str, **settings: Any) -> RecordingClient:
    return RecordingClient(url, UpstreamSettings(**{**FAST, **settings}))


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------- retries


async def test_a_503_burst_shorter_than_the_attempts_ends_in_the_answer(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.faults.add(status=503, count=3)
    response = await client.request("GET", "/ok", endpoint="ok")
    assert response.json() == {"ok": True}
    assert upstream.requests("/ok") == 4  # three failures, then the answer
    assert client.requests_made == 4
    assert len(client.waits) == 3
    # No Retry-After: exponential backoff with jitter, within the configured bounds.
    assert all(0.01 <= wait <= 0.05 for wait in client.waits)
    assert upstream.faults.pending() == []


@pytest.mark.parametrize(("hint", "waited"), [(0.02, 0.02), (0, 0.0), (30, 0.05)])
async def test_retry_after_decides_the_pause_capped_by_the_backoff_maximum(
    upstream: Upstream, client: RecordingClient, hint: float, waited: float
) -> None:
    upstream.faults.add(status=503, count=1, retry_after=hint)
    upstream.faults.add(status=429, count=1, retry_after=hint)
    response = await client.request("GET", "/ok", endpoint="ok")
    assert response.status_code == 200
    assert client.waits == [waited, waited]
    assert upstream.requests("/ok") == 3


def test_retry_after_reads_delta_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-3") == 0.0
    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = retry_after_seconds(in_two_minutes)
    assert seconds is not None and 60 < seconds <= 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past: at once
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds(None) is None


async def test_more_failures_than_attempts_is_unavailable_with_the_last_failure(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.faults.add(status=502, count=6)
    with pytest.raises(UpstreamUnavailable) as raised:
        await client.request("GET", "/ok", endpoint="ok")
    error = raised.value
    assert isinstance(error.__cause__, Retryable)
    assert error.__cause__.kind == "http_502"
    assert (error.upstream, error.endpoint) == (client.name, "ok")
    assert "4 attempts failed" in str(error)
    assert upstream.requests("/ok") == 4  # exactly `attempts`, no more
    assert all(0.01 <= wait <= 0.05 for wait in client.waits)
    assert upstream.faults.pending()[0]["count"] == 2  # the rest of the burst was not asked


async def test_the_last_failure_keeps_the_upstreams_request_id(
    upstream: Upstream, client: RecordingClient
) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await client.request("GET", "/down", endpoint="down")
    assert raised.value.request_id == "r-7"
    assert isinstance(raised.value.__cause__, Retryable)
    assert raised.value.__cause__.request_id == "r-7"


async def test_a_slow_answer_past_the_timeout_is_retried_as_a_timeout(upstream: Upstream) -> None:
    upstream.faults.add(slow_ms=1500, slow_count=1)
    async with _client(upstream.url, timeout_seconds=0.5) as client:
        response = await client.request("GET", "/ok", endpoint="ok")
    assert response.json() == {"ok": True}
    assert upstream.requests("/ok") == 2
    assert len(client.waits) == 1


async def test_only_slow_answers_end_unavailable_after_a_timeout(upstream: Upstream) -> None:
    upstream.faults.add(slow_ms=1500, slow_count=2)
    async with _client(upstream.url, timeout_seconds=0.3, attempts=2) as client:
        with pytest.raises(UpstreamUnavailable) as raised:
            await client.request("GET", "/ok", endpoint="ok")
    assert isinstance(raised.value.__cause__, Retryable)
    assert raised.value.__cause__.kind == "timeout"
    assert isinstance(raised.value.__cause__.__cause__, httpx.TimeoutException)
    assert upstream.requests("/ok") == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_refused_connection_is_retried_then_unavailable() -> None:
    async with _client(f"http://127.0.0.1:{_closed_port()}", attempts=3) as client:
        with pytest.raises(UpstreamUnavailable) as raised:
            await client.request("GET", "/ok", endpoint="ok")
    assert isinstance(raised.value.__cause__, Retryable)
    assert raised.value.__cause__.kind == "connect"
    assert client.requests_made == 3


@pytest.mark.parametrize(("path", "status"), [("/nowhere", 404), ("/refuses", 400)])
async def test_a_client_error_is_not_retried(
    upstream: Upstream, client: RecordingClient, path: str, status: int
) -> None:
    with pytest.raises(UpstreamError) as raised:
        await client.request("GET", path, endpoint="bad")
    assert type(raised.value) is UpstreamError  # neither Retryable nor UpstreamUnavailable
    assert f"HTTP {status}" in str(raised.value)
    assert upstream.requests(path) == 1
    assert client.waits == []


async def test_a_queued_client_error_is_not_retried_either(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.faults.add(status=403, count=2)
    with pytest.raises(UpstreamError, match="HTTP 403"):
        await client.request("GET", "/ok", endpoint="ok")
    assert upstream.requests("/ok") == 1
    assert upstream.faults.pending()[0]["count"] == 1


# ---------------------------------------------------------------- rate limit


async def test_the_token_bucket_lets_a_burst_through_then_makes_the_rest_wait() -> None:
    bucket = TokenBucket(rate=5, burst=2)
    waits = [await bucket.take() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert all(wait > 0 for wait in waits[2:])


async def test_the_token_bucket_makes_concurrent_takers_beyond_the_burst_wait() -> None:
    bucket = TokenBucket(rate=5, burst=2)
    waits = await asyncio.gather(*(bucket.take() for _ in range(4)))
    assert sorted(waits)[:2] == [0.0, 0.0]
    assert all(wait > 0 for wait in sorted(waits)[2:])


async def test_a_client_past_its_rate_records_the_wait(upstream: Upstream) -> None:
    async with _client(upstream.url, rate_per_second=20, rate_burst=1) as client:
        for _ in range(3):
            await client.request("GET", "/ok", endpoint="ok")
    assert _sample("upstream_rate_limit_wait_seconds_total", upstream=client.name) > 0
    assert upstream.requests("/ok") == 3


# ---------------------------------------------------------------- numbered pages


Fetch = Callable[[int], Awaitable[PageResult[int]]]


def _fetch_pages(client: UpstreamClient, tasks: list[asyncio.Task[Any]] | None = None) -> Fetch:
    async def fetch(page: int) -> PageResult[int]:
        if tasks is not None and page > 1:  # page 1 is awaited by the walk itself
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
        response = await client.request("GET", "/pages", endpoint="pages", params={"page": page})
        body = response.json()
        return PageResult(
            items=body["items"], total=body["total"], total_pages=body["total_page"], page=page
        )

    return fetch


async def _walk(fetch: Fetch, **options: Any) -> list[PageResult[int]]:
    return [result async for result in paginate(fetch, **options)]


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(("total", "pages"), [(0, 1), (1, 1), (10, 1), (11, 2), (50, 5)])
async def test_paginate_ends_exactly_at_the_page_count(
    upstream: Upstream, client: RecordingClient, concurrency: int, total: int, pages: int
) -> None:
    upstream.listing.total = total
    walked = await _walk(_fetch_pages(client), max_pages=5, concurrency=concurrency)
    assert [result.page for result in walked] == list(range(1, pages + 1))
    assert [item for result in walked for item in result.items] == list(range(1, total + 1))
    assert sorted(upstream.listing.asked) == list(range(1, pages + 1))  # no page past the end


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_paginate_follows_a_total_that_grows_during_the_walk(
    upstream: Upstream, client: RecordingClient, concurrency: int
) -> None:
    upstream.listing.total, upstream.listing.grow_at, upstream.listing.grow_to = 25, 2, 45
    walked = await _walk(_fetch_pages(client), max_pages=10, concurrency=concurrency)
    assert [result.page for result in walked] == [1, 2, 3, 4, 5]
    assert [item for result in walked for item in result.items] == list(range(1, 46))
    assert walked[-1].total == 45


async def test_paginate_refuses_a_walk_past_the_cap_before_asking_for_more(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total = 41  # 5 pages
    seen: list[int] = []
    with pytest.raises(IncompleteSync, match="5 pages exceed the safety cap of 4"):
        async for result in paginate(_fetch_pages(client), max_pages=4, what="orders"):
            seen.append(result.page)
    assert seen == []  # nothing of an incomplete walk reaches the consumer
    assert upstream.listing.asked == [1]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_paginate_stops_at_the_cap_when_the_total_grows_past_it(
    upstream: Upstream, client: RecordingClient, concurrency: int
) -> None:
    upstream.listing.total, upstream.listing.grow_at, upstream.listing.grow_to = 25, 2, 55
    seen: list[int] = []
    with pytest.raises(IncompleteSync, match="6 pages exceed the safety cap of 4"):
        async for result in paginate(_fetch_pages(client), max_pages=4, concurrency=concurrency):
            seen.append(result.page)
    assert seen == [1]
    assert max(upstream.listing.asked) <= 4  # no page past the cap was ever asked for


async def test_paginate_completes_a_walk_exactly_at_the_cap(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total = 40
    walked = await _walk(_fetch_pages(client), max_pages=4, concurrency=2)
    assert [result.page for result in walked] == [1, 2, 3, 4]


async def test_paginate_with_concurrency_yields_pages_in_order(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total, upstream.listing.delay_per_page = 90, 0.005  # later pages sooner
    walked = await _walk(_fetch_pages(client), max_pages=20, concurrency=4)
    assert [result.page for result in walked] == list(range(1, 10))
    assert [item for result in walked for item in result.items] == list(range(1, 91))
    assert 1 < upstream.listing.most_in_flight <= 4


async def test_a_consumer_that_stops_early_leaves_no_page_task_running(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total, upstream.listing.delay_per_page = 200, 0.005
    tasks: list[asyncio.Task[Any]] = []
    seen: list[int] = []
    async with aclosing(paginate(_fetch_pages(client, tasks), max_pages=50, concurrency=4)) as walk:
        async for result in walk:
            seen.append(result.page)
            if result.page == 2:
                break
    assert seen == [1, 2]
    assert len(tasks) == 4  # the batch 2..5
    assert all(task.done() for task in tasks)
    assert max(upstream.listing.asked) <= 5  # no batch after the break


async def test_a_plain_break_also_cancels_the_pages_in_flight_once_collected(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total, upstream.listing.delay_per_page = 200, 0.005
    tasks: list[asyncio.Task[Any]] = []
    async for result in paginate(_fetch_pages(client, tasks), max_pages=50, concurrency=4):
        if result.page == 2:
            break
    # The abandoned generator is closed by the event loop's finalizer, a few turns later.
    for _ in range(100):
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0)
    assert len(tasks) == 4
    assert all(task.done() for task in tasks)


async def test_paginate_without_a_page_count_is_incomplete(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.listing.total, upstream.listing.tells_page_count = 30, False
    with pytest.raises(IncompleteSync, match="no page count"):
        await _walk(_fetch_pages(client), max_pages=10)
    assert upstream.listing.asked == [1]


# ---------------------------------------------------------------- cursor pages


def _fetch_cursor(client: UpstreamClient) -> Callable[[str | None], Awaitable[PageResult[int]]]:
    async def fetch(cursor: str | None) -> PageResult[int]:
        params = {} if cursor is None else {"cursor": cursor}
        body = (await client.request("GET", "/cursor", endpoint="cursor", params=params)).json()
        return PageResult(items=body["items"], next_cursor=body["next_cursor"])

    return fetch


async def test_paginate_cursor_follows_the_cursors_to_the_end(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.chain = {None: ([1, 2], "a"), "a": ([3, 4], "b"), "b": ([5], None)}
    walked = [r async for r in paginate_cursor(_fetch_cursor(client), max_pages=3)]
    assert [item for result in walked for item in result.items] == [1, 2, 3, 4, 5]
    assert upstream.requests("/cursor") == 3


async def test_paginate_cursor_refuses_a_repeated_cursor(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.chain = {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "a")}
    seen: list[int] = []
    with pytest.raises(IncompleteSync, match="repeated cursor 'a'"):
        async for result in paginate_cursor(_fetch_cursor(client), max_pages=10):
            seen.extend(result.items)
    assert seen == [1, 2, 3]
    assert upstream.requests("/cursor") == 3  # the loop was not entered a second time


async def test_paginate_cursor_stops_at_the_cap_with_a_cursor_pending(
    upstream: Upstream, client: RecordingClient
) -> None:
    upstream.chain = {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "c"), "c": ([4], None)}
    with pytest.raises(IncompleteSync, match="safety cap of 3"):
        await _drain(paginate_cursor(_fetch_cursor(client), max_pages=3))
    assert upstream.requests("/cursor") == 3


async def _drain(walk: AsyncIterator[PageResult[int]]) -> None:
    async for _ in walk:
        continue


# ---------------------------------------------------------------- metrics


async def test_metrics_count_requests_and_errors_by_upstream_endpoint_and_kind(
    upstream: Upstream, client: RecordingClient
) -> None:
    name = client.name
    upstream.faults.add(status=503, count=2)
    upstream.faults.add(status=429, count=1, retry_after=0)
    await client.request("GET", "/ok", endpoint="ok")
    with pytest.raises(UpstreamError):
        await client.request("GET", "/refuses", endpoint="refuses")

    assert _sample("upstream_requests_total", upstream=name, endpoint="ok") == 4
    assert _sample("upstream_requests_total", upstream=name, endpoint="refuses") == 1
    errors = {
        kind: _sample("upstream_errors_total", upstream=name, endpoint="ok", kind=kind)
        for kind in ("http_503", "http_429", "error")
    }
    assert errors == {"http_503": 2, "http_429": 1, "error": 0}
    assert _sample("upstream_errors_total", upstream=name, endpoint="refuses", kind="error") == 1
    assert _sample("upstream_request_seconds_count", upstream=name, endpoint="ok") == 4


async def test_metrics_count_timeouts_and_refused_connections_as_errors(
    upstream: Upstream,
) -> None:
    upstream.faults.add(slow_ms=1500, slow_count=1)
    async with _client(upstream.url, timeout_seconds=0.5) as slow:
        await slow.request("GET", "/ok", endpoint="ok")
    async with _client(f"http://127.0.0.1:{_closed_port()}", attempts=2) as refused:
        with pytest.raises(UpstreamUnavailable):
            await refused.request("GET", "/ok", endpoint="ok")
    timeouts = _sample("upstream_errors_total", upstream=slow.name, endpoint="ok", kind="timeout")
    connects = _sample(
        "upstream_errors_total", upstream=refused.name, endpoint="ok", kind="connect"
    )
    assert (timeouts, connects) == (1, 2)
