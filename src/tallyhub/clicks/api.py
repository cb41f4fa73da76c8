"""HTTP edge of the clicks domain: the `/__track` hot path (a plain ASGI route with its
own parameter checks, mounted ahead of every FastAPI route) and the admin API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import unquote_plus

import structlog
from fastapi import APIRouter, FastAPI, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tallyhub.clicks import schemas, service
from tallyhub.clicks.service.recording import (
    TRACK_DEDUP,
    TRACK_DURATION,
    TRACK_REJECTED,
    TRACK_REQUESTS,
    count_error,
)
from tallyhub.clicks.service.tracking import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TARGET_LENGTH,
    check_tags,
    check_type,
    check_uid,
    parse_id,
)
from tallyhub.core import recalibration
from tallyhub.core.auth import CurrentUser, WriterUser
from tallyhub.core.batching import BatchWriter
from tallyhub.core.cache import OnceWindow
from tallyhub.core.db import after_commit, utcnow
from tallyhub.core.http import (
    Days,
    Page,
    Paging,
    Session,
    TransactionalRoute,
    page_of,
)
from tallyhub.core.runtime import Runtime, runtime_of
from tallyhub.settings import Settings

log = structlog.get_logger(__name__)

TRACKER = "clicks.tracker"
WRITER = "clicks.writer"
SPOOL = "clicks.spool"
RULES = "clicks.rules"
RECORDER = "clicks.recorder"
TOPIC = "clicks.campaigns"  # hub topic: a campaign's settings changed


# ---------------------------------------------------------------- the hot path


def _json(
    status: int, code: str, message: str, *, retry_after: int | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return status, headers, body


def _redirect(location: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return (
        302,
        [
            (b"location", location.encode("ascii")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ],
        b"",
    )


_SINGLE = ("cid", "to", "src", "type", "uid", "sig")
# The same few targets and tags arrive again and again: unquote and check each once. Each
# cache is bounded in entries and in what one entry may hold (a query can be ~80 KB):
# values beyond what a valid click could carry are handled every time, not kept.
_CACHED = 1024
_unquote_cached = lru_cache(maxsize=_CACHED)(unquote_plus)
_target = lru_cache(maxsize=_CACHED)(service.parse_target)  # `to` ≤ 2,048 or refused
_MAX_RAW = 3 * MAX_TARGET_LENGTH
_MAX_RAW_TAGS = MAX_TAGS * MAX_TAG_LENGTH


def _unquoted(raw: str) -> str:
    return _unquote_cached(raw) if len(raw) <= _MAX_RAW else unquote_plus(raw)


def _checked_tags(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(check_tags(service.normalize_tags(values)))


_tags_cached = lru_cache(maxsize=_CACHED)(_checked_tags)


def _tags(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) <= MAX_TAGS and sum(map(len, values)) <= _MAX_RAW_TAGS:
        return _tags_cached(values)
    return _checked_tags(values)


class Tracker:
    """`GET /__track?cid=&uid=&type=&to=&src=&tag=[&sig=]` → 302 to `to`, recorded once.

    Checks (no database round trip while the campaign is cached): parameters, then the
    target against the campaign's allowed hosts or the link's signature, then the dedup
    window. A HEAD request is checked and answered but not counted (link previewers)."""

    def __init__(
        self,
        rules: service.CampaignRules,
        dedup: OnceWindow,
        recorder: service.ClickRecorder,
        key: bytes,
    ) -> None:
        self.rules = rules
        self.dedup = dedup
        self.recorder = recorder
        self.key = key
        self.event_id = service.EventIds()
        self._requests: dict[int, Any] = {}  # bound metric children, by status / reason
        self._rejected: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status, headers, body = await self.handle(scope)
        except Exception as error:
            count_error("track", error)
            log.error(
                "clicks.track_failed", query=scope.get("query_string", b"")[:500], exc_info=True
            )
            status, headers, body = _json(500, "internal_error", "the click could not be handled")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        counter = self._requests.get(status)
        if counter is None:
            counter = self._requests[status] = TRACK_REQUESTS.labels(status=str(status))
        counter.inc()
        TRACK_DURATION.observe(time.perf_counter() - started)

    async def handle(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            params, tag_values = self._params(scope["query_string"])
            cid = parse_id("cid", params.get("cid"))
            to = params.get("to", "")
            location, host = _target(to)
            type_ = check_type(params.get("type"))
            src = parse_id("src", params.get("src"), default=0)
            uid = check_uid(params.get("uid"))
            tags = _tags(tuple(tag_values))
            sig = params.get("sig")

            found, rule = self.rules.cached(cid)
            if not found:
                try:
                    rule = await self.rules.get(cid)
                except service.CampaignsUnavailable as error:
                    count_error("campaign_lookup", error)
                    if not sig:
                        return _json(
                            503,
                            "campaign_unavailable",
                            "the campaign cannot be checked right now; retry shortly",
                            retry_after=1,
                        )
                    found = False
                else:
                    found = True
            if found and rule is None:
                raise service.Refused("unknown_campaign", f"campaign {cid} not found", 404)
            if sig:
                if not service.verify_link(self.key, sig, cid, to, src, type_, tags, uid):
                    raise service.Refused(
                        "bad_signature", "sig: the link's signature does not match its parameters"
                    )
            elif rule is None or not service.host_allowed(host, rule.allowed_hosts):
                raise service.Refused(
                    "host_not_allowed", f"to: {host} is not an allowed host of campaign {cid}"
                )
        except service.Refused as refused:
            rejected = self._rejected.get(refused.reason)
            if rejected is None:
                rejected = self._rejected[refused.reason] = TRACK_REJECTED.labels(
                    reason=refused.reason
                )
            rejected.inc()
            return _json(refused.status, refused.reason, refused.message)

        if scope["method"] == "HEAD":
            return _redirect(location)
        user_agent = _header(scope, b"user-agent")
        client = "" if uid is not None else f"{_address(scope)}|{user_agent}"
        key = service.dedup_key(uid, client, cid, src, type_, to)
        dedup = self.dedup
        if not (dedup.claim_local(key) if dedup.redis is None else await dedup.claim(key)):
            TRACK_DEDUP.inc()
            return _redirect(location)
        event = service.ClickEvent(
            event_id=self.event_id(),
            campaign_id=cid,
            line_id=uid,
            source_campaign_id=src,
            interaction_type=type_,
            target=to,
            tags=tags,
            triggered_at=utcnow(),
            user_agent=user_agent[:512] or None,
            timezone=rule.timezone if rule is not None else None,
        )
        await self.recorder.record(event)
        return _redirect(location)

    @staticmethod
    def _params(query_string: bytes) -> tuple[dict[str, str], list[str]]:
        """The query's parameters as `parse_qsl(…, keep_blank_values=True)` reads them
        (`+` is a space, %-escapes are UTF-8), unquoting only the parts that need it: on
        this path parse_qsl alone cost a third of checking a click."""
        params: dict[str, str] = {}
        tags: list[str] = []
        for part in query_string.decode("latin-1").split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if "%" in name or "+" in name:
                name = _unquoted(name)
            if "%" in value or "+" in value:
                value = _unquoted(value)
            if name == "tag":
                tags.append(value)
            elif name in _SINGLE:
                if name in params:
                    raise service.Refused("bad_parameter", f"{name}: given more than once")
                params[name] = value
        return params, tags


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class TrackRoute:
    """The ASGI endpoint; finds this process's Tracker, built by the lifespan."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracker: Tracker = scope["app"].state.runtime.parts[TRACKER]
        await tracker(scope, receive, send)


