"""Group commit: many small high-rate writes applied together in one transaction.

`await writer.submit(event)` returns only after the transaction holding the event has
committed, so an acknowledged event is durable. Events wait at most `max_wait_ms` (or
until `max_batch` are queued); while a batch commits the next one gathers. The apply
function coalesces deltas per key and touches keys in sorted order, so batches from
several processes cannot deadlock each other. A retryable error retries the batch;
an error tied to the data splits the batch so that only the bad event fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core import metrics
from tallyhub.core.config import BatchSettings
from tallyhub.core.db import Database, backoff, is_disconnect, is_lock_conflict, is_retryable

log = structlog.get_logger(__name__)

E = TypeVar("E")
R = TypeVar("R")

ApplyBatch = Callable[[AsyncSession, Sequence[E]], Awaitable[Sequence[R | Exception]]]


class WriterSaturated(Exception):
    """The writer's queue is full and the caller asked not to wait."""


class WriterStopped(Exception):
    """The writer is not running (not started, or shutting down)."""


@dataclass(slots=True)
class _Pending(Generic[E, R]):
    event: E
    future: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


_STOP: Any = object()


def _is_unavailable(error: BaseException) -> bool:
    """The database cannot be reached: splitting the batch would only repeat the failure."""
    if is_disconnect(error):
        return True
    return isinstance(
        error, exc.OperationalError | exc.InterfaceError | OSError | TimeoutError
    ) and not is_lock_conflict(error)


