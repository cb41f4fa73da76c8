"""The base every third-party API client stands on: httpx with timeouts, retries with
exponential backoff and jitter (tenacity) that honour `Retry-After`, a per-upstream rate
limit, metrics per upstream and endpoint, and `paginate()`, which follows the upstream's
own end signal and raises `IncompleteSync` rather than hand back a partial result.

A domain's `client.py` subclasses `UpstreamClient` and overrides `check()` to turn its
envelope's business errors into these exceptions: `Retryable` (retried like a 5xx), or
its own `UpstreamError` subclasses (not retried: the caller decides).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Self, TypeVar

import httpx
import structlog
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, Field
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

UPSTREAM_REQUESTS = Counter(
    "upstream_requests_total", "Requests sent to upstream APIs", ["upstream", "endpoint"]
)
UPSTREAM_ERRORS = Counter(
    "upstream_errors_total",
    "Upstream requests that failed, by kind (timeout, connect, http_5xx, http_429, business code…)",
    ["upstream", "endpoint", "kind"],
)
UPSTREAM_SECONDS = Histogram(
    "upstream_request_seconds",
    "Upstream request latency",
    ["upstream", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_RATE_WAIT = Counter(
    "upstream_rate_limit_wait_seconds_total",
    "Time spent waiting for the per-upstream rate limit",
    ["upstream"],
)
SYNC_LAST_SUCCESS = Gauge(
    "sync_last_success_timestamp_seconds",
    "When a sync stream last completed for an account (Unix time)",
    ["domain", "stream", "account"],
)
SYNC_LAG = Gauge(
    "sync_lag_seconds",
    "Seconds since a sync stream last completed for an account, as of its last attempt",
    ["domain", "stream", "account"],
)


class UpstreamSettings(BaseModel):
    """How one upstream is called (a sync domain nests this in its settings)."""

    timeout_seconds: float = Field(default=15.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # Attempts per request (the first and the retries) on timeouts, connection errors,
    # 429, 5xx and the client's retryable business codes.
    attempts: int = Field(default=6, ge=1)
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=30.0, ge=0)
    # Token bucket per process and upstream: requests per second, and the burst it allows.
    rate_per_second: float = Field(default=20.0, gt=0)
    rate_burst: int = Field(default=20, ge=1)
    # Pages fetched at once once a walk knows its total (1: one page at a time).
    page_concurrency: int = Field(default=4, ge=1)
    # A walk that would need more pages than this stops with IncompleteSync.
    max_pages: int = Field(default=2000, ge=1)


# ---------------------------------------------------------------- errors


class UpstreamError(Exception):
    """A request the upstream did not answer with what was asked."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        upstream: str = "",
        endpoint: str = "",
        request_id: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.endpoint = endpoint
        self.request_id = request_id
        self.code = code


class Retryable(UpstreamError):
    """Worth another attempt after a pause (timeouts, 429, 5xx, a "too frequent" code)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """Every attempt failed; `__cause__` is the last failure."""

    kind = "unavailable"


class IncompleteSync(UpstreamError):
    """A page walk could not reach the upstream's end signal (safety cap, or the end
    signal contradicts itself): what it read must not be stored as complete."""

    kind = "incomplete"


# ---------------------------------------------------------------- rate limit


class TokenBucket:
    """`rate` requests per second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> float:
        """Wait for a token; the seconds waited."""
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            if self._tokens >= 0:
                return 0.0
            pause = -self._tokens / self.rate
            await asyncio.sleep(pause)
            return pause


# ---------------------------------------------------------------- the client