class BareRedirect:
    """302 that records nothing: the benchmark's baseline for framework cost."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = _redirect("https://example.com/")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Start the click writer, the spool and the campaign cache; drain on shutdown."""
    settings = runtime.settings.clicks
    batching = settings.batching
    known = service.KnownRows()

    async def apply(session: AsyncSession, events: Sequence[service.ClickEvent]) -> Any:
        return await service.apply_clicks(
            session, events, known=known, may_be_recorded=recorder.may_be_recorded
        )

    writer: BatchWriter[service.ClickEvent, str] = BatchWriter(
        "clicks",
        runtime.db,
        apply,
        enabled=batching.enabled,
        max_batch=batching.max_batch,
        max_wait_ms=batching.max_wait_ms,
        queue_size=batching.queue_size,
        retries=batching.retries,
        concurrency=batching.concurrency,
    )
    spool = service.ClickSpool(
        service.spool_directory(runtime.settings.var_dir),
        flush_ms=settings.spool.flush_ms,
        rotate_seconds=settings.spool.rotate_seconds,
    )
    recorder = service.ClickRecorder(
        writer,
        spool,
        commit_timeout_ms=settings.commit_timeout_ms,
        breaker_seconds=settings.spool.breaker_seconds,
    )
    rules = service.CampaignRules(runtime.db, settings.campaign_cache_seconds)
    dedup = OnceWindow(
        "clicks.dedup",
        settings.dedup_window_ms,
        runtime.redis,
        on_backend_error=lambda error: count_error("dedup", error),
    )
    runtime.parts.update(
        {
            WRITER: writer,
            SPOOL: spool,
            RULES: rules,
            RECORDER: recorder,
            TRACKER: Tracker(rules, dedup, recorder, service.link_key(runtime.secret_key)),
        }
    )
    subscription = runtime.hub.subscribe(TOPIC, lambda _: True)

    async def invalidate() -> None:
        while True:
            message = await subscription.queue.get()
            rules.invalidate(int(message["campaign_id"]))

    invalidator = asyncio.create_task(invalidate(), name="clicks-campaign-invalidation")
    await spool.start()
    await writer.start()
    try:
        yield
    finally:
        invalidator.cancel()
        with suppress(asyncio.CancelledError):
            await invalidator
        runtime.hub.unsubscribe(subscription)
        await writer.stop()  # clicks already submitted commit (or go to the spool)
        await spool.stop()


