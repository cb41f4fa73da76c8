"""What the clicks domain builds at start-up (writer, spool and its replay loop, campaign
cache and its snapshot, recorder, tracker), and typed access to it for the API and the
jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import service
from tallyhub.clicks.config import clicks_settings
from tallyhub.clicks.service.recording import TRACK_REPLAYED, UNAVAILABLE, count_error
from tallyhub.clicks.track import Tracker
from tallyhub.core.batching import BatchWriter
from tallyhub.core.cache import OnceWindow
from tallyhub.core.instance import database_id, masked_url
from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)

TOPIC = "clicks.campaigns"  # hub topic: a campaign's settings changed


@dataclass(frozen=True)
class ClickParts:
    writer: BatchWriter[service.ClickEvent, str]
    spool: service.ClickSpool
    rules: service.CampaignRules
    recorder: service.ClickRecorder
    tracker: Tracker
    snapshot: service.CampaignSnapshot


def parts(runtime: Runtime) -> ClickParts:
    """The parts of a process that serves HTTP (its lifespan started them)."""
    return runtime.part(ClickParts)


def serving_parts(runtime: Runtime) -> ClickParts | None:
    """The parts if this process serves HTTP; None in a job worker, which has none."""
    return runtime.find(ClickParts)


def classifier_of(runtime: Runtime) -> service.Classifier:
    """How this process classifies clicks' agents: `agents.classify`, or not at all."""
    if clicks_settings(runtime.settings).classify_agents:
        return service.classify
    return lambda _user_agent: None


def _build(runtime: Runtime) -> ClickParts:
    settings = clicks_settings(runtime.settings)
    known = service.KnownRows()
    classifier = classifier_of(runtime)

    async def apply(session: AsyncSession, events: Sequence[service.ClickEvent]) -> Any:
        return await service.apply_clicks(
            session,
            events,
            known=known,
            may_be_recorded=recorder.may_be_recorded,
            classifier=classifier,
        )

    writer: BatchWriter[service.ClickEvent, str] = BatchWriter.from_settings(
        "clicks", runtime.db, apply, settings.batching
    )
    spool = service.ClickSpool(
        service.spool_directory(runtime.settings.var_dir),
        target=service.SpoolTarget(None, masked_url(runtime.db.url)),
        flush_ms=settings.spool.flush_ms,
        rotate_seconds=settings.spool.rotate_seconds,
    )
    recorder = service.ClickRecorder(
        writer,
        spool,
        commit_timeout_ms=settings.commit_timeout_ms,
        breaker_seconds=settings.spool.breaker_seconds,
    )
    snapshot = service.CampaignSnapshot(service.snapshot_path(runtime.settings.var_dir))
    rules = service.CampaignRules(
        runtime.db,
        settings.campaign_cache_seconds,
        load_timeout=settings.campaign_load_timeout_ms / 1000,
        snapshot=snapshot,
    )
    dedup = OnceWindow(
        "clicks.dedup",
        settings.dedup_window_ms,
        runtime.redis,
        on_backend_error=lambda error: count_error("dedup", error),
    )
    tracker = Tracker(
        rules, dedup, recorder, service.link_key(runtime.secret_key), classifier=classifier
    )
    return ClickParts(writer, spool, rules, recorder, tracker, snapshot)


# ---------------------------------------------------------------- the spool's replay


async def _restore(runtime: Runtime, built: ClickParts) -> None:
    """What this host knew before the process started: the campaign snapshot (served
    only while the database does not answer) and the database it belongs to."""
    rules = await asyncio.to_thread(built.snapshot.load)
    built.rules.preload(rules.values())
    if built.snapshot.database_id is not None:
        built.spool.target = service.SpoolTarget(
            built.snapshot.database_id, masked_url(runtime.db.url)
        )


