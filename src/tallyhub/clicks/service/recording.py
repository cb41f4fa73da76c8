"""The recorder behind `/__track`: it hands a click to the group-commit writer or, when
the database cannot take it in time, to the spool. Plus the domain's metrics (no campaign
or user ids as labels)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import exc

from tallyhub.clicks.service.events import ClickEvent
from tallyhub.clicks.service.spool import ClickSpool
from tallyhub.core.batching import BatchWriter, WriterSaturated, WriterStopped

log = structlog.get_logger(__name__)

TRACK_REQUESTS = Counter("track_requests_total", "/__track requests answered", ["status"])
TRACK_DURATION = Histogram(
    "track_request_duration_seconds",
    "/__track time from request to answer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
TRACK_ERRORS = Counter(
    "track_errors_total", "Failures on the click path", ["operation", "error_type"]
)
TRACK_DEDUP = Counter("track_dedup_total", "Repeated clicks inside the dedup window")
TRACK_SPOOLED = Counter("track_spooled_total", "Clicks written to the local spool")
TRACK_REJECTED = Counter("track_rejected_total", "Clicks refused (400/404)", ["reason"])
TRACK_REPLAYED = Counter("track_replayed_total", "Spooled clicks replayed", ["outcome"])

SPOOLED = "spooled"
LOST = "lost"

# The database cannot be reached or did not answer in time: spool, and stop trying for a
# moment so that every click does not wait for the same timeout.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    OSError,
    TimeoutError,
    WriterStopped,
)


def count_error(operation: str, error: BaseException) -> None:
    TRACK_ERRORS.labels(operation=operation, error_type=type(error).__name__).inc()


# ---------------------------------------------------------------- the recorder


COMMIT_TIMED_OUT = "the click's batch did not commit in time"


def _expire(committed: asyncio.Future[str]) -> None:
    if not committed.done():
        committed.set_exception(TimeoutError(COMMIT_TIMED_OUT))


def _timed_out(error: BaseException) -> bool:
    """The click's own commit timeout (the database answers, slowly), not a failure."""
    return isinstance(error, TimeoutError) and error.args == (COMMIT_TIMED_OUT,)


class ClickRecorder:
    """`record(event)` returns once the click is durable: committed by the writer, or, if
    the database is down, slow or the writer saturated, fsynced into the spool. It never
    raises: a click that cannot even be spooled is logged and counted as lost."""

    def __init__(
        self,
        writer: BatchWriter[ClickEvent, str],
        spool: ClickSpool,
        *,
        commit_timeout_ms: float,
        breaker_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.commit_timeout = commit_timeout_ms / 1000
        self.breaker_seconds = breaker_seconds
        self.clock = clock
        self._spool_until = 0.0
        # Clicks spooled while the writer may still hold them: the writer checks these
        # against the log before writing (a replay may have recorded them first).
        self.uncertain: dict[str, None] = {}

    def may_be_recorded(self, event: ClickEvent) -> bool:
        return event.event_id in self.uncertain

    async def record(self, event: ClickEvent, *, spent: float = 0.0) -> str:
        """`spent`: seconds the request already waited (for its campaign), taken off the
        commit timeout, so that the whole request stays within it."""
        if self._spool_until and self.clock() < self._spool_until:
            return await self._spool(event)
        try:
            # A timer on the click's own future, not asyncio.timeout(): on this path the
            # context manager cost more than checking the click's parameters.
            committed = self.writer.enqueue(event)
            timer = asyncio.get_running_loop().call_later(
                max(0.0, self.commit_timeout - spent), _expire, committed
            )
            try:
                return await committed
            finally:
                timer.cancel()
        except WriterSaturated as error:
            count_error("write", error)  # never queued: nothing else can record it
        except UNAVAILABLE as error:
            count_error("write", error)
            self._trip(error)
            self._uncertain(event)
        except Exception as error:
            count_error("write", error)
            log.error(
                "clicks.write_failed",
                event_id=event.event_id,
                campaign_id=event.campaign_id,
                error=repr(error),
            )
            self._uncertain(event)
        return await self._spool(event)

    def _uncertain(self, event: ClickEvent) -> None:
        self.uncertain[event.event_id] = None
        while len(self.uncertain) > 100_000:
            del self.uncertain[next(iter(self.uncertain))]

    def _trip(self, error: BaseException) -> None:
        if not (self._spool_until and self.clock() < self._spool_until):
            if _timed_out(error):
                log.error(
                    "clicks.commit_timed_out_spooling",
                    timeout_ms=self.commit_timeout * 1000,
                    seconds=self.breaker_seconds,
                )
            else:
                log.error(
                    "clicks.database_unavailable_spooling",
                    seconds=self.breaker_seconds,
                    error=repr(error)[:300],
                )
        self._spool_until = self.clock() + self.breaker_seconds

    def reset(self) -> None:
        """Try the database again with the next click (after a successful replay)."""
        self._spool_until = 0.0

    async def _spool(self, event: ClickEvent) -> str:
        try:
            await self.spool.append(event)
        except OSError as error:
            count_error("spool", error)
            log.error(
                "clicks.lost",
                event_id=event.event_id,
                campaign_id=event.campaign_id,
                record=event.to_record(),
                exc_info=True,
            )
            return LOST
        TRACK_SPOOLED.inc()
        return SPOOLED