def mount(app: FastAPI, settings: Settings) -> None:
    """Put `/__track` first in the routing table (app.py also serves GET/HEAD of it ahead
    of FastAPI's layers through `hot_paths`), then the admin API."""
    routes = [Route("/__track", TrackRoute(), methods=["GET"])]
    if settings.clicks.bare_route:
        routes.append(Route("/__bare302", BareRedirect(), methods=["GET"]))
    app.router.routes[0:0] = routes
    app.include_router(admin)


# ---------------------------------------------------------------- admin


admin = APIRouter(prefix="/api/clicks", tags=["clicks"], route_class=TransactionalRoute)


def _changed(request: Request, session: AsyncSession, campaign_id: int) -> None:
    """After commit, drop the campaign from this process's cache and tell the others."""
    runtime = runtime_of(request)
    rules: service.CampaignRules = runtime.parts[RULES]
    after_commit(session, lambda: rules.invalidate(campaign_id))
    if runtime.redis is not None:
        after_commit(session, lambda: runtime.hub.publish(TOPIC, {"campaign_id": campaign_id}))


@admin.post("/campaigns", status_code=201, summary="Create a campaign")
async def create_campaign(
    request: Request, session: Session, principal: WriterUser, body: schemas.CampaignCreate
) -> schemas.Campaign:
    campaign = await service.create_campaign(
        session, principal, body, runtime_of(request).settings.timezone
    )
    _changed(request, session, campaign.id)
    return schemas.Campaign.model_validate(campaign)


