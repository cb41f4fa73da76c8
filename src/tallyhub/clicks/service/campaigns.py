"""Campaigns, signed links and the admin reads: user summaries, interactions, members
(the daily and today's figures are in figures.py). Every read comes from a counter or
summary row keyed by what is asked; operators see only their own campaigns (404
otherwise)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks import schemas
from tallyhub.clicks.models import (
    Campaign,
    CampaignUser,
    ClickSummary,
    InteractionLog,
    Member,
)
from tallyhub.clicks.service.agents import classify
from tallyhub.clicks.service.summaries import tags_of
from tallyhub.clicks.service.tracking import (
    Refused,
    check_tags,
    check_uid,
    normalize_tags,
    parse_target,
    sign_link,
)
from tallyhub.core.auth import Principal, Role
from tallyhub.core.columns import utcnow
from tallyhub.core.errors import BadRequest, NotFound
from tallyhub.core.pagination import PageParams, paginate

# ---------------------------------------------------------------- campaigns


async def create_campaign(
    session: AsyncSession, principal: Principal, data: schemas.CampaignCreate, default_tz: str
) -> Campaign:
    owner_id = principal.owner_for(data.owner_id, "campaign")
    now = utcnow()
    campaign = Campaign(
        name=data.name,
        allowed_hosts=data.allowed_hosts,
        timezone=data.timezone or default_tz,
        owner_id=owner_id,
        clicked_count=0,
        unique_users=0,
        bot_clicks=0,
        filter_bots=data.filter_bots,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def get_campaign(session: AsyncSession, principal: Principal, campaign_id: int) -> Campaign:
    """The campaign if this principal may see it; otherwise 404 (never reveal it exists)."""
    campaign = await session.scalar(
        select(Campaign).where(Campaign.id == campaign_id, principal.visible(Campaign.owner_id))
    )
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found", code="campaign_not_found")
    return campaign


async def list_campaigns(
    session: AsyncSession, principal: Principal, paging: PageParams, search: str | None
) -> tuple[list[Campaign], int]:
    query: Select[tuple[Campaign]] = select(Campaign).where(principal.visible(Campaign.owner_id))
    if search:
        # `%` and `_` in the search are letters, not LIKE wildcards.
        query = query.where(func.lower(Campaign.name).contains(search.lower(), autoescape=True))
    return await paginate(
        session, query.order_by(Campaign.created_at.desc(), Campaign.id.desc()), paging
    )


async def update_campaign(
    session: AsyncSession, principal: Principal, campaign_id: int, data: schemas.CampaignUpdate
) -> Campaign:
    campaign = await get_campaign(session, principal, campaign_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(campaign, field, value)
    campaign.updated_at = utcnow()
    await session.flush()
    return campaign


# ---------------------------------------------------------------- signed links


async def make_link(
    session: AsyncSession,
    principal: Principal,
    data: schemas.LinkCreate,
    key: bytes,
    base_url: str,
) -> schemas.Link:
    await get_campaign(session, principal, data.cid)
    try:
        location, _ = parse_target(data.to)
        tags = check_tags(normalize_tags(data.tag))
        uid = check_uid(data.uid)
    except Refused as refused:
        raise BadRequest(refused.message, code=refused.reason) from refused
    if location != data.to:
        raise BadRequest("to: percent-encode non-ASCII characters", code="invalid_target")
    sig = sign_link(key, data.cid, data.to, data.src, data.type, tags, uid)
    params: dict[str, Any] = {"cid": data.cid, "to": data.to}
    if data.src:
        params["src"] = data.src
    if data.type != "image_click":
        params["type"] = data.type
    if tags:
        params["tag"] = ",".join(tags)
    if uid is not None:
        params["uid"] = uid
    params["sig"] = sig
    return schemas.Link(url=f"{base_url.rstrip('/')}/__track?{urlencode(params)}", sig=sig)


# ---------------------------------------------------------------- summaries


async def _summaries_out(
    session: AsyncSession, rows: list[tuple[ClickSummary, str | None]]
) -> list[schemas.ClickSummary]:
    keys = [(s.campaign_id, s.line_id, s.source_campaign_id) for s, _ in rows]
    tags = await tags_of(session, keys)
    return [
        schemas.ClickSummary(
            campaign_id=s.campaign_id,
            line_id=s.line_id,
            source_campaign_id=s.source_campaign_id,
            display_name=name,
            total_clicks=s.total_clicks,
            tags=tags.get((s.campaign_id, s.line_id, s.source_campaign_id), []),
            last_click_tag=s.last_click_tag,
            last_clicked_at=s.last_clicked_at,
        )
        for s, name in rows
    ]


def _with_names() -> Select[tuple[ClickSummary, str | None]]:
    return select(ClickSummary, Member.display_name).outerjoin(
        Member, Member.line_uid == ClickSummary.line_id
    )


async def campaign_users(
    session: AsyncSession, campaign: Campaign, src: int | None, paging: PageParams
) -> tuple[list[schemas.ClickSummary], int]:
    """The campaign's per-user summaries, most recent click first."""
    where = [ClickSummary.campaign_id == campaign.id]
    if src is not None:
        where.append(ClickSummary.source_campaign_id == src)
    total = await session.scalar(select(func.count()).select_from(ClickSummary).where(*where)) or 0
    rows = await session.execute(
        _with_names()
        .where(*where)
        .order_by(ClickSummary.last_clicked_at.desc(), ClickSummary.id.desc())
        .offset(paging.offset)
        .limit(paging.page_size)
    )
    return await _summaries_out(session, [(s, n) for s, n in rows.tuples()]), total


