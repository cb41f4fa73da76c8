"""The dashboard's pages: one base layout (top bar, navigation, language switch) and a page
per domain, rendered from Jinja2 templates in `pages/` with the script beside each.

A page is only its frame and labels: its script reads the same JSON API scripts use.
Pages need the session cookie; without one (or with an expired one) they send the
browser to `/login`. Write controls are rendered only for roles that may write, and the
page carries the X-CSRF-Token its script sends with each change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tallyhub.core.auth import SESSION_COOKIE, Principal, Role, csrf_token, principal_from_token
from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import zone
from tallyhub.core.errors import Unauthorized
from tallyhub.core.runtime import Runtime
from tallyhub.web.assets import PAGES_DIR, PLOTLY_URL
from tallyhub.web.i18n import LANGUAGE_COOKIE, LANGUAGES, catalog, choose_language, translate


@dataclass(frozen=True, slots=True)
class NavEntry:
    """One entry of the navigation: its page name, catalog key and address."""

    name: str
    label: str
    href: str
    admin_only: bool = False


# One entry per domain page, then jobs and users. A new domain adds its entry here and
# its `pages/<name>.html` + `pages/<name>.js`.
NAV = [
    NavEntry("overview", "nav.overview", "/"),
    NavEntry("leads", "nav.leads", "/leads"),
    NavEntry("clicks", "nav.clicks", "/clicks"),
    NavEntry("douplus", "nav.douplus", "/douplus"),
    NavEntry("taskstats", "nav.taskstats", "/taskstats"),
    NavEntry("callcenter", "nav.callcenter", "/callcenter"),
    NavEntry("jobs", "nav.jobs", "/jobs"),
    NavEntry("webhooks", "nav.webhooks", "/webhooks"),
    NavEntry("users", "nav.users", "/users", admin_only=True),
]

_environment = Environment(
    loader=FileSystemLoader(PAGES_DIR),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_environment)
router = APIRouter(include_in_schema=False)
log = structlog.get_logger(__name__)
# DOU+ order and video ids as the DOU+ API takes them (digits, in practice).
UpstreamId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
# Webhook message ids as the webhooks API takes them.
MessageId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^msg_[0-9a-f]+$")]


def language_of(request: Request) -> str:
    return choose_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


async def _principal(request: Request) -> Principal | None:
    """Who the session cookie signs in, or None (no cookie, expired, user disabled)."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        return None
    runtime: Runtime = request.app.state.runtime
    try:
        async with runtime.db.transaction(readonly=True) as session:
            return await principal_from_token(session, runtime.secret_key, cookie, use="session")
    except Unauthorized as refused:  # expired, or its user disabled: sign in again
        log.info("page.session_refused", path=request.url.path, reason=refused.code)
    return None


def server_today(request: Request) -> str:
    """Today in the server's time zone (the call-center days' calendar), as YYYY-MM-DD."""
    runtime: Runtime = request.app.state.runtime
    return utcnow().astimezone(zone(runtime.settings.timezone)).date().isoformat()


def _context(request: Request, language: str, **extra: Any) -> dict[str, Any]:
    def t(key: str, **values: object) -> str:
        return translate(language, key, **values)

    return {"lang": language, "languages": LANGUAGES, "t": t, "plotly_url": PLOTLY_URL, **extra}


async def render(request: Request, name: str, *, admin_only: bool = False, **page: Any) -> Response:
    """The page `pages/<name>.html` for the signed-in user; `/login` for anyone else."""
    principal = await _principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    language = language_of(request)
    runtime: Runtime = request.app.state.runtime
    script_context = {
        "lang": language,
        "user": {"id": principal.id, "username": principal.username, "role": principal.role},
        "csrf": csrf_token(runtime.secret_key, request.cookies[SESSION_COOKIE]),
        "page": page,
        "messages": catalog(language),
    }
    allowed = not admin_only or principal.role == Role.admin
    shown = name if allowed else "forbidden"
    context = _context(
        request,
        language,
        **_frame(principal, shown, active=name),
        page=page,
        script_context=json.dumps(script_context, ensure_ascii=False).replace("</", "<\\/"),
    )
    return templates.TemplateResponse(
        request, f"{shown}.html", context, status_code=200 if allowed else 403
    )


def _frame(principal: Principal, script: str, *, active: str) -> dict[str, Any]:
    nav = [e for e in NAV if not e.admin_only or principal.role == Role.admin]
    return {"user": principal, "nav": nav, "active": active.split("_")[0], "script": script}


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    language = language_of(request)
    safe_next = next if next.startswith("/") and not next.startswith("//") else "/"
    messages = json.dumps(catalog(language), ensure_ascii=False).replace("</", "<\\/")
    context = _context(request, language, next=safe_next, messages=messages)
    return templates.TemplateResponse(request, "login.html", context)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    return await render(request, "overview", today=server_today(request))


@router.get("/leads", response_class=HTMLResponse)
async def leads(request: Request) -> Response:
    return await render(request, "leads")


@router.get("/leads/groups/{group_id}", response_class=HTMLResponse)
async def leads_group(request: Request, group_id: int) -> Response:
    return await render(request, "leads_group", group_id=group_id)


@router.get("/clicks", response_class=HTMLResponse)
async def clicks(request: Request) -> Response:
    return await render(request, "clicks")


@router.get("/clicks/campaigns/{campaign_id}", response_class=HTMLResponse)
async def clicks_campaign(request: Request, campaign_id: int) -> Response:
    return await render(request, "clicks_campaign", campaign_id=campaign_id)


@router.get("/douplus", response_class=HTMLResponse)
async def douplus(request: Request) -> Response:
    return await render(request, "douplus")


@router.get("/douplus/oauth", response_class=HTMLResponse)
async def douplus_oauth(request: Request) -> Response:
    """Where Ocean Engine sends the owner back (`redirect_uri`): the page finishes OAuth."""
    return await render(request, "douplus_oauth")


@router.get("/douplus/orders/{order_id}", response_class=HTMLResponse)
async def douplus_order(request: Request, order_id: UpstreamId) -> Response:
    return await render(request, "douplus_order", order_id=order_id)


@router.get("/douplus/videos/{item_id}", response_class=HTMLResponse)
async def douplus_video(request: Request, item_id: UpstreamId) -> Response:
    return await render(request, "douplus_video", item_id=item_id)


@router.get("/taskstats", response_class=HTMLResponse)
async def taskstats(request: Request) -> Response:
    return await render(request, "taskstats")


@router.get("/taskstats/tasks/{task_id}", response_class=HTMLResponse)
async def taskstats_task(request: Request, task_id: int) -> Response:
    return await render(request, "taskstats_task", task_id=task_id)


@router.get("/callcenter", response_class=HTMLResponse)
async def callcenter(request: Request) -> Response:
    return await render(request, "callcenter", today=server_today(request))


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(request: Request) -> Response:
    return await render(request, "jobs")


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks(request: Request) -> Response:
    return await render(request, "webhooks")


@router.get("/webhooks/messages/{message_id}", response_class=HTMLResponse)
async def webhooks_message(request: Request, message_id: MessageId) -> Response:
    return await render(request, "webhooks_message", message_id=message_id)


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request) -> Response:
    return await render(request, "users", admin_only=True)
