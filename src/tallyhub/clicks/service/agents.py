"""Who sent a click: a person or a bot (a chat app's link-preview fetcher, a search crawler,
an HTTP tool), from its `User-Agent`, and the device type, OS and browser it names; and
the host of its `Referer`. Pure functions, cached per distinct string.

Bots are told by `crawlerdetect` (the CrawlerDetect patterns); device, OS and browser by
`ua-parser` on its Rust matcher (`ua-parser-rs`). Neither says which bots fetch a link
preview or which are HTTP tools, nor names LINE's preview fetcher (it sends
"facebookexternalhit/1.1;line-poker/1.0" and passes for Facebook's): the short tables
below do, checked only once the library has called the agent a bot, except for the
fetchers the library misses entirely (`_MISSED_PREVIEWS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from json import dumps
from typing import Literal
from urllib.parse import urlsplit

import ua_parser
from crawlerdetect import CrawlerDetect

Kind = Literal["person", "bot", "unknown"]
PERSON: Kind = "person"
BOT: Kind = "bot"
UNKNOWN: Kind = "unknown"  # no User-Agent at all: counted as a person, not a bot
PREVIEW, CRAWLER, TOOL = "preview", "crawler", "tool"

DIMENSIONS = ("device", "os", "browser", "referrer", "bot")
DEVICE_TYPES = ("desktop", "phone", "tablet", "bot", "other")
NAME_LENGTH = 64  # os, browser and bot names are cut to their columns' size
HOST_LENGTH = 255
DIRECT = "direct"  # a click without a Referer
UNREADABLE = "unknown"  # a Referer without a host we can read
AGENTS_CACHED = 8192  # distinct User-Agent strings kept per process (each at most 512 chars)

if ua_parser.RegexResolver is None:  # pragma: no cover - the dependency pins ua-parser[regex]
    raise ImportError("ua-parser's Rust matcher (ua-parser-rs) is not installed")
# The Rust matcher, without ua-parser's own cache: `classify()` keeps one per agent.
_PARSER = ua_parser.Parser(ua_parser.RegexResolver(ua_parser.load_lazy_builtins()))
_CRAWLERS = CrawlerDetect()

# Link-preview fetchers crawlerdetect does not flag at all (checked against its 0.4.2
# patterns): without these they would count as people.
_MISSED_PREVIEWS = (("bluesky cardyb", "Bluesky"),)
# Bots that fetch a link to show its preview in a chat or feed, by a lower-case part of
# their agent, most particular first (LINE's and KakaoTalk's also carry
# "facebookexternalhit", iMessage's "facebookexternalhit … Twitterbot").
_PREVIEWS = (
    ("line-poker", "LINE"),
    ("kakaotalk-scrap", "KakaoTalk"),
    ("facebot twitterbot", "iMessage"),
    ("facebookexternalhit", "Facebook"),
    ("facebookcatalog", "Facebook"),
    ("telegrambot", "Telegram"),
    ("whatsapp", "WhatsApp"),
    ("slackbot", "Slack"),
    ("slack-imgproxy", "Slack"),
    ("twitterbot", "Twitter/X"),
    ("discordbot", "Discord"),
    ("skypeuripreview", "Skype/Teams"),
    ("linkedinbot", "LinkedIn"),
    ("snap url preview", "Snapchat"),
    ("mastodon", "Mastodon"),
    ("iframely", "Iframely"),
    ("embedly", "Embedly"),
    *_MISSED_PREVIEWS,
)
# HTTP libraries and command-line tools (scripts, uptime checks, scanners built on them).
_TOOLS = (
    "curl",
    "wget",
    "python-requests",
    "python-httpx",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "axios",
    "node-fetch",
    "undici",
    "java/",
    "apache-httpclient",
    "libwww-perl",
    "postmanruntime",
    "httpie",
    "headlesschrome",
)
_DESKTOP_OS = frozenset(
    ("Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "Debian", "FreeBSD", "OpenBSD")
)
_MOBILE_OS = frozenset(("iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"))


@dataclass(frozen=True, slots=True)
class Agent:
    """What a click's User-Agent says."""

    kind: Kind
    bot_kind: str | None  # preview | crawler | tool, for a bot
    bot_name: str | None  # e.g. "LINE", "Googlebot", "curl", for a bot
    device: str  # one of DEVICE_TYPES
    os: str  # ua-parser's OS family, "Other" when unknown
    browser: str  # ua-parser's browser family, "Other" when unknown
    # `"device","os","browser","bot name"` as JSON, made once per agent: a breakdown
    # delta lists it for each kind of visitor of its batch (breakdowns.py).
    json: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        kind = [self.device, self.os, self.browser, self.bot_name or ""]
        object.__setattr__(
            self, "json", dumps(kind, ensure_ascii=False, separators=(",", ":"))[1:-1]
        )

    @property
    def is_bot(self) -> bool:
        return self.kind == BOT


