"""HTTP edge of the clicks domain: the admin API, and the `/__track` route whose hot path
lives in track.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from tallyhub.clicks import jobs, schemas, service, wiring
from tallyhub.clicks.config import clicks_settings
from tallyhub.clicks.service.tracking import (
    DEFAULT_TYPE,
    INTERACTION_TYPES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TARGET_LENGTH,
    MAX_UID_LENGTH,
)
from tallyhub.clicks.track import BareRedirect
from tallyhub.core import recalibration
from tallyhub.core.auth import CurrentUser, WriterUser
from tallyhub.core.config import CoreSettings
from tallyhub.core.db import after_commit
from tallyhub.core.http import Days, Paging, Session, TransactionalRoute
from tallyhub.core.openapi import Answers
from tallyhub.core.pagination import Page, page_of
from tallyhub.core.runtime import runtime_of
from tallyhub.core.validation import INT32_MAX, NoNul, PathId, ShortText

# A LINE user id in the path: the columns hold 64 characters.
LineId = Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul(), Path()]

admin = APIRouter(prefix="/api/clicks", tags=["clicks"], route_class=TransactionalRoute)


def _changed(request: Request, session: AsyncSession, campaign_id: int) -> None:
    """After commit, drop the campaign from this process's cache and tell the others."""
    runtime = runtime_of(request)
    rules = wiring.parts(runtime).rules
    after_commit(session, lambda: rules.invalidate(campaign_id))
    if runtime.redis is not None:
        after_commit(
            session, lambda: runtime.hub.publish(wiring.TOPIC, {"campaign_id": campaign_id})
        )


@admin.post("/campaigns", status_code=201, summary="Create a campaign")
async def create_campaign(
    request: Request, session: Session, principal: WriterUser, body: schemas.CampaignCreate
) -> schemas.Campaign:
    await principal.existing_owner_for(session, body.owner_id, "campaign")
    campaign = await service.create_campaign(
        session, principal, body, runtime_of(request).settings.timezone
    )
    _changed(request, session, campaign.id)
    return schemas.Campaign.model_validate(campaign)


@admin.get(
    "/campaigns",
    summary="Campaigns with clicked_count, today's clicks and unique users, newest first",
)
async def list_campaigns(
    session: Session,
    principal: CurrentUser,
    paging: Paging,
    search: Annotated[ShortText | None, Query()] = None,
) -> Page[schemas.CampaignWithToday]:
    rows, total = await service.list_campaigns(session, principal, paging, search)
    today = await service.today_clicks(session, rows)
    return page_of([service.with_today(c, today) for c in rows], total, paging)


@admin.get(
    "/summary",
    summary="Today's click figures over the campaigns you may see",
    description="`today_clicks` adds each campaign's daily row for its own today (its time"
    " zone, days from midnight). `today_unique_users` is exact: the distinct LINE user ids"
    " whose latest click in a campaign (its per-user summary row) falls in that campaign's"
    " today; a user who clicked in several campaigns counts once, a click without a `uid`"
    " is no user, and a double click dropped as a duplicate changes nothing. Operators see"
    " only their own campaigns.",
)
async def clicks_summary(session: Session, principal: CurrentUser) -> schemas.ClicksSummary:
    return await service.summary(session, principal)


@admin.get("/campaigns/{campaign_id}", summary="One campaign with its figures")
async def get_campaign(
    session: Session, principal: CurrentUser, campaign_id: PathId
) -> schemas.CampaignWithToday:
    campaign = await service.get_campaign(session, principal, campaign_id)
    return service.with_today(campaign, await service.today_clicks(session, [campaign]))


