"""Video statistics for promotion completions: the YouTube Data API v3 (ids batched 50 to a
call), TikHub for TikTok and Douyin (one call a video), and Douyin's short-link redirects,
each on core/upstream.py (retries, `Retry-After`, rate limit, metrics and logs).

`fetch_many` answers every item on its own: a deleted video, a bad link, an exhausted
YouTube quota or a rejected TikHub key becomes that item's `VideoFetchFailed`, never an
exception that would lose the other items' figures.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import parse_qs, urljoin, urlsplit, urlunsplit

import httpx
import structlog

from tallyhub.core.upstream import Retryable, UpstreamClient, UpstreamError
from tallyhub.taskstats.config import TaskstatsSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

Platform = Literal["youtube", "tiktok", "douyin"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)
Item = tuple[Platform, str]

YOUTUBE_VIDEOS = "/youtube/v3/videos"
TIKHUB_VIDEO = {
    "douyin": "/api/v1/douyin/app/v3/fetch_one_video_by_share_url",
    "tiktok": "/api/v1/tiktok/app/v3/fetch_one_video_by_share_url",
}
YOUTUBE_BATCH = 50  # ids per videos.list call, the API's maximum
MAX_LINK_LENGTH = 2000  # the submission_link column holds this many characters

# Reasons a caller may compare against; other failures carry the upstream's own words.
NOT_FOUND = "not found"
QUOTA_EXCEEDED = "quota exceeded"
YOUTUBE_KEY_REJECTED = "YouTube key rejected"
YOUTUBE_KEY_MISSING = "YouTube API key not set"
TIKHUB_KEY_REJECTED = "TikHub key rejected"
TIKHUB_KEY_MISSING = "TikHub API key not set"

# Hosts without "www." (it is dropped before comparing); the short-link hosts need a
# redirect (or TikHub) to name the video.
HOSTS: dict[str, frozenset[str]] = {
    "youtube": frozenset(
        {"youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be", "youtube-nocookie.com"}
    ),
    "tiktok": frozenset({"tiktok.com", "m.tiktok.com", "vm.tiktok.com", "vt.tiktok.com"}),
    "douyin": frozenset({"douyin.com", "m.douyin.com", "iesdouyin.com", "v.douyin.com"}),
}
SHORT_HOSTS = frozenset({"vm.tiktok.com", "vt.tiktok.com", "v.douyin.com"})

_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_NUMERIC_ID = re.compile(r"[0-9]{6,20}")
_YOUTUBE_PATH = re.compile(r"/(?:shorts|embed|live|v|e)/([^/]+)/?")
_TIKTOK_PATH = re.compile(r"/(?:@[^/]+/video|embed/v2|embed|v)/([0-9]+)(?:\.html)?/?")
_DOUYIN_PATH = re.compile(r"/(?:share/)?video/([0-9]+)/?")
_SHORT_CODE = re.compile(r"/([A-Za-z0-9_-]{1,32})/?")
_TIKTOK_SHORT_PATH = re.compile(r"/t/([A-Za-z0-9_-]{1,32})/?")


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class VideoStats:
    view: int
    like: int
    comment: int
    share: int
    collect: int


@dataclass(eq=True)
class VideoFetchFailed(Exception):
    """One item's failure: which item, and why in words an operator can act on."""

    platform: str
    link: str
    reason: str

    def __str__(self) -> str:
        return f"{self.platform} {self.link}: {self.reason}"


class BadLink(ValueError):
    """A link that cannot be a video of its platform (the API answers 422 with it)."""


class QuotaExceeded(UpstreamError):
    """YouTube's daily quota is spent: no retry helps before it resets."""

    kind = "quota_exceeded"


class KeyRejected(UpstreamError):
    """The API key is wrong or revoked: no retry helps before someone changes it."""

    kind = "key_rejected"


class VideoMissing(UpstreamError):
    """The upstream answered, and has no such video (deleted, private, never was)."""

    kind = "not_found"


# ---------------------------------------------------------------- links


@dataclass(frozen=True)
class _Link:
    host: str  # lower case, without "www."
    path: str
    query: str