NO_AGENT = Agent(UNKNOWN, None, None, "other", "Other", "Other")


def _cut(text: str | None, length: int = NAME_LENGTH) -> str:
    return (text or "Other").strip()[:length] or "Other"


@lru_cache(maxsize=AGENTS_CACHED)
def classify(user_agent: str | None) -> Agent:
    """The agent a User-Agent string describes; no string at all is `NO_AGENT` (unknown,
    counted as a person). One dictionary look-up for a string seen before."""
    if not user_agent or not user_agent.strip():
        return NO_AGENT
    parsed = _PARSER.parse(user_agent)
    browser = _cut(parsed.user_agent.family if parsed.user_agent else None)
    os = _cut(parsed.os.family if parsed.os else None)
    lower = user_agent.lower()
    missed = next((name for needle, name in _MISSED_PREVIEWS if needle in lower), None)
    if missed is None and not _CRAWLERS.is_crawler(user_agent):
        return Agent(PERSON, None, None, _device_type(lower, parsed), os, browser)
    bot_kind, name = _bot(lower, missed, browser)
    return Agent(BOT, bot_kind, _cut(name), "bot", os, browser)


def _bot(lower: str, missed: str | None, browser: str) -> tuple[str, str]:
    """(bot kind, name) of an agent already known to be a bot."""
    if missed is not None:
        return PREVIEW, missed
    preview = next((name for needle, name in _PREVIEWS if needle in lower), None)
    if preview is not None:
        return PREVIEW, preview
    kind = TOOL if any(needle in lower for needle in _TOOLS) else CRAWLER
    if browser != "Other":
        return kind, browser  # ua-parser's name: "Googlebot", "curl", "YandexBot"
    return kind, _CRAWLERS.get_matches() or "Other"  # the pattern crawlerdetect matched


def _device_type(lower: str, parsed: ua_parser.Result) -> str:
    """desktop, phone, tablet or other (an Android agent without "Mobile" is a tablet's,
    as Android browsers tell them apart)."""
    device = parsed.device
    family = device.family if device else "Other"
    brand = (device.brand or "") if device else ""
    os = parsed.os.family if parsed.os else "Other"
    if family == "Spider":
        return "bot"
    if family in ("iPad", "Kindle") or "Tablet" in brand or "tablet" in lower:
        return "tablet"
    if os == "Android" and "mobile" not in lower:
        return "tablet"
    if os in _MOBILE_OS or family == "iPhone" or "mobile" in lower:
        return "phone"
    if os.startswith("Windows") or os in _DESKTOP_OS:
        return "desktop"
    return "other"


def referrer_host(referer: str | None) -> str:
    """The lower-case host of a `Referer` header (no path, no query): "direct" without
    one, "unknown" when it names no readable host."""
    if not referer or not referer.strip():
        return DIRECT
    return _host(referer.strip()[:2048])  # a host is at most 253 characters


@lru_cache(maxsize=4096)
def _host(referer: str) -> str:
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return UNREADABLE
    host = (host or "").rstrip(".")
    if not host or not host.isprintable() or " " in host:
        return UNREADABLE
    return host[:HOST_LENGTH]
