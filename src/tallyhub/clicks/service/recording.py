"""The live pieces behind `/__track`: the campaign rules cache, and the recorder that
hands a click to the group-commit writer or, when the database cannot take it, to the
spool. Plus the domain's metrics (no campaign or user ids as labels)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import exc, select

from tallyhub.clicks.models import Campaign
from tallyhub.clicks.service.events import ClickEvent
from tallyhub.clicks.service.spool import ClickSpool
from tallyhub.core.batching import BatchWriter, WriterSaturated, WriterStopped
from tallyhub.core.cache import TTLCache
from tallyhub.core.db import Database

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


# ---------------------------------------------------------------- campaign rules


@dataclass(frozen=True, slots=True)
class CampaignRule:
    """What checking a click needs to know about its campaign."""

    id: int
    allowed_hosts: tuple[str, ...]
    timezone: str


class CampaignsUnavailable(Exception):
    """The campaign is not cached and the database cannot be asked."""


class CampaignRules:
    """Campaign settings cached in the process: a click is checked without a database
    round trip. Entries live `ttl_seconds`; a change made here is dropped at once and, with
    Redis, in every other process too (the API publishes it through the hub). While the
    database is down an expired entry is still served."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        *,
        load_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.load_timeout = load_timeout
        self.cache: TTLCache[int, CampaignRule | None] = TTLCache(
            "clicks.campaigns", ttl_seconds, max_entries=100_000, clock=clock
        )

    def cached(self, campaign_id: int) -> tuple[bool, CampaignRule | None]:
        entry = self.cache.get(campaign_id)
        if entry is None:
            return False, None
        return True, entry.value

    async def get(self, campaign_id: int) -> CampaignRule | None:
        """The campaign's rule, or None when there is no such campaign."""
        try:
            return await self.cache.get_or_load(
                campaign_id, lambda: self._load(campaign_id), stale_on=UNAVAILABLE
            )
        except UNAVAILABLE as error:
            raise CampaignsUnavailable(str(error)) from error

    async def _load(self, campaign_id: int) -> CampaignRule | None:
        async with asyncio.timeout(self.load_timeout):
            async with self.db.transaction(readonly=True) as session:
                row = (
                    await session.execute(
                        select(Campaign.allowed_hosts, Campaign.timezone).where(
                            Campaign.id == campaign_id
                        )
                    )
                ).first()
        if row is None:
            return None
        return CampaignRule(campaign_id, tuple(row.allowed_hosts), row.timezone)

    def invalidate(self, campaign_id: int) -> None:
        self.cache.invalidate(campaign_id)


# ---------------------------------------------------------------- the recorder


def _expire(committed: asyncio.Future[str]) -> None:
    if not committed.done():
        committed.set_exception(TimeoutError("the click's batch did not commit in time"))


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

    async def record(self, event: ClickEvent) -> str:
        if self._spool_until and self.clock() < self._spool_until:
            return await self._spool(event)
        try:
            # A timer on the click's own future, not asyncio.timeout(): on this path the
            # context manager cost more than checking the click's parameters.
            committed = self.writer.enqueue(event)
            timer = asyncio.get_running_loop().call_later(self.commit_timeout, _expire, committed)
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
