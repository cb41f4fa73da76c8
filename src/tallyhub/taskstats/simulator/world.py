"""The simulated videos: counts drawn per (platform, video id) from the seed and growing
with the SimClock, short links, removed videos and YouTube's daily quota. Thread-safe: tests
change it from their own thread while the server reads it from another.

Every well-formed id is a video (YouTube: 11 characters of [A-Za-z0-9_-]; TikTok and Douyin:
6 to 20 digits) until it is removed, so a test can name as many videos as it likes."""

from __future__ import annotations

import hashlib
import random
import string
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tallyhub.core.simulation import SimClock
from tallyhub.taskstats.simulator.contract import (
    AWEME_ID,
    PACIFIC,
    PLATFORMS,
    SHORT_HOSTS,
    YOUTUBE_ID,
)

_DAY = 86400.0
_ALPHABET = string.ascii_letters + string.digits
COUNTS = ("view", "like", "comment", "share", "collect")


@dataclass(frozen=True)
class Shape:
    """How a platform's videos are drawn: views at the start (a power of ten between the
    bounds), and likes, comments, shares and collects as shares of the views."""

    log_views: tuple[float, float]
    like: tuple[float, float]
    comment: tuple[float, float]
    share: tuple[float, float] | None
    collect: tuple[float, float] | None


SHAPES = {
    "youtube": Shape((2.5, 6.5), (0.01, 0.06), (0.0005, 0.005), None, None),
    "tiktok": Shape((3.0, 7.0), (0.03, 0.12), (0.001, 0.01), (0.001, 0.02), (0.002, 0.03)),
    "douyin": Shape((3.0, 7.0), (0.02, 0.10), (0.001, 0.01), (0.001, 0.02), (0.002, 0.04)),
}


@dataclass(frozen=True)
class Video:
    platform: str
    video_id: str
    views: float  # at the world's start
    ratios: tuple[float, float, float, float]  # like, comment, share, collect per view
    growth: float  # views gained a day, as a share of the start's
    likes_hidden: bool  # YouTube: likeCount absent
    comments_off: bool  # YouTube: commentCount absent
    author: str
    author_uid: str

    def counts(self, days: float) -> dict[str, int]:
        """The counts `days` after the world's start, as the upstream shows them."""
        view = self.views * (1 + self.growth * max(0.0, days))
        like, comment, share, collect = (int(view * ratio) for ratio in self.ratios)
        return {
            "view": int(view),
            "like": 0 if self.likes_hidden else like,
            "comment": 0 if self.comments_off else comment,
            "share": share,
            "collect": collect,
        }


def draw(seed: int, platform: str, video_id: str) -> Video:
    rng = random.Random(f"{seed}:{platform}:{video_id}")
    shape = SHAPES[platform]

    def ratio(bounds: tuple[float, float] | None) -> float:
        return 0.0 if bounds is None else rng.uniform(*bounds)

    ratios = (ratio(shape.like), ratio(shape.comment), ratio(shape.share), ratio(shape.collect))
    youtube = platform == "youtube"
    return Video(
        platform=platform,
        video_id=video_id,
        views=10 ** rng.uniform(*shape.log_views),
        ratios=ratios,
        growth=rng.uniform(0.005, 0.15),
        likes_hidden=youtube and rng.random() < 0.05,
        comments_off=youtube and rng.random() < 0.05,
        author=f"user{rng.randrange(10**6, 10**7)}",
        author_uid=str(rng.randrange(10**10, 10**12)),
    )


def _well_formed(platform: str, video_id: str) -> bool:
    pattern = YOUTUBE_ID if platform == "youtube" else AWEME_ID
    return pattern.fullmatch(video_id) is not None


def _youtube_id(host: str, path: str, query: str) -> str:
    if host == "youtu.be":
        return path.strip("/")
    if path.rstrip("/") == "/watch":
        return (parse_qs(query).get("v") or [""])[0]
    segments = path.strip("/").split("/")
    return segments[1] if len(segments) == 2 and segments[0] in ("shorts", "embed", "live") else ""


def _aweme_id(path: str, query: str) -> str:
    segments = path.strip("/").split("/")
    if len(segments) >= 2 and segments[-2] == "video":
        return segments[-1]
    return (parse_qs(query).get("modal_id") or [""])[0]


def _platform_of(host: str) -> str | None:
    if host == "youtu.be" or host == "youtube.com" or host.endswith(".youtube.com"):
        return "youtube"
    if host.endswith("tiktok.com"):
        return "tiktok"
    if host.endswith(("douyin.com", "iesdouyin.com")):
        return "douyin"
    return None