_SECONDS = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    if _SECONDS.fullmatch(value.strip()):
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.warning("upstream.bad_retry_after", value=value[:100])  # the backoff applies
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamClient:
    """One upstream API over HTTP. Use as `async with Client(url, settings) as client:`."""

    name = "upstream"
    # Response header that carries the upstream's request id, for the logs.
    request_id_header = "x-request-id"

    def __init__(
        self,
        base_url: str,
        settings: UpstreamSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        limits = httpx.Limits(max_connections=max(10, settings.page_concurrency * 2))
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=limits,
            transport=transport,
        )
        self.bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
        self.requests_made = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; the checked response, or the error the last attempt met
        (`UpstreamUnavailable` when retries ran out)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(method, path, endpoint, params, json, headers)
        except Retryable as error:
            raise UpstreamUnavailable(
                f"{self.name} {endpoint}: {self.settings.attempts} attempts failed; last: {error}",
                upstream=self.name,
                endpoint=endpoint,
                request_id=error.request_id,
                code=error.code,
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return float(min(hinted, self.settings.backoff_max_seconds))
        expo = wait_exponential_jitter(
            multiplier=self.settings.backoff_initial_seconds,
            max=self.settings.backoff_max_seconds,
            jitter=self.settings.backoff_initial_seconds,
        )
        return float(expo(state))

    async def _attempt(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        waited = await self.bucket.take()
        if waited:
            UPSTREAM_RATE_WAIT.labels(self.name).inc(waited)
        UPSTREAM_REQUESTS.labels(self.name, endpoint).inc()
        self.requests_made += 1
        started = time.perf_counter()
        try:
            response = await self.http.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TimeoutException as error:
            failure = self._failed(endpoint, "timeout", f"timed out: {error!r}", None)
            self._record(failure, endpoint)
            raise failure from error
        except httpx.TransportError as error:
            failure = self._failed(endpoint, "connect", f"transport: {error!r}", None)
            self._record(failure, endpoint)
            raise failure from error
        finally:
            UPSTREAM_SECONDS.labels(self.name, endpoint).observe(time.perf_counter() - started)
        try:
            self.check(response, endpoint)
        except UpstreamError as error:
            self._record(error, endpoint)
            raise
        return response

    def _failed(
        self, endpoint: str, kind: str, message: str, response: httpx.Response | None
    ) -> Retryable:
        request_id = response.headers.get(self.request_id_header) if response else None
        retry_after = retry_after_seconds(response.headers.get("retry-after")) if response else None
        error = Retryable(
            f"{self.name} {endpoint}: {message}",
            retry_after=retry_after,
            upstream=self.name,
            endpoint=endpoint,
            request_id=request_id,
        )
        error.kind = kind
        return error

    def _record(self, error: UpstreamError, endpoint: str) -> None:
        kind = error.kind if error.code is None else f"code_{error.code}"
        UPSTREAM_ERRORS.labels(self.name, endpoint, kind).inc()
        log.warning(
            "upstream.failed",
            upstream=self.name,
            endpoint=endpoint,
            kind=kind,
            request_id=error.request_id,
            retryable=isinstance(error, Retryable),
            error=str(error),
        )

    def check(self, response: httpx.Response, endpoint: str) -> None:
        """Raise for a response that is not an answer: 429 and 5xx are `Retryable`, other
        non-2xx statuses `UpstreamError`. Subclasses call this, then read their envelope."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise self._failed(endpoint, f"http_{status}", f"HTTP {status}", response)
        if status >= 400:
            raise UpstreamError(
                f"{self.name} {endpoint}: HTTP {status}: {response.text[:200]}",
                upstream=self.name,
                endpoint=endpoint,
                request_id=response.headers.get(self.request_id_header),
            )


# ---------------------------------------------------------------- pagination


@dataclass
class PageResult(Generic[T]):
    """One page as the upstream gave it, with its own end signal: the page count for
    numbered pages (`total` is kept for the record), the next cursor for cursors."""

    items: list[T]
    total: int | None = None
    total_pages: int | None = None
    next_cursor: str | None = None
    page: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


async def paginate(
    fetch: Callable[[int], Awaitable[PageResult[T]]],
    *,
    max_pages: int,
    concurrency: int = 1,
    what: str = "pages",
) -> AsyncGenerator[PageResult[T], None]:
    """Numbered pages 1, 2, … in order, until the page count the latest answer gives
    (a walk that sees the total grow goes on to the new last page). Once page 1 has told
    the count, up to `concurrency` pages are fetched at once. Needing more than `max_pages`
    raises `IncompleteSync` before any page past the cap is asked for. A consumer that stops
    early should close the walk (`async with contextlib.aclosing(paginate(…)) as pages`),
    which cancels the pages still in flight at once."""
    first = await fetch(1)
    last = _page_count(first, what)
    _within_cap(last, max_pages, what)
    yield first
    page = 1
    while page < last:
        batch = range(page + 1, min(last, page + max(1, concurrency)) + 1)
        tasks = [asyncio.ensure_future(fetch(n)) for n in batch]
        try:
            for number, task in zip(batch, tasks, strict=True):
                result = await task
                page = number
                last = _page_count(result, what)
                _within_cap(last, max_pages, what)
                yield result
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _page_count(result: PageResult[Any], what: str) -> int:
    if result.total_pages is not None:
        return result.total_pages
    raise IncompleteSync(f"{what}: the upstream gave no page count (total_page)")


def _within_cap(pages: int, max_pages: int, what: str) -> None:
    if pages > max_pages:
        raise IncompleteSync(
            f"{what}: {pages} pages exceed the safety cap of {max_pages}; "
            "nothing from this walk is stored as complete"
        )


async def paginate_cursor(
    fetch: Callable[[str | None], Awaitable[PageResult[T]]],
    *,
    max_pages: int,
    what: str = "pages",
) -> AsyncGenerator[PageResult[T], None]:
    """Cursor pages until the upstream gives no next cursor; `IncompleteSync` when the cap
    is reached with a cursor still pending, or when a cursor repeats (the walk would loop)."""
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(max_pages):
        result = await fetch(cursor)
        yield result
        cursor = result.next_cursor
        if not cursor:
            return
        if cursor in seen:
            raise IncompleteSync(f"{what}: the upstream repeated cursor {cursor!r}")
        seen.add(cursor)
    raise IncompleteSync(f"{what}: still more after the safety cap of {max_pages} pages")