class BatchWriter(Generic[E, R]):
    def __init__(
        self,
        name: str,
        db: Database,
        apply: ApplyBatch[E, R],
        *,
        enabled: bool = True,
        max_batch: int = 500,
        max_wait_ms: float = 2.0,
        queue_size: int = 20_000,
        retries: int = 5,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self.db = db
        self.apply = apply
        self.enabled = enabled
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.retries = retries
        self.concurrency = 1 if db.dialect == "sqlite" else concurrency
        self._queue: asyncio.Queue[_Pending[E, R]] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._direct: set[asyncio.Future[None]] = set()  # writes of a disabled writer
        self._running = False
        # Read when scraped: nothing to update on every submit.
        metrics.BATCH_QUEUE_DEPTH.labels(writer=name).set_function(self._queue.qsize)
        self._size = metrics.BATCH_SIZE.labels(writer=name)
        self._seconds = metrics.BATCH_COMMIT_SECONDS.labels(writer=name)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def from_settings(
        cls, name: str, db: Database, apply: ApplyBatch[E, R], settings: BatchSettings
    ) -> BatchWriter[E, R]:
        """A writer tuned by its domain's `batching` settings section."""
        return cls(
            name,
            db,
            apply,
            enabled=settings.enabled,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            queue_size=settings.queue_size,
            retries=settings.retries,
            concurrency=settings.concurrency,
        )

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        if self.enabled:
            self._tasks = [
                asyncio.create_task(self._consume(), name=f"batch-writer-{self.name}-{i}")
                for i in range(self.concurrency)
            ]

    async def stop(self) -> None:
        """Apply everything already submitted, then stop."""
        if not self._running:
            return
        self._running = False
        for _ in self._tasks:
            await self._queue.put(_STOP)
        await asyncio.gather(*self._tasks, *self._direct)
        self._tasks = []

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------ submitting

    async def submit(self, event: E, *, wait: bool = True) -> R:
        """Queue the event and return its result once its transaction has committed. With
        `wait=False` a full queue raises `WriterSaturated` instead of waiting for room."""
        if wait and self.enabled and self._running:
            item: _Pending[E, R] = _Pending(event)
            await self._queue.put(item)
            return await item.future
        return await self.enqueue(event)

    def enqueue(self, event: E) -> asyncio.Future[R]:
        """Queue the event without waiting: the future gets its result once its transaction
        has committed. Raises `WriterSaturated` when the queue is full. A hot path awaits
        the future itself (no coroutine per event); a caller that gives up on it may set
        its exception or cancel it: the writer then leaves it alone, but still writes the
        event (the caller must be ready for that: clicks are idempotent by event id). A
        disabled writer applies the event at once, in a task of its own."""
        if not self._running:
            raise WriterStopped(self.name)
        item: _Pending[E, R] = _Pending(event)
        if not self.enabled:
            direct = asyncio.ensure_future(self._apply_alone(item))
            self._direct.add(direct)
            direct.add_done_callback(self._direct.discard)
            return item.future
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise WriterSaturated(self.name) from None
        return item.future

    async def submit_many(self, events: Sequence[E]) -> list[R | BaseException]:
        """Submit several events; one result (or the event's own error) each, in order."""
        return await asyncio.gather(*(self.submit(e) for e in events), return_exceptions=True)

    async def _apply_alone(self, item: _Pending[E, R]) -> None:
        """A disabled writer's transaction for one event, in a task of its own: it runs to
        its end even when the caller stops waiting (a commit timeout), and whatever ends
        it reaches the caller."""
        try:
            await self._apply_isolating([item])
        except asyncio.CancelledError:
            item.future.cancel()
            raise
        except Exception as error:
            self._fail_all([item], error)

    def _fail_all(self, items: list[_Pending[E, R]], error: Exception) -> None:
        """An error from outside the apply function's own handling (a bug): logged, and
        given to every event of the batch still waiting."""
        log.error("batch.consumer_error", writer=self.name, exc_info=error)
        metrics.BATCH_EVENT_ERRORS.labels(writer=self.name, error_type=type(error).__name__).inc(
            len(items)
        )
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    # ------------------------------------------------------------ consuming

    async def _consume(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            items = [first]
            stop_seen = self._drain(items)
            if not stop_seen and len(items) < self.max_batch and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
                stop_seen = self._drain(items)
            try:
                await self._apply_isolating(items)
            except Exception as error:
                # Never let one batch end the consumer: every later submit would hang.
                self._fail_all(items, error)
            if stop_seen:
                return

    def _drain(self, items: list[_Pending[E, R]]) -> bool:
        while len(items) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return False
            if item is _STOP:
                return True
            items.append(item)
        return False

    async def _apply_isolating(self, items: list[_Pending[E, R]]) -> None:
        """Apply the batch; if data in it fails, split until only the bad event fails."""
        try:
            results = await self._apply_retrying(items)
        except Exception as error:
            if len(items) == 1 or _is_unavailable(error):
                for item in items:
                    self._fail(item, error)
                return
            metrics.BATCH_SPLITS.labels(writer=self.name).inc()
            middle = len(items) // 2
            await self._apply_isolating(items[:middle])
            await self._apply_isolating(items[middle:])
            return
        if len(results) != len(items):
            # A bug in the apply function: no event can be told its own result.
            raise ValueError(
                f"{self.name}: apply returned {len(results)} results for {len(items)} events"
            )
        for item, result in zip(items, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, Exception):
                metrics.BATCH_EVENT_ERRORS.labels(
                    writer=self.name, error_type=type(result).__name__
                ).inc()
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def _apply_retrying(self, items: list[_Pending[E, R]]) -> Sequence[R | Exception]:
        events = [item.event for item in items]
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                async with self.db.transaction() as session:
                    results = await self.apply(session, events)
            except (exc.DBAPIError, exc.IntegrityError) as error:
                # A concurrent writer elsewhere may have claimed a unique key between our read
                # and our insert; a fresh attempt sees its commit. Bounded, then split.
                retry = is_retryable(error) or isinstance(error, exc.IntegrityError)
                if not retry or attempt >= self.retries:
                    raise
                attempt += 1
                metrics.DB_RETRIES.labels(kind=f"batch:{self.name}").inc()
                log.warning(
                    "batch.retry",
                    writer=self.name,
                    attempt=attempt,
                    size=len(events),
                    error=str(error.orig)[:200],
                )
                await backoff(attempt)
                continue
            self._seconds.observe(time.perf_counter() - started)
            self._size.observe(len(events))
            return results

    def _fail(self, item: _Pending[E, R], error: Exception) -> None:
        metrics.BATCH_EVENT_ERRORS.labels(writer=self.name, error_type=type(error).__name__).inc()
        log.error(
            "batch.event_failed",
            writer=self.name,
            failed_event=repr(item.event)[:300],  # `event` is structlog's message argument
            error=repr(error)[:300],
        )
        if not item.future.done():
            item.future.set_exception(error)