def _parse(link: str) -> _Link:
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in link):
        raise BadLink("contains spaces or control characters")
    try:
        parts = urlsplit(link)
        hostname = parts.hostname
    except ValueError as error:
        raise BadLink(f"not a valid URL: {error}") from error
    if parts.scheme not in ("http", "https"):
        raise BadLink("not an http(s) link")
    if not hostname:
        raise BadLink("has no host")
    host = hostname.rstrip(".").removeprefix("www.")
    return _Link(host=host, path=parts.path or "/", query=parts.query)


def _youtube_key(link: _Link) -> str | None:
    if link.host == "youtu.be":
        candidate = link.path.strip("/")
    elif link.path.rstrip("/") == "/watch":
        candidate = (parse_qs(link.query).get("v") or [""])[0]
    else:
        found = _YOUTUBE_PATH.fullmatch(link.path)
        candidate = found.group(1) if found else ""
    return candidate if _YOUTUBE_ID.fullmatch(candidate) else None


def _numeric_key(pattern: re.Pattern[str], link: _Link) -> str | None:
    found = pattern.fullmatch(link.path)
    candidate = found.group(1) if found else ""
    if not candidate:
        candidate = (parse_qs(link.query).get("modal_id") or [""])[0]
    return candidate if _NUMERIC_ID.fullmatch(candidate) else None


def _key(platform: str, link: _Link) -> str | None:
    if link.host not in HOSTS.get(platform, ()) or link.host in SHORT_HOSTS:
        return None
    if platform == "youtube":
        return _youtube_key(link)
    if platform == "tiktok":
        return _numeric_key(_TIKTOK_PATH, link)
    return _numeric_key(_DOUYIN_PATH, link)


def _is_short(platform: str, link: _Link) -> bool:
    if link.host not in HOSTS.get(platform, ()):
        return False
    if link.host in SHORT_HOSTS:
        return _SHORT_CODE.fullmatch(link.path) is not None
    return platform == "tiktok" and _TIKTOK_SHORT_PATH.fullmatch(link.path) is not None


def video_key(platform: str, link: str) -> str | None:
    """The platform's own id of the video a link names, read from the link alone; None for
    a short link (its redirect names the video) or a link that names no video."""
    try:
        key = _key(platform, _parse(link.strip()))
    except BadLink:
        key = None  # not a link to a video: what the answer None means
    return key


def is_short_link(platform: str, link: str) -> bool:
    """A share link (v.douyin.com/<code>/, vm.tiktok.com/<code>/ …) that only a redirect
    resolves to a video."""
    try:
        return _is_short(platform, _parse(link.strip()))
    except BadLink:
        return False


def check_link(platform: str, link: str) -> str:
    """The link as stored and fetched (https, host in lower case, no fragment), or
    `BadLink` saying what is wrong with it."""
    if platform not in PLATFORMS:
        raise BadLink(f"unknown platform {platform!r}")
    text = link.strip()
    if len(text) > MAX_LINK_LENGTH:
        raise BadLink(f"longer than {MAX_LINK_LENGTH} characters")
    parsed = _parse(text)
    if parsed.host not in HOSTS[platform]:
        raise BadLink(f"not a {platform} link (host {parsed.host})")
    if _key(platform, parsed) is None and not _is_short(platform, parsed):
        raise BadLink(f"not a link to a {platform} video")
    netloc = urlsplit(text).hostname or parsed.host
    normalized = urlunsplit(("https", netloc.rstrip("."), parsed.path, parsed.query, ""))
    if len(normalized) > MAX_LINK_LENGTH:  # http -> https adds a character
        raise BadLink(f"longer than {MAX_LINK_LENGTH} characters")
    return normalized


# ---------------------------------------------------------------- the three upstreams


