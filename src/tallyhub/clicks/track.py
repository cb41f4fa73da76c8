"""The `/__track` hot path: a plain ASGI app with its own parameter checks, answered ahead
of FastAPI's stack. `GET /__track?cid=&uid=&type=&to=&src=&tag=[&sig=]` → 302 to `to`,
recorded once."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import structlog
from starlette.types import Receive, Scope, Send

from tallyhub.clicks import service
from tallyhub.clicks.service.agents import referrer_host
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
from tallyhub.core.cache import OnceWindow
from tallyhub.core.columns import utcnow

log = structlog.get_logger(__name__)

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _json(status: int, code: str, message: str, *, retry_after: int | None = None) -> Answer:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return status, headers, body


def _redirect(location: str) -> Answer:
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
    window. A HEAD request is checked and answered but not counted (link previewers); a
    bot's GET is redirected and recorded, and the batch keeps it out of the people's
    counts (its User-Agent is classified once per distinct string, `classifier`)."""

    def __init__(
        self,
        rules: service.CampaignRules,
        dedup: OnceWindow,
        recorder: service.ClickRecorder,
        key: bytes,
        classifier: service.Classifier = service.classify,
    ) -> None:
        self.rules = rules
        self.classifier = classifier
        self.dedup = dedup
        self.recorder = recorder
        self.key = key
        self.event_id = service.EventIds()
        # A campaign not loaded yet is waited for at most this long (and the recorder gets
        # what is left of its commit timeout): the whole request stays within that.
        self.campaign_wait = min(rules.load_timeout, recorder.commit_timeout)
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

    async def handle(self, scope: Scope) -> Answer:
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
            spent = 0.0
            if not found:
                began = time.perf_counter()
                try:
                    found, rule = await self._uncached_rule(cid, sig)
                except service.CampaignsUnavailable:
                    return _json(
                        503,
                        "campaign_unavailable",
                        "the campaign cannot be checked right now; retry shortly",
                        retry_after=1,
                    )
                spent = time.perf_counter() - began
            if found and rule is None:
                raise service.Refused("unknown_campaign", f"campaign {cid} not found", 404)
            self._check_target(sig, rule, cid, to, host, src, type_, tags, uid)
        except service.Refused as refused:
            return self._refusal(refused)

        if scope["method"] == "HEAD":
            return _redirect(location)
        user_agent, referer = _agent_headers(scope)
        user_agent = user_agent[:512]
        client = "" if uid is not None else f"{_address(scope)}|{user_agent}"
        agent = self.classifier(user_agent or None)  # cached: the batch reads it again
        bot = agent is not None and agent.is_bot
        key = service.dedup_key(uid, client, cid, src, type_, to, bot=bot)
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
            user_agent=user_agent or None,
            timezone=rule.timezone if rule is not None else None,
            referrer=referrer_host(referer) if referer else None,
            filter_bots=rule.filter_bots if rule is not None else None,
        )
        await self.recorder.record(event, spent=spent)
        return _redirect(location)

    async def _uncached_rule(
        self, cid: int, sig: str | None
    ) -> tuple[bool, service.CampaignRule | None]:
        """(found, rule) of a campaign this process has not loaded yet. While it cannot be
        read (and no value from before is known), a signed link is still checked, by its
        signature alone (not found); an unsigned one cannot be: `CampaignsUnavailable`."""
        try:
            rule = await self.rules.get(cid, wait=self.campaign_wait)
        except service.CampaignsUnavailable:
            if not sig:
                raise
            return False, None
        return True, rule

    def _check_target(
        self,
        sig: str | None,
        rule: service.CampaignRule | None,
        cid: int,
        to: str,
        host: str,
        src: int,
        type_: str,
        tags: tuple[str, ...],
        uid: str | None,
    ) -> None:
        """A signed link must match its signature; any other target must be on one of its
        campaign's allowed hosts."""
        if sig:
            if not service.verify_link(self.key, sig, cid, to, src, type_, tags, uid):
                raise service.Refused(
                    "bad_signature", "sig: the link's signature does not match its parameters"
                )
        elif rule is None or not service.host_allowed(host, rule.allowed_hosts):
            raise service.Refused(
                "host_not_allowed", f"to: {host} is not an allowed host of campaign {cid}"
            )

    def _refusal(self, refused: service.Refused) -> Answer:
        """The error answer to a refused click, counted by its reason."""
        rejected = self._rejected.get(refused.reason)
        if rejected is None:
            rejected = self._rejected[refused.reason] = TRACK_REJECTED.labels(reason=refused.reason)
        rejected.inc()
        return _json(refused.status, refused.reason, refused.message)

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


def _agent_headers(scope: Scope) -> tuple[str, str]:
    """The request's User-Agent and Referer ("" when absent), in one pass."""
    user_agent = referer = ""
    for key, value in scope["headers"]:
        if key == b"user-agent":
            user_agent = value.decode("latin-1")
        elif key == b"referer":
            referer = value.decode("latin-1")
    return user_agent, referer


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class BareRedirect:
    """302 that records nothing: the benchmark's baseline for framework cost."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = _redirect("https://example.com/")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