async def user_summaries(
    session: AsyncSession, principal: Principal, line_id: str, paging: PageParams
) -> tuple[list[schemas.ClickSummary], int]:
    """One user's summaries across the campaigns and sources this principal may see."""
    where = [ClickSummary.line_id == line_id, principal.visible(Campaign.owner_id)]
    joined = select(ClickSummary.id).join(Campaign, Campaign.id == ClickSummary.campaign_id)
    total = (
        await session.scalar(select(func.count()).select_from(joined.where(*where).subquery())) or 0
    )
    rows = await session.execute(
        _with_names()
        .join(Campaign, Campaign.id == ClickSummary.campaign_id)
        .where(*where)
        .order_by(ClickSummary.last_clicked_at.desc(), ClickSummary.id.desc())
        .offset(paging.offset)
        .limit(paging.page_size)
    )
    return await _summaries_out(session, [(s, n) for s, n in rows.tuples()]), total


# ---------------------------------------------------------------- interactions


async def interactions(
    session: AsyncSession, campaign: Campaign, paging: PageParams
) -> tuple[list[schemas.Interaction], int]:
    """The interaction log, newest first; the total is the campaign's counters (every
    logged click moved either its clicks or its bot clicks)."""
    rows = await session.scalars(
        select(InteractionLog)
        .where(InteractionLog.campaign_id == campaign.id)
        .order_by(InteractionLog.id.desc())
        .offset(paging.offset)
        .limit(paging.page_size)
    )
    items = [_interaction(r) for r in rows]
    return items, campaign.clicked_count + campaign.bot_clicks


def _interaction(r: InteractionLog) -> schemas.Interaction:
    """A logged click as shown, with what its agent is (classified when it was recorded:
    its referrer host is set)."""
    agent = None if r.referrer_host is None else classify(r.user_agent)
    return schemas.Interaction(
        id=r.id,
        event_id=r.event_id,
        line_id=r.line_id,
        campaign_id=r.campaign_id,
        source_campaign_id=r.source_campaign_id,
        interaction_type=r.interaction_type,
        interaction_value=r.interaction_value,
        tags=normalize_tags(r.tags),
        triggered_at=r.triggered_at,
        user_agent=r.user_agent,
        counted=r.counted,
        agent_kind=agent and agent.kind,
        bot_kind=agent and agent.bot_kind,
        bot_name=agent and agent.bot_name,
        device=agent and agent.device,
        os_family=agent and agent.os,
        browser_family=agent and agent.browser,
        referrer_host=r.referrer_host,
    )


# ---------------------------------------------------------------- members


async def update_member(
    session: AsyncSession, principal: Principal, line_uid: str, data: schemas.MemberUpdate
) -> Member:
    """Operators may rename only members who clicked one of their campaigns."""
    query = select(Member).where(Member.line_uid == line_uid)
    if principal.role == Role.operator:
        query = query.where(
            exists(
                select(CampaignUser.line_id)
                .join(Campaign, Campaign.id == CampaignUser.campaign_id)
                .where(CampaignUser.line_id == line_uid, principal.visible(Campaign.owner_id))
            )
        )
    member = await session.scalar(query)
    if member is None:
        raise NotFound(f"member {line_uid!r} not found", code="member_not_found")
    member.display_name = data.display_name
    member.updated_at = utcnow()
    await session.flush()
    return member