def _json(response: httpx.Response, upstream: str, endpoint: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise UpstreamError(
            f"{upstream} {endpoint}: not JSON: {response.text[:200]}",
            upstream=upstream,
            endpoint=endpoint,
        ) from error
    if not isinstance(body, dict):
        raise UpstreamError(f"{upstream} {endpoint}: not a JSON object", endpoint=endpoint)
    return body


def _count(value: Any) -> int:
    """A count as the upstreams write it (YouTube: a string), absent as 0."""
    if value is None:
        return 0
    count = int(value)
    if count < 0:
        raise ValueError(f"negative count {value!r}")
    return count


def _google_reason(response: httpx.Response) -> tuple[str, str]:
    """The first `errors[].reason` of a Google API error body, and its message."""
    try:
        error = response.json().get("error") or {}
        first = (error.get("errors") or [{}])[0]
        return str(first.get("reason", "")), str(error.get("message", ""))
    except (ValueError, AttributeError, TypeError):
        return "", response.text[:200]


class YoutubeClient(UpstreamClient):
    name = "youtube"

    def __init__(self, settings: TaskstatsSettings) -> None:
        super().__init__(settings.youtube_base_url, settings.upstream)
        self.key = settings.youtube_api_key

    def check(self, response: httpx.Response, endpoint: str) -> None:
        if response.status_code in (400, 403):
            self._google_error(response, endpoint)
        super().check(response, endpoint)

    def _google_error(self, response: httpx.Response, endpoint: str) -> None:
        reason, message = _google_reason(response)
        kw: dict[str, Any] = {"upstream": self.name, "endpoint": endpoint}
        text = f"youtube {endpoint}: HTTP {response.status_code} {reason}: {message}"
        if reason in ("rateLimitExceeded", "userRateLimitExceeded"):
            failure = Retryable(text, **kw)
            failure.kind = reason
            raise failure
        if reason == "quotaExceeded":
            raise QuotaExceeded(text, **kw)
        if reason in ("keyInvalid", "keyExpired", "API_KEY_INVALID", "forbidden"):
            raise KeyRejected(text, **kw)

    async def statistics(self, ids: Sequence[str]) -> dict[str, VideoStats]:
        """The videos YouTube returns among `ids`; a deleted or private one is absent."""
        params = {"part": "statistics", "id": ",".join(ids), "key": self.key}
        response = await self.request("GET", YOUTUBE_VIDEOS, endpoint="videos", params=params)
        body = _json(response, self.name, "videos")
        try:
            return {str(item["id"]): _youtube_stats(item) for item in body.get("items") or []}
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamError(
                f"youtube videos: unreadable statistics: {error!r}", upstream=self.name
            ) from error


def _youtube_stats(item: Mapping[str, Any]) -> VideoStats:
    # likeCount is absent when likes are hidden, commentCount when comments are off.
    statistics = item.get("statistics") or {}
    return VideoStats(
        view=_count(statistics.get("viewCount")),
        like=_count(statistics.get("likeCount")),
        comment=_count(statistics.get("commentCount")),
        share=0,
        collect=0,
    )


class TikhubClient(UpstreamClient):
    name = "tikhub"

    def __init__(self, settings: TaskstatsSettings) -> None:
        super().__init__(settings.tikhub_base_url, settings.upstream)
        self.key = settings.tikhub_api_key

    def check(self, response: httpx.Response, endpoint: str) -> None:
        kw: dict[str, Any] = {"upstream": self.name, "endpoint": endpoint}
        if response.status_code == 401:
            raise KeyRejected(f"tikhub {endpoint}: HTTP 401: {_tikhub_message(response)}", **kw)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            message = _tikhub_message(response)
            raise UpstreamError(f"TikHub HTTP {response.status_code}: {message}", **kw)
        super().check(response, endpoint)
        body = _json(response, self.name, endpoint)
        if body.get("code") != 200:
            raise UpstreamError(f"TikHub code {body.get('code')}: {body.get('message')}", **kw)
        response.extensions["envelope"] = body

    async def video(self, platform: str, share_url: str) -> VideoStats:
        """The video's statistics; `VideoMissing` when TikHub finds no such video."""
        endpoint = f"{platform}_video"
        response = await self.request(
            "GET",
            TIKHUB_VIDEO[platform],
            endpoint=endpoint,
            params={"share_url": share_url},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        data = response.extensions["envelope"].get("data") or {}
        detail = data.get("aweme_detail") if isinstance(data, dict) else None
        if not detail:
            raise VideoMissing(f"tikhub {endpoint}: no such video", upstream=self.name)
        try:
            return _tikhub_stats(detail["statistics"])
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamError(
                f"tikhub {endpoint}: unreadable statistics: {error!r}", upstream=self.name
            ) from error


def _tikhub_message(response: httpx.Response) -> str:
    """TikHub's errors are `{"detail": {"code", "message", …}}`."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, dict):
        return str(detail.get("message", detail))[:200]
    return str(detail)[:200]


def _tikhub_stats(statistics: Mapping[str, Any]) -> VideoStats:
    return VideoStats(
        view=_count(statistics.get("play_count")),
        like=_count(statistics.get("digg_count")),
        comment=_count(statistics.get("comment_count")),
        share=_count(statistics.get("share_count")),
        collect=_count(statistics.get("collect_count")),
    )


class ShortLinkClient(UpstreamClient):
    """Douyin's short links: a GET answered by a redirect to the video, not followed."""

    name = "douyin_short_link"

    def __init__(self, settings: TaskstatsSettings) -> None:
        super().__init__(settings.douyin_short_link_base_url, settings.upstream)

    async def resolve(self, link: str) -> str:
        """The Douyin video id the short link redirects to."""
        path = urlsplit(link).path
        response = await self.request("GET", path, endpoint="resolve")
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            raise UpstreamError(
                f"short link answered HTTP {response.status_code} without a redirect",
                upstream=self.name,
                endpoint="resolve",
            )
        key = video_key("douyin", urljoin(link, location))
        if key is None:
            raise UpstreamError(
                f"short link leads to {location[:200]}, not a video",
                upstream=self.name,
                endpoint="resolve",
            )
        return key


# ---------------------------------------------------------------- one fetch_many call


@dataclass
class _TikhubJob:
    platform: Platform
    share_url: str
    items: list[Item] = field(default_factory=list)


@dataclass
class _Fetch:
    """The items of one `fetch_many` call, grouped so that each video is fetched once,
    and what the call found so far."""

    results: dict[Item, VideoStats | VideoFetchFailed] = field(default_factory=dict)
    youtube: dict[str, list[Item]] = field(default_factory=dict)  # video id -> items
    tikhub: dict[tuple[Platform, str], _TikhubJob] = field(default_factory=dict)
    short: dict[str, list[Item]] = field(default_factory=dict)  # Douyin short link -> items
    # Set once an upstream refuses the whole account (quota, key): its remaining items fail.
    youtube_stopped: str | None = None
    tikhub_stopped: str | None = None

    def fail(self, items: Sequence[Item], reason: str) -> None:
        for platform, link in items:
            self.results[(platform, link)] = VideoFetchFailed(platform, link, reason)

    def succeed(self, items: Sequence[Item], stats: VideoStats) -> None:
        for item in items:
            self.results[item] = stats

    def add(self, item: Item) -> None:
        platform, link = item
        try:
            normalized = check_link(platform, link)
        except BadLink as error:
            self.fail([item], f"bad link: {error}")
            return
        key = video_key(platform, normalized)
        if platform == "youtube" and key is not None:
            self.youtube.setdefault(key, []).append(item)
        elif platform == "douyin" and key is None:
            self.short.setdefault(normalized, []).append(item)
        elif platform != "youtube":
            self.add_tikhub(platform, key, normalized, [item])

    def add_tikhub(self, platform: Platform, key: str | None, link: str, items: list[Item]) -> None:
        """Items to fetch through TikHub, one call per video (or per unresolved link)."""
        if platform == "douyin" and key is not None:
            link = f"https://www.douyin.com/video/{key}"
        job = self.tikhub.setdefault((platform, key or link), _TikhubJob(platform, link))
        job.items.extend(items)


class VideoStatsClient:
    """Statistics of YouTube, TikTok and Douyin videos by link.
    `async with VideoStatsClient(settings) as client: await client.fetch_many(items)`."""

    def __init__(self, settings: TaskstatsSettings) -> None:
        self.settings = settings
        self.youtube = YoutubeClient(settings)
        self.tikhub = TikhubClient(settings)
        self.short_links = ShortLinkClient(settings)

    async def __aenter__(self) -> VideoStatsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(self.youtube.aclose(), self.tikhub.aclose(), self.short_links.aclose())

    @property
    def requests_made(self) -> int:
        return sum(c.requests_made for c in (self.youtube, self.tikhub, self.short_links))

    async def fetch(self, platform: Platform, link: str) -> VideoStats:
        """One video's statistics, or `VideoFetchFailed`."""
        result = (await self.fetch_many([(platform, link)]))[(platform, link)]
        if isinstance(result, VideoFetchFailed):
            raise result
        return result

    async def fetch_many(self, items: Sequence[Item]) -> dict[Item, VideoStats | VideoFetchFailed]:
        """Every item's statistics or failure, keyed by the item as given. Short links are
        resolved first; then YouTube batches and TikHub calls run, at most
        `fetch_concurrency` requests at once."""
        run = _Fetch()
        if not self.youtube.key:
            run.youtube_stopped = YOUTUBE_KEY_MISSING
        if not self.tikhub.key:
            run.tikhub_stopped = TIKHUB_KEY_MISSING
        for item in dict.fromkeys(items):
            run.add(item)
        gate = asyncio.Semaphore(self.settings.fetch_concurrency)
        await asyncio.gather(
            *(self._resolve(run, gate, link, found) for link, found in run.short.items())
        )
        ids = list(run.youtube)
        batches = [ids[at : at + YOUTUBE_BATCH] for at in range(0, len(ids), YOUTUBE_BATCH)]
        await asyncio.gather(
            *(self._youtube_batch(run, gate, batch) for batch in batches),
            *(self._tikhub_video(run, gate, job) for job in run.tikhub.values()),
        )
        return run.results

    async def _resolve(
        self, run: _Fetch, gate: asyncio.Semaphore, link: str, items: list[Item]
    ) -> None:
        async with gate:
            key = await _attempt(run, items, lambda: self.short_links.resolve(link))
        if key is not None:
            run.add_tikhub("douyin", key, link, items)

    async def _youtube_batch(self, run: _Fetch, gate: asyncio.Semaphore, ids: list[str]) -> None:
        items = [item for video_id in ids for item in run.youtube[video_id]]
        async with gate:
            if run.youtube_stopped:
                run.fail(items, run.youtube_stopped)
                return
            try:
                found = await _attempt(run, items, lambda: self.youtube.statistics(ids))
            except (QuotaExceeded, KeyRejected) as error:
                quota = isinstance(error, QuotaExceeded)
                run.youtube_stopped = QUOTA_EXCEEDED if quota else YOUTUBE_KEY_REJECTED
                log.warning("taskstats.youtube_stopped", reason=run.youtube_stopped)
                run.fail(items, run.youtube_stopped)
                return
        if found is None:
            return
        for video_id in ids:
            stats = found.get(video_id)
            if stats is None:  # deleted, private, or never was
                run.fail(run.youtube[video_id], NOT_FOUND)
            else:
                run.succeed(run.youtube[video_id], stats)

    async def _tikhub_video(self, run: _Fetch, gate: asyncio.Semaphore, job: _TikhubJob) -> None:
        async with gate:
            if run.tikhub_stopped:
                run.fail(job.items, run.tikhub_stopped)
                return
            try:
                stats = await _attempt(
                    run, job.items, lambda: self.tikhub.video(job.platform, job.share_url)
                )
            except KeyRejected:
                run.tikhub_stopped = TIKHUB_KEY_REJECTED
                log.warning("taskstats.tikhub_stopped", reason=run.tikhub_stopped)
                run.fail(job.items, TIKHUB_KEY_REJECTED)
                return
        if stats is not None:
            run.succeed(job.items, stats)


async def _attempt(run: _Fetch, items: list[Item], call: Callable[[], Awaitable[T]]) -> T | None:
    """The call's answer; None when it failed, with the failure recorded for `items`.
    An account-wide refusal (quota, key) is raised for the caller to stop its upstream."""
    try:
        return await call()
    except (QuotaExceeded, KeyRejected):
        raise
    except VideoMissing:
        run.fail(items, NOT_FOUND)
        return None
    except UpstreamError as error:
        run.fail(items, str(error))
        return None
