"""The call-center vendor's ("Guanke") API on core/upstream.py: a date's task dimension and
its call records, every page of each, read against the schemas of `contract.py`.

Business errors arrive in the envelope (`code != 0`): the "too frequent" and "system busy"
codes are retried like a 429 or a 5xx, every other code is an `UpstreamError`. A missing or
rejected key (HTTP 401/403) is `ApiKeyRejected`, never retried.

Call records keep arriving during the day, so a walk of today may see `total` grow. The
vendor lists new records last; with pages fetched at once, a page answered later in time
may come earlier in page order, and a page answered early may hold fewer records than a
later total puts there. So the walk goes on to the last page of the largest total any page
answered, then reads again every page that held fewer records than that total puts there
(a few rounds at most), drops records met twice by `record_id`, and reports what it read
next to what the vendor said (`RecordsRead`), for the caller to judge.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from tallyhub.callcenter.config import CallcenterSettings
from tallyhub.callcenter.contract import (
    API_KEY_HEADER,
    CALL_RECORDS,
    MAX_RECORD_PAGE_SIZE,
    MAX_TASK_PAGE_SIZE,
    OK,
    RETRYABLE_CODES,
    TASK_STATS,
    CallRecord,
    Envelope,
    EnvelopeHead,
    Page,
    TaskStatsItem,
)
from tallyhub.core.upstream import (
    IncompleteSync,
    PageResult,
    Retryable,
    UpstreamClient,
    UpstreamError,
    paginate,
)

log = structlog.get_logger(__name__)
REFILL_ROUNDS = 3  # times a walk reads again the pages that held fewer records than due
ItemT = TypeVar("ItemT", bound=BaseModel)
TaskPage = Envelope[Page[TaskStatsItem]]
RecordPage = Envelope[Page[CallRecord]]


class ApiKeyRejected(UpstreamError):
    """The vendor refused the API key (HTTP 401/403): only a new key helps."""

    kind = "key_rejected"


@dataclass
class RecordsRead:
    """A walk of one date's call records: the records read (each once, by `record_id`), the
    `total` each page answered in the order they were read (the walk in page order, then any
    page read again) and how many page answers were read."""

    records: list[CallRecord]
    totals: list[int]
    pages: int

    @property
    def upstream_total(self) -> int:
        """The largest total the vendor gave during the walk."""
        return max(self.totals, default=0)

    @property
    def missing(self) -> int:
        """Records the vendor counted that the walk did not read (0 for a complete walk)."""
        return max(0, self.upstream_total - len(self.records))


class CallcenterClient(UpstreamClient):
    name = "callcenter"

    def __init__(self, settings: CallcenterSettings, *, base_url: str | None = None) -> None:
        super().__init__(base_url or settings.base_url, settings.upstream)
        self.callcenter = settings
        self.http.headers[API_KEY_HEADER] = settings.api_key

    # ------------------------------------------------------------ envelope

    def check(self, response: httpx.Response, endpoint: str) -> None:
        status = response.status_code
        kw: dict[str, Any] = {"upstream": self.name, "endpoint": endpoint}
        if status in (401, 403):
            message = _message(response)
            raise ApiKeyRejected(f"callcenter {endpoint}: HTTP {status}: {message}", **kw)
        if 400 <= status < 500 and status != 429:
            body = _envelope(response, endpoint)
            code = body.code if body is not None else None
            message = body.message if body is not None else response.text[:200]
            raise UpstreamError(f"callcenter {endpoint}: HTTP {status}: {message}", code=code, **kw)
        super().check(response, endpoint)
        body = _envelope(response, endpoint)
        if body is None:
            raise UpstreamError(f"callcenter {endpoint}: not an envelope", **kw)
        if body.code != OK:
            raise _business_error(body.code, body.message, endpoint)

    async def _page(
        self,
        path: str,
        endpoint: str,
        model: type[Envelope[Page[ItemT]]],
        day: date,
        page: int,
        size: int,
    ) -> Page[ItemT]:
        params = {"date": day.isoformat(), "page": page, "page_size": size}
        response = await self.request("GET", path, endpoint=endpoint, params=params)
        try:
            answered = model.model_validate_json(response.content).data
        except ValidationError as error:
            raise UpstreamError(
                f"callcenter {endpoint} {day} page {page}: unreadable: {error}",
                upstream=self.name,
                endpoint=endpoint,
            ) from error
        if len(answered.items) > answered.page_size:
            raise UpstreamError(
                f"callcenter {endpoint} {day} page {page}: {len(answered.items)} items "
                f"on a page of {answered.page_size}",
                upstream=self.name,
                endpoint=endpoint,
            )
        return answered

    # ------------------------------------------------------------ the two dimensions

    async def task_stats(self, day: date) -> list[TaskStatsItem]:
        """Every task's figures of `day` (a China date), each task once (its latest figures)."""
        size = min(self.callcenter.task_page_size, MAX_TASK_PAGE_SIZE)

        async def fetch(page: int) -> PageResult[TaskStatsItem]:
            answered = await self._page(TASK_STATS, "task_stats", TaskPage, day, page, size)
            return _result(answered, page, answered.total_pages)

        by_task: dict[str, TaskStatsItem] = {}
        async with aclosing(self._walk(fetch, f"callcenter task stats of {day}")) as pages:
            async for result in pages:
                for item in result.items:
                    by_task[item.task_id] = item
        return list(by_task.values())

    async def call_records(self, day: date) -> RecordsRead:
        """Every call record of `day` (a China date); see the module on growing totals."""
        walk = _RecordWalk(self, day, min(self.callcenter.record_page_size, MAX_RECORD_PAGE_SIZE))
        async with aclosing(self._walk(walk.fetch, walk.what)) as pages:
            async for result in pages:
                walk.keep(result)
        for _ in range(REFILL_ROUNDS):
            short = walk.short_pages()
            if not short:
                break
            if short[-1] > self.settings.max_pages:
                raise IncompleteSync(
                    f"{walk.what}: {short[-1]} pages exceed the safety cap of "
                    f"{self.settings.max_pages}; nothing from this walk is stored as complete",
                    upstream=self.name,
                    endpoint="call_records",
                )
            await walk.refill(short, self.settings.page_concurrency)
        read = walk.result()
        _log_walk(day, read, walk.met)
        return read

    def _walk(
        self, fetch: Callable[[int], Awaitable[PageResult[ItemT]]], what: str
    ) -> AsyncGenerator[PageResult[ItemT], None]:
        return paginate(
            fetch,
            max_pages=self.settings.max_pages,
            concurrency=self.settings.page_concurrency,
            what=what,
        )