@admin.get("/campaigns", summary="Campaigns with clicked_count and unique users, newest first")
async def list_campaigns(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[schemas.Campaign]:
    rows, total = await service.list_campaigns(session, principal, paging, search)
    return page_of([schemas.Campaign.model_validate(c) for c in rows], total, paging)


@admin.get("/campaigns/{campaign_id}", summary="One campaign with its figures")
async def get_campaign(
    session: Session, principal: CurrentUser, campaign_id: int
) -> schemas.Campaign:
    return schemas.Campaign.model_validate(
        await service.get_campaign(session, principal, campaign_id)
    )


@admin.patch("/campaigns/{campaign_id}", summary="Change a campaign's name, hosts or zone")
async def update_campaign(
    request: Request,
    session: Session,
    principal: WriterUser,
    campaign_id: int,
    body: schemas.CampaignUpdate,
) -> schemas.Campaign:
    campaign = await service.update_campaign(session, principal, campaign_id, body)
    _changed(request, session, campaign.id)
    return schemas.Campaign.model_validate(campaign)


@admin.post(
    "/links",
    summary="Issue a signed /__track link (redirects to any http(s) target, no host list)",
)
async def create_link(
    request: Request, session: Session, principal: WriterUser, body: schemas.LinkCreate
) -> schemas.Link:
    runtime = runtime_of(request)
    tracker: Tracker = runtime.parts[TRACKER]
    base = runtime.settings.clicks.public_base_url or str(request.base_url)
    return await service.make_link(session, principal, body, tracker.key, base)


@admin.get(
    "/campaigns/{campaign_id}/users",
    summary="Per-user summaries of a campaign (one per source campaign), latest click first",
)
async def campaign_users(
    session: Session,
    principal: CurrentUser,
    campaign_id: int,
    paging: Paging,
    src: Annotated[int | None, Query(ge=0, description="Only this source campaign")] = None,
) -> Page[schemas.ClickSummary]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    items, total = await service.campaign_users(session, campaign, src, paging)
    return page_of(items, total, paging)


@admin.get("/users/{line_id}", summary="One LINE user's summaries across campaigns and sources")
async def user_summaries(
    session: Session, principal: CurrentUser, line_id: str, paging: Paging
) -> Page[schemas.ClickSummary]:
    items, total = await service.user_summaries(session, principal, line_id, paging)
    return page_of(items, total, paging)


@admin.get("/campaigns/{campaign_id}/interactions", summary="Interaction log, newest first")
async def campaign_interactions(
    session: Session, principal: CurrentUser, campaign_id: int, paging: Paging
) -> Page[schemas.Interaction]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    items, total = await service.interactions(session, campaign, paging)
    return page_of(items, total, paging)


@admin.get(
    "/campaigns/{campaign_id}/daily",
    summary="Clicks per day (campaign time zone), one row per day with clicks",
)
async def campaign_daily(
    session: Session, principal: CurrentUser, campaign_id: int, days: Days
) -> list[schemas.CampaignDaily]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    return await service.daily(session, campaign, days.start, days.end)


@admin.patch("/members/{line_uid}", summary="Set a member's display name")
async def update_member(
    session: Session, principal: WriterUser, line_uid: str, body: schemas.MemberUpdate
) -> schemas.Member:
    return schemas.Member.model_validate(
        await service.update_member(session, principal, line_uid, body)
    )


recalibration.add_routes(
    admin,
    "clicks",
    lambda runtime: service.recalibrate(runtime.db, runtime.settings.clicks.recalibration_chunk),
    counters="click counter",
)


# GET and HEAD /__track are answered ahead of FastAPI's stack (core.http.HotPathsApp); the
# route in the table stays for other methods (405).
hot_paths = {("GET", "/__track"): TrackRoute(), ("HEAD", "/__track"): TrackRoute()}

__all__ = ["BareRedirect", "TrackRoute", "Tracker", "admin", "hot_paths", "lifespan", "mount"]
