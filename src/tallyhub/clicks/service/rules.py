"""Campaign settings cached in the process, so that a click is checked without a database
round trip, and never held up by a slow database once its campaign is known.

A campaign's entry is, by age:

- fresh (loaded less than `ttl_seconds` ago): served;
- expired: served at once, while a refresh runs in the background (one per campaign at a
  time; one task loads every due campaign, several to a statement);
- not loaded by this process yet (never seen, known from the snapshot only, or changed by
  an admin here or in another process): the click waits for it, at most `load_timeout`.
  If the database does not give it by then, the value from before (the snapshot's, or the
  one before the change) is served, and the database asked again a few seconds later;
  with no value from before, `CampaignsUnavailable`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from tallyhub.clicks.models import Campaign
from tallyhub.clicks.service.recording import UNAVAILABLE, count_error
from tallyhub.clicks.service.snapshot import CampaignRule, CampaignSnapshot
from tallyhub.core.cache import CACHE_LOOKUPS
from tallyhub.core.db import Database

log = structlog.get_logger(__name__)

REFRESH_BATCH = 500  # campaigns per background read
REFRESH_TIMEOUT = 10.0  # a background read nobody waits for may take this long
RETRY_SECONDS = 5.0  # after a failed read, a campaign's last value is served this long
_NAME = "clicks.campaigns"
_GAVE_UP: tuple[type[BaseException], ...] = (TimeoutError, *UNAVAILABLE)


class CampaignsUnavailable(Exception):
    """The campaign is not known here and the database cannot be asked."""


@dataclass(slots=True)
class _Entry:
    rule: CampaignRule | None
    fresh_until: float  # served without asking the database until then
    loaded: bool  # read from the database by this process since its last change


class CampaignRules:
    """The cache of campaign rules of one serving process (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        *,
        load_timeout: float = 1.0,
        snapshot: CampaignSnapshot | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self.load_timeout = load_timeout
        self.snapshot = snapshot
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._loads: dict[int, asyncio.Task[CampaignRule | None]] = {}
        self._due: set[int] = set()  # expired, waiting for the background refresh
        self._refreshing: set[int] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._changes: dict[int, int] = {}  # campaign → invalidations, to drop stale loads
        self._miss = CACHE_LOOKUPS.labels(cache=_NAME, result="miss")
        self._stale = CACHE_LOOKUPS.labels(cache=_NAME, result="stale")

    # ------------------------------------------------------------ the hot path

    def cached(self, campaign_id: int) -> tuple[bool, CampaignRule | None]:
        """(True, rule) when the campaign can be answered now (its rule is None when there
        is no such campaign); (False, None) when the caller must `get()` it."""
        entry = self._entries.get(campaign_id)
        if entry is None:
            self._miss.inc()
            return False, None
        if entry.fresh_until > self.clock():
            return True, entry.rule  # (not counted: the hot path's usual answer)
        if not entry.loaded:
            self._miss.inc()
            return False, None
        self._stale.inc()
        self._refresh_later(campaign_id)
        return True, entry.rule

    async def get(self, campaign_id: int, wait: float | None = None) -> CampaignRule | None:
        """Wait for the campaign's rule, at most `wait` s (default `load_timeout`); None
        when there is no such campaign. Concurrent callers share one read, which goes on
        (and fills the cache) after a caller gave up waiting."""
        load = self._loads.get(campaign_id)
        if load is None:
            load = asyncio.create_task(self._load(campaign_id), name="clicks-campaign-load")
            self._loads[campaign_id] = load
            load.add_done_callback(lambda done: self._loaded(campaign_id, done))
        try:
            async with asyncio.timeout(self.load_timeout if wait is None else wait):
                return await asyncio.shield(load)
        except _GAVE_UP as error:
            return self._fallback(campaign_id, error)

    def _fallback(self, campaign_id: int, error: BaseException) -> CampaignRule | None:
        """The campaign's value from before, served for a while; or CampaignsUnavailable."""
        count_error("campaign_lookup", error)
        entry = self._entries.get(campaign_id)
        if entry is None:
            raise CampaignsUnavailable(repr(error)[:300]) from error
        self._stale.inc()
        entry.fresh_until = self.clock() + min(self.ttl, RETRY_SECONDS)
        log.warning(
            "clicks.campaign_served_from_before",
            campaign_id=campaign_id,
            loaded=entry.loaded,
            error=repr(error)[:300],
        )
        return entry.rule

    # ------------------------------------------------------------ changes and start-up

    def invalidate(self, campaign_id: int) -> None:
        """The campaign changed: its next click waits (bounded) for the new settings."""
        self._changes[campaign_id] = self._changes.get(campaign_id, 0) + 1
        entry = self._entries.get(campaign_id)
        if entry is not None:
            entry.loaded = False
            entry.fresh_until = 0.0

    def preload(self, rules: Iterable[CampaignRule]) -> None:
        """Rules from the snapshot: served only when the database does not give newer."""
        for rule in rules:
            if rule.id not in self._entries:
                self._entries[rule.id] = _Entry(rule, 0.0, loaded=False)
        self._trim()

    def clear(self) -> None:
        """Forget every campaign (they were read from another database)."""
        self._entries.clear()
        self._due.clear()

    async def stop(self) -> None:
        """Stop the reads in flight (their waiters, if any, have had their answer)."""
        tasks = [*self._loads.values(), *filter(None, [self._refresher])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ reading

    async def _load(self, campaign_id: int) -> CampaignRule | None:
        change = self._changes.get(campaign_id, 0)
        async with asyncio.timeout(REFRESH_TIMEOUT):
            rules = await self._read([campaign_id])
        rule = rules.get(campaign_id)
        self._store(campaign_id, rule, change)
        return rule

    def _loaded(self, campaign_id: int, load: asyncio.Task[CampaignRule | None]) -> None:
        self._loads.pop(campaign_id, None)
        if not load.cancelled():
            load.exception()  # retrieved here: each waiter got it, or served a fallback

    async def _read(self, campaign_ids: list[int]) -> dict[int, CampaignRule]:
        async with self.db.transaction(readonly=True) as session:
            rows = await session.execute(
                select(
                    Campaign.id, Campaign.allowed_hosts, Campaign.timezone, Campaign.filter_bots
                ).where(Campaign.id.in_(campaign_ids))
            )
            return {
                cid: CampaignRule(cid, tuple(hosts), timezone, bool(filter_bots))
                for cid, hosts, timezone, filter_bots in rows
            }

    def _store(self, campaign_id: int, rule: CampaignRule | None, change: int) -> None:
        if self._changes.get(campaign_id, 0) != change:
            return  # changed while this was read: the read may predate the change
        self._entries.pop(campaign_id, None)
        self._entries[campaign_id] = _Entry(rule, self.clock() + self.ttl, loaded=True)
        self._trim()
        if self.snapshot is not None:
            self.snapshot.put(campaign_id, rule)

    def _trim(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    # ------------------------------------------------------------ background refresh

    def _refresh_later(self, campaign_id: int) -> None:
        if campaign_id in self._due or campaign_id in self._refreshing:
            return
        if campaign_id in self._loads:
            return
        self._due.add(campaign_id)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh(), name="clicks-campaign-refresh")

    async def _refresh(self) -> None:
        """Read every due campaign, REFRESH_BATCH to a statement, until none is due."""
        while self._due:
            ids = sorted(self._due)[:REFRESH_BATCH]
            self._due.difference_update(ids)
            self._refreshing.update(ids)
            changes = {cid: self._changes.get(cid, 0) for cid in ids}
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    rules = await self._read(ids)
            except Exception as error:
                self._refresh_failed(ids, error)
                continue
            finally:
                self._refreshing.difference_update(ids)
            for cid in ids:
                self._store(cid, rules.get(cid), changes[cid])

    def _refresh_failed(self, campaign_ids: list[int], error: Exception) -> None:
        """Keep serving what we have; ask again in a few seconds."""
        count_error("campaign_refresh", error)
        if isinstance(error, UNAVAILABLE):
            log.warning(
                "clicks.campaign_refresh_failed", campaigns=len(campaign_ids), error=repr(error)
            )
        else:
            log.error("clicks.campaign_refresh_failed", campaigns=len(campaign_ids), exc_info=True)
        retry_at = self.clock() + min(self.ttl, RETRY_SECONDS)
        for cid in campaign_ids:
            entry = self._entries.get(cid)
            if entry is not None:
                entry.fresh_until = retry_at