async def _learn_database(runtime: Runtime, built: ClickParts) -> None:
    """Ask the database its id: spooled clicks from now on name it, and a snapshot kept
    for another database is dropped."""
    current = await database_id(runtime.db)
    await built.spool.aim(service.SpoolTarget(current, masked_url(runtime.db.url)))
    kept_for = built.snapshot.database_id
    if kept_for is not None and kept_for != current:
        log.warning(
            "clicks.snapshot_of_another_database",
            snapshot_for=kept_for,
            this_database=current,
            campaigns=len(built.snapshot),
        )
        built.rules.clear()
    built.snapshot.reset(current)


async def replay_once(runtime: Runtime, built: ClickParts) -> dict[str, int]:
    """Replay this process's spool (and what other processes of this host left) now."""
    await _learn_database(runtime, built)
    counts = await service.replay_spool(
        runtime.db,
        service.spool_directory(runtime.settings.var_dir),
        chunk_size=clicks_settings(runtime.settings).spool.replay_chunk,
        own=built.spool,
        on_event=lambda outcome: TRACK_REPLAYED.labels(outcome=outcome).inc(),
        classifier=classifier_of(runtime),
    )
    built.recorder.reset()  # the database answered: stop spooling straight away
    return counts


async def _replay_loop(runtime: Runtime, built: ClickParts) -> None:
    """Every `spool.replay_seconds`, from start-up on: the spool is local to this
    process's host, so no job slot elsewhere can replay it."""
    every = clicks_settings(runtime.settings).spool.replay_seconds
    await _repeat("replay", "spool_replay", every, lambda: replay_once(runtime, built), "events")


async def _fold_loop(runtime: Runtime) -> None:
    """Every `breakdown_fold_seconds`: the breakdown deltas this and the other processes'
    batches inserted, folded into the breakdown rows (reads are exact meanwhile)."""
    every = clicks_settings(runtime.settings).breakdown_fold_seconds
    await _repeat("fold", "breakdown_fold", every, lambda: service.fold_breakdowns(runtime.db))


async def _repeat(
    operation: str,
    event: str,
    every: float,
    work: Callable[[], Awaitable[dict[str, int]]],
    worth_logging: str | None = None,
) -> None:
    """`work` every `every` seconds, from now on. A database out of reach is logged once
    until it answers again; any other failure every time; both are counted as errors of
    `operation`. A turn is logged when its `worth_logging` count is not 0, or after a
    failure."""
    failing = False
    while True:
        try:
            counts = await work()
        except UNAVAILABLE as error:
            count_error(operation, error)
            if not failing:
                log.warning(f"clicks.{event}_waiting", error=repr(error)[:300], every=every)
            failing = True
        except Exception as error:
            count_error(operation, error)
            log.error(f"clicks.{event}_failed", exc_info=True)
            failing = True
        else:
            if failing or (worth_logging is not None and counts[worth_logging]):
                log.info(f"clicks.{event}_done", **counts)
            failing = False
        await asyncio.sleep(every)


# ---------------------------------------------------------------- the lifespan


async def _invalidations(runtime: Runtime, built: ClickParts, subscription: Any) -> None:
    while True:
        message = await subscription.queue.get()
        built.rules.invalidate(int(message["campaign_id"]))


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Start the click writer, the spool, its replay loop and the campaign cache (from
    the snapshot); drain on shutdown."""
    built = _build(runtime)
    runtime.provide(built)
    await _restore(runtime, built)
    subscription = runtime.hub.subscribe(TOPIC, lambda _: True)
    await built.spool.start()
    await built.writer.start()
    await built.snapshot.start()
    tasks = [
        asyncio.create_task(_invalidations(runtime, built, subscription), name="clicks-inval"),
        asyncio.create_task(_replay_loop(runtime, built), name="clicks-spool-replay"),
        asyncio.create_task(_fold_loop(runtime), name="clicks-breakdown-fold"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        runtime.hub.unsubscribe(subscription)
        await built.writer.stop()  # clicks already submitted commit (or go to the spool)
        await built.spool.stop()
        await built.rules.stop()
        await built.snapshot.stop()