class _RecordWalk:
    """What one walk of a date's call records has read so far. Pages answered at different
    moments may disagree on `total`: the walk goes to the last page of the largest total,
    and a page that held fewer records than that total puts there (read before some
    arrived) is read again, up to REFILL_ROUNDS times."""

    def __init__(self, client: CallcenterClient, day: date, size: int) -> None:
        self.client, self.day, self.asked = client, day, size
        self.what = f"callcenter call records of {day}"
        self.largest = 0
        self.size: int | None = None  # the page size the vendor answers with
        self.held: dict[int, int] = {}  # page -> records it held (at its latest answer)
        self.by_id: dict[str, CallRecord] = {}
        self.totals: list[int] = []
        self.met = 0  # records met, duplicates included

    async def fetch(self, page: int) -> PageResult[CallRecord]:
        client = self.client
        answered = await client._page(
            CALL_RECORDS, "call_records", RecordPage, self.day, page, self.asked
        )
        if self.size is not None and answered.page_size != self.size:
            raise UpstreamError(
                f"{self.what}: page {page} came with page_size {answered.page_size}, "
                f"earlier pages with {self.size}",
                upstream=client.name,
                endpoint="call_records",
            )
        self.size = answered.page_size
        self.largest = max(self.largest, answered.total)
        return _result(answered, page, math.ceil(self.largest / answered.page_size))

    def keep(self, result: PageResult[CallRecord]) -> None:
        self.totals.append(result.total or 0)
        self.held[result.page] = len(result.items)
        self.met += len(result.items)
        self.by_id.update((record.record_id, record) for record in result.items)

    def short_pages(self) -> list[int]:
        """Pages up to the largest total that held fewer records than it puts there."""
        size = self.size or self.asked
        last = math.ceil(self.largest / size)
        return [
            page
            for page in range(1, last + 1)
            if self.held.get(page, 0) < min(size, self.largest - (page - 1) * size)
        ]

    async def refill(self, pages: list[int], concurrency: int) -> None:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def again(page: int) -> PageResult[CallRecord]:
            async with gate:
                return await self.fetch(page)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(again(page)) for page in pages]
        for task in tasks:
            self.keep(task.result())

    def result(self) -> RecordsRead:
        return RecordsRead(
            records=list(self.by_id.values()), totals=self.totals, pages=len(self.totals)
        )


def _result(answered: Page[ItemT], page: int, total_pages: int) -> PageResult[ItemT]:
    return PageResult(
        items=answered.items, total=answered.total, total_pages=total_pages, page=page
    )


def _log_walk(day: date, read: RecordsRead, met: int) -> None:
    fields = {
        "day": day.isoformat(),
        "read": len(read.records),
        "upstream_total": read.upstream_total,
        "pages": read.pages,
        "duplicates": met - len(read.records),
    }
    if read.missing:
        log.warning("callcenter.records_missing", missing=read.missing, **fields)
    else:
        log.info("callcenter.records_read", **fields)


def _envelope(response: httpx.Response, endpoint: str) -> EnvelopeHead | None:
    try:
        return EnvelopeHead.model_validate_json(response.content)
    except ValidationError:
        log.warning(
            "callcenter.not_an_envelope",
            endpoint=endpoint,
            status=response.status_code,
            body=response.text[:200],
        )
        return None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return response.text[:200]


def _business_error(code: int, message: str, endpoint: str) -> UpstreamError:
    kw: dict[str, Any] = {"upstream": "callcenter", "endpoint": endpoint, "code": code}
    text = f"callcenter {endpoint}: code {code}: {message}"
    if code in RETRYABLE_CODES:
        error = Retryable(text, **kw)
        error.kind = f"code_{code}"
        return error
    return UpstreamError(text, **kw)