@admin.patch(
    "/campaigns/{campaign_id}",
    summary="Change a campaign's name, hosts, zone or whether it keeps bots out",
)
async def update_campaign(
    request: Request,
    session: Session,
    principal: WriterUser,
    campaign_id: PathId,
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
    key = wiring.parts(runtime).tracker.key
    base = clicks_settings(runtime.settings).public_base_url or str(request.base_url)
    return await service.make_link(session, principal, body, key, base)


@admin.get(
    "/campaigns/{campaign_id}/users",
    summary="Per-user summaries of a campaign (one per source campaign), latest click first",
)
async def campaign_users(
    session: Session,
    principal: CurrentUser,
    campaign_id: PathId,
    paging: Paging,
    src: Annotated[
        int | None, Query(ge=0, le=INT32_MAX, description="Only this source campaign")
    ] = None,
) -> Page[schemas.ClickSummary]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    items, total = await service.campaign_users(session, campaign, src, paging)
    return page_of(items, total, paging)


@admin.get("/users/{line_id}", summary="One LINE user's summaries across campaigns and sources")
async def user_summaries(
    session: Session, principal: CurrentUser, line_id: LineId, paging: Paging
) -> Page[schemas.ClickSummary]:
    items, total = await service.user_summaries(session, principal, line_id, paging)
    return page_of(items, total, paging)


@admin.get("/campaigns/{campaign_id}/interactions", summary="Interaction log, newest first")
async def campaign_interactions(
    session: Session, principal: CurrentUser, campaign_id: PathId, paging: Paging
) -> Page[schemas.Interaction]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    items, total = await service.interactions(session, campaign, paging)
    return page_of(items, total, paging)


@admin.get(
    "/campaigns/{campaign_id}/daily",
    summary="Clicks per day (campaign time zone): a complete range, days without clicks as 0",
    description="A complete range: every day from `from` (default: the first day with"
    " clicks) to `to` (default: the campaign's today, in its time zone) inclusive, in order,"
    " none left out; a day without clicks is a row with `clicks: 0`. At most 3660 days at"
    " once; `from` after `to` or a longer range answers 422 `bad_day_range`, naming them."
    " Days count the clicks that count: a bot's click kept out of them is in the"
    " `bot` breakdown instead.",
)
async def campaign_daily(
    session: Session, principal: CurrentUser, campaign_id: PathId, days: Days
) -> list[schemas.CampaignDaily]:
    campaign = await service.get_campaign(session, principal, campaign_id)
    return await service.daily(session, campaign, days.start, days.end)


@admin.get(
    "/campaigns/{campaign_id}/breakdown",
    summary="What a range's clicks were made of: by tag, source and type, or by one"
    " dimension (device, OS, browser, referrer, bot)",
    description="Days are the campaign's (its time zone); `to` defaults to its today,"
    " `from` to `to`; at most 3660 days at once (`from` after `to` or a longer range"
    " answers 422 `bad_day_range`)."
    "\n\nWithout `dimension`: over the interaction log of the range's clicks that count,"
    " `clicks` is their number; `tags`, `sources` (the `src` source campaign id, `0` for"
    " none) and `interaction_types` each hold the 10 largest counts, largest first (ties"
    " by key); `others` sums the counts not listed and `distinct` says how many keys there"
    " were. A click counts once for each of its tags, so tag counts may add up to more"
    " than `clicks`, and clicks without tags appear in no tag."
    "\n\nWith `dimension`: from the per-day breakdown rows and the deltas not folded"
    " into them yet (no log is read; exact once a click's batch has committed). `device`"
    " (desktop, phone, tablet, bot, other), `os` and `browser` (families, `Other` when"
    " not recognized) and `referrer` (the Referer's host, `direct` without one) split the"
    " clicks that count; `bot` splits the bots' clicks kept out of the counts, by bot"
    " name (`LINE`, `Telegram`, `Googlebot`, `curl`, …). `values` holds the 10 largest"
    " sums as above, `days` each day's sum.",
)
async def campaign_breakdown(
    session: Session,
    principal: CurrentUser,
    campaign_id: PathId,
    days: Days,
    dimension: Annotated[
        schemas.Dimension | None,
        Query(description="Break the range down by this instead of tags, sources and types"),
    ] = None,
) -> schemas.Breakdown | schemas.DimensionBreakdown:
    campaign = await service.get_campaign(session, principal, campaign_id)
    if dimension is None:
        return await service.breakdown(session, campaign, days.start, days.end)
    return await service.dimension_breakdown(session, campaign, dimension, days.start, days.end)


@admin.patch("/members/{line_uid}", summary="Set a member's display name")
async def update_member(
    session: Session, principal: WriterUser, line_uid: LineId, body: schemas.MemberUpdate
) -> schemas.Member:
    return schemas.Member.model_validate(
        await service.update_member(session, principal, line_uid, body)
    )


recalibration.add_routes(admin, "clicks", jobs.recalibrate_now, counters="click counter")


# ---------------------------------------------------------------- /__track


class TrackRoute:
    """The ASGI endpoint; hands the request to this process's Tracker (wiring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await wiring.parts(scope["app"].state.runtime).tracker(scope, receive, send)


_REFUSAL_CODES = "`bad_parameter`, `invalid_target`, `host_not_allowed` or `bad_signature`"


async def track_click(
    cid: Annotated[int, Query(ge=1, le=INT32_MAX, description="The campaign clicked")],
    to: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_TARGET_LENGTH,
            description="Where the browser goes: an absolute http:// or https:// URL without"
            " credentials, spaces or backslashes, on one of the campaign's `allowed_hosts`"
            " (any host for a signed link)",
            examples=["https://shop.example.com/spring?ref=line"],
        ),
    ],
    uid: Annotated[
        str,
        Query(
            max_length=MAX_UID_LENGTH,
            description="The LINE user id of who clicked, no spaces or control characters;"
            " without it, a click is told apart by its address and User-Agent",
        ),
    ] = "",
    type: Annotated[
        str,
        Query(
            description="The kind of message clicked",
            json_schema_extra={"enum": sorted(INTERACTION_TYPES)},
        ),
    ] = DEFAULT_TYPE,
    src: Annotated[
        int, Query(ge=0, le=INT32_MAX, description="The source campaign id, 0 for none")
    ] = 0,
    tag: Annotated[
        tuple[str, ...],
        Query(
            description=f"Tags of the click, repeated or comma-separated: at most {MAX_TAGS},"
            f" each at most {MAX_TAG_LENGTH} characters once trimmed, repeats dropped",
        ),
    ] = (),
    sig: Annotated[
        str,
        Query(
            description="The signature of a link issued by POST /api/clicks/links, over all"
            " the other parameters: such a link may lead to any http(s) host"
        ),
    ] = "",
) -> None:
    """Never called: its parameters describe `/__track` for OpenAPI, and the route's ASGI
    app is the tracker itself (answered ahead of FastAPI through `hot_paths`)."""
    raise NotImplementedError


def _track_route() -> APIRoute:
    route = APIRoute(
        "/__track",
        track_click,
        methods=["GET"],
        tags=["clicks"],
        summary="Record a click on a tracked link and redirect to its target",
        description="The link a LINE message carries. A click is checked (parameters, then"
        " the target against the campaign's allowed hosts or the link's signature), counted"
        " once (a repeat of the same click within the dedup window is redirected but not"
        " counted again) and answered with a redirect to `to`. HEAD is checked and"
        " answered the same but never counted (link previews). A bot's GET (a chat app's"
        " link-preview fetcher, a crawler, an HTTP tool, told by its User-Agent) is"
        " redirected and logged too, but counted only in the campaign's `bot_clicks`"
        " unless the campaign's `filter_bots` is off. A refusal is never a"
        " redirect: the error envelope names the parameter and why.",
        status_code=302,
        response_class=Response,
        responses={
            302: {
                "description": "Counted (or a repeat, not counted again): go to `to`",
                "headers": {"Location": {"description": "`to`", "schema": {"type": "string"}}},
            },
            400: {"description": f"Refused: {_REFUSAL_CODES} (the message names the parameter)"},
            404: {"description": "`unknown_campaign`: no campaign has this `cid`"},
            503: {
                "description": "`campaign_unavailable`: the campaign cannot be read right"
                " now (database down, not cached yet); retry after Retry-After seconds"
            },
        },
    )
    route.app = TrackRoute()  # what a request that gets this far meets: the tracker
    return route


def first_routes(settings: CoreSettings) -> list[BaseRoute]:
    """`/__track` first in the routing table (for /docs and 405s: GET and HEAD are
    answered ahead of FastAPI through `hot_paths`), and the benchmark's bare route."""
    routes: list[BaseRoute] = [_track_route()]
    if clicks_settings(settings).bare_route:
        routes.append(Route("/__bare302", BareRedirect(), methods=["GET"]))
    return routes


hot_paths = {("GET", "/__track"): TrackRoute(), ("HEAD", "/__track"): TrackRoute()}
routers = [admin]

# For OpenAPI: a link's campaign not found, or not the caller's (404); a bad target (400).
error_answers: Answers = {create_link: (400, 404)}