class VideoWorld:
    """The videos every simulated upstream answers about (`app.state.videos`)."""

    def __init__(self, *, seed: int, clock: SimClock) -> None:
        self.seed, self.clock = seed, clock
        self.start = clock.now().timestamp()
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, str]] = {}
        self._removed: set[tuple[str, str]] = set()
        self._quota: int | None = None  # None: no limit
        self._quota_resets: datetime | None = None

    # ------------------------------------------------------------ videos

    def days(self) -> float:
        return (self.clock.now().timestamp() - self.start) / _DAY

    def video(self, platform: str, video_id: str) -> Video | None:
        """The video, or None for an id that cannot be one or a removed video."""
        if not _well_formed(platform, video_id):
            return None
        with self._lock:
            if (platform, video_id) in self._removed:
                return None
        return draw(self.seed, platform, video_id)

    def locate(self, link: str) -> tuple[str, str]:
        """(platform, video id) of a link, short links included; `LookupError` when it
        names no video this world knows how to find."""
        try:
            parts = urlsplit(link.strip())
            host = (parts.hostname or "").removeprefix("www.")
        except ValueError as error:
            raise LookupError(f"not a URL: {error}") from error
        if host in SHORT_HOSTS:
            return self._resolve_code(parts.path.strip("/"))
        platform = _platform_of(host)
        if platform is None:
            raise LookupError(f"not a YouTube, TikTok or Douyin link: {link[:200]}")
        if platform == "youtube":
            video_id = _youtube_id(host, parts.path, parts.query)
        else:
            video_id = _aweme_id(parts.path, parts.query)
        if not _well_formed(platform, video_id):
            raise LookupError(f"no {platform} video id in {link[:200]}")
        return platform, video_id

    def truth(self, link: str) -> dict[str, Any]:
        """What the upstream shows for the video now: platform, video_id, removed and the
        five counts (0 where the platform has none or hides it)."""
        platform, video_id = self.locate(link)
        counts = draw(self.seed, platform, video_id).counts(self.days())
        with self._lock:
            removed = (platform, video_id) in self._removed
        return {"platform": platform, "video_id": video_id, "removed": removed, **counts}

    def remove(self, link: str) -> tuple[str, str]:
        """Delete (or make private) the video a link names: the upstreams stop showing it."""
        located = self.locate(link)
        with self._lock:
            self._removed.add(located)
        return located

    # ------------------------------------------------------------ short links

    def short_link(self, platform: str, video_id: str) -> str:
        """A share link that resolves to the video (YouTube's youtu.be needs no resolving)."""
        if platform not in PLATFORMS or not _well_formed(platform, video_id):
            raise ValueError(f"not a {platform} video id: {video_id!r}")
        if platform == "youtube":
            return f"https://youtu.be/{video_id}"
        digest = hashlib.sha256(f"{self.seed}:{platform}:{video_id}".encode()).digest()
        tail = "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in digest[:7])
        code = f"i{tail}" if platform == "douyin" else f"ZM{tail}"
        with self._lock:
            self._codes[code] = (platform, video_id)
        host = "v.douyin.com" if platform == "douyin" else "vm.tiktok.com"
        return f"https://{host}/{code}/"

    def _resolve_code(self, code: str) -> tuple[str, str]:
        with self._lock:
            found = self._codes.get(code)
        if found is None:
            raise LookupError(f"no short link {code!r}")
        return found

    def redirect(self, code: str) -> str:
        """Where a short link's code redirects."""
        platform, video_id = self._resolve_code(code)
        if platform == "douyin":
            return f"https://www.douyin.com/video/{video_id}/"
        author = draw(self.seed, platform, video_id).author
        return f"https://www.tiktok.com/@{author}/video/{video_id}"

    # ------------------------------------------------------------ YouTube's quota

    def set_quota(self, remaining: int | None) -> dict[str, Any]:
        """Calls left today (None: no limit); YouTube gives a full quota again at the next
        midnight Pacific by the clock."""
        local = self.clock.now().astimezone(PACIFIC)
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=PACIFIC)
        with self._lock:
            self._quota = remaining
            self._quota_resets = None if remaining is None else midnight
        return self.quota_view()

    def quota_view(self) -> dict[str, Any]:
        with self._lock:
            self._reset_quota_when_due()
            resets = self._quota_resets
            return {
                "remaining": self._quota,
                "resets_at": None if resets is None else resets.isoformat(),
            }

    def spend_quota(self) -> bool:
        """Take one unit (a videos.list call costs 1); False when none is left."""
        with self._lock:
            self._reset_quota_when_due()
            if self._quota is None:
                return True
            if self._quota <= 0:
                return False
            self._quota -= 1
            return True

    def _reset_quota_when_due(self) -> None:
        if self._quota_resets is not None and self.clock.now() >= self._quota_resets:
            self._quota, self._quota_resets = None, None
