"""The video-statistics client over real HTTP against the simulator: YouTube ids batched 50
a call, strings read as counts, one bad item never costing the others, the quota and keys
stopping only what they concern, Retry-After waited out, short links resolved; and link
parsing across the forms people paste."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tallyhub.core.simulation import SimClock, running
from tallyhub.core.upstream import UpstreamSettings
from tallyhub.taskstats.client import (
    MAX_LINK_LENGTH,
    NOT_FOUND,
    QUOTA_EXCEEDED,
    TIKHUB_KEY_MISSING,
    TIKHUB_KEY_REJECTED,
    YOUTUBE_KEY_REJECTED,
    BadLink,
    Item,
    VideoFetchFailed,
    VideoStats,
    VideoStatsClient,
    check_link,
    is_short_link,
    video_key,
)
from tallyhub.taskstats.config import TaskstatsSettings
from tallyhub.taskstats.simulator import TIKHUB_PATHS, YOUTUBE_PATH, VideoWorld, create_app

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
# Tiny pauses and no rate limit of ours in the way.
FAST: dict[str, Any] = {
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.05,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
    "attempts": 3,
    "timeout_seconds": 5.0,
}
DOUYIN, TIKTOK = TIKHUB_PATHS["douyin"], TIKHUB_PATHS["tiktok"]


def youtube_links(count: int, prefix: str = "y") -> list[Item]:
    return [("youtube", f"https://www.youtube.com/watch?v={prefix}{n:010d}") for n in range(count)]


def douyin_links(count: int, first: int = 7_300_000_000_000_000_000) -> list[Item]:
    return [("douyin", f"https://www.douyin.com/video/{first + n}") for n in range(count)]


def tiktok_links(count: int, first: int = 7_200_000_000_000_000_000) -> list[Item]:
    return [("tiktok", f"https://www.tiktok.com/@u{n}/video/{first + n}") for n in range(count)]


@dataclass
class Sim:
    app: FastAPI
    url: str

    @property
    def videos(self) -> VideoWorld:
        world: VideoWorld = self.app.state.videos
        return world

    def settings(self, **changes: Any) -> TaskstatsSettings:
        upstream = UpstreamSettings(**{**FAST, **changes.pop("upstream", {})})
        fields: dict[str, Any] = {
            "youtube_base_url": self.url,
            "youtube_api_key": "sim-youtube-key",
            "tikhub_base_url": self.url,
            "tikhub_api_key": "sim-tikhub-key",
            "douyin_short_link_base_url": self.url,
        }
        return TaskstatsSettings(**{**fields, **changes}, upstream=upstream)

    @asynccontextmanager
    async def client(self, **changes: Any) -> AsyncIterator[VideoStatsClient]:
        async with VideoStatsClient(self.settings(**changes)) as client:
            yield client

    def stats(self, link: str) -> VideoStats:
        truth = self.videos.truth(link)
        return VideoStats(
            **{key: truth[key] for key in ("view", "like", "comment", "share", "collect")}
        )

    def requests(self, path: str) -> int:
        by_path: dict[str, int] = self.app.state.requests.snapshot()["by_path"]
        return by_path.get(path, 0)


@pytest.fixture
def sim() -> Iterator[Sim]:
    app = create_app(seed=11, clock=SimClock(START))
    with running(app) as url:
        yield Sim(app, url)


def _failure(result: VideoStats | VideoFetchFailed) -> str:
    assert isinstance(result, VideoFetchFailed), result
    return result.reason


# ---------------------------------------------------------------- YouTube


async def test_120_youtube_videos_take_3_calls_and_read_every_count(sim: Sim) -> None:
    items = youtube_links(120)
    async with sim.client() as client:
        results = await client.fetch_many(items)
        assert client.requests_made == 3
    assert sim.requests(YOUTUBE_PATH) == 3
    assert results == {item: sim.stats(item[1]) for item in items}
    # Hidden likes and closed comments (absent from the answer) read as 0, among real counts.
    assert any(stats.like == 0 for stats in results.values())
    assert all(isinstance(stats, VideoStats) and stats.view > 0 for stats in results.values())


async def test_links_to_one_video_cost_one_id(sim: Sim) -> None:
    video_id = "abcdefghijk"
    items: list[Item] = [
        ("youtube", f"https://youtu.be/{video_id}"),
        ("youtube", f"https://www.youtube.com/shorts/{video_id}"),
        ("youtube", f"https://m.youtube.com/watch?v={video_id}&t=42"),
    ]
    async with sim.client() as client:
        results = await client.fetch_many(items)
    assert set(results.values()) == {sim.stats(items[0][1])}
    assert sim.requests(YOUTUBE_PATH) == 1


async def test_a_missing_youtube_video_fails_alone(sim: Sim) -> None:
    items = youtube_links(5)
    gone = items[2]
    sim.videos.remove(gone[1])
    async with sim.client() as client:
        results = await client.fetch_many(items)
        with pytest.raises(VideoFetchFailed) as raised:
            await client.fetch(*gone)
    assert _failure(results[gone]) == NOT_FOUND
    assert raised.value == VideoFetchFailed("youtube", gone[1], NOT_FOUND)
    assert all(results[item] == sim.stats(item[1]) for item in items if item != gone)


async def test_quota_exceeded_fails_the_rest_of_youtube_only_and_is_not_retried(
    sim: Sim,
) -> None:
    sim.videos.set_quota(1)
    youtube, douyin, tiktok = youtube_links(120), douyin_links(3), tiktok_links(3)
    async with sim.client(fetch_concurrency=1) as client:
        results = await client.fetch_many([*youtube, *douyin, *tiktok])
    assert sim.requests(YOUTUBE_PATH) == 2  # the 50 answered, one 403, no retry, no third call
    assert all(results[item] == sim.stats(item[1]) for item in youtube[:50])
    assert {_failure(results[item]) for item in youtube[50:]} == {QUOTA_EXCEEDED}
    assert all(results[item] == sim.stats(item[1]) for item in [*douyin, *tiktok])


async def test_quota_exceeded_with_batches_in_flight_fails_them_all_without_retrying(
    sim: Sim,
) -> None:
    sim.videos.set_quota(0)
    items = youtube_links(200)
    async with sim.client(fetch_concurrency=2) as client:
        results = await client.fetch_many(items)
    assert 1 <= sim.requests(YOUTUBE_PATH) <= 2  # the batches already sent, none after
    assert {_failure(result) for result in results.values()} == {QUOTA_EXCEEDED}
    assert len(results) == 200


async def test_a_wrong_youtube_key_fails_youtube_items_with_a_clear_reason(sim: Sim) -> None:
    items = [*youtube_links(60), *douyin_links(1)]
    async with sim.client(youtube_api_key="wrong", fetch_concurrency=1) as client:
        results = await client.fetch_many(items)
    assert {_failure(results[item]) for item in items[:60]} == {YOUTUBE_KEY_REJECTED}
    assert results[items[60]] == sim.stats(items[60][1])
    assert sim.requests(YOUTUBE_PATH) == 1


async def test_a_youtube_503_burst_is_retried_to_the_answer(sim: Sim) -> None:
    sim.app.state.faults.add(status=503, count=2, path=YOUTUBE_PATH)
    items = youtube_links(3)
    async with sim.client() as client:
        results = await client.fetch_many(items)
    assert results == {item: sim.stats(item[1]) for item in items}
    assert sim.requests(YOUTUBE_PATH) == 3


# ---------------------------------------------------------------- TikHub


async def test_douyin_and_tiktok_videos_read_every_count(sim: Sim) -> None:
    items = [*douyin_links(5), *tiktok_links(5)]
    async with sim.client() as client:
        results = await client.fetch_many(items)
        assert client.requests_made == 10
    assert results == {item: sim.stats(item[1]) for item in items}
    assert all(isinstance(s, VideoStats) and s.share and s.collect for s in results.values())
    assert sim.requests(DOUYIN) == sim.requests(TIKTOK) == 5


async def test_a_tikhub_429_is_waited_out_as_retry_after_says(sim: Sim) -> None:
    sim.app.state.faults.add(status=429, count=2, retry_after=0.02, path=TIKTOK)
    (item,) = tiktok_links(1)
    async with sim.client() as client:
        assert await client.fetch(*item) == sim.stats(item[1])
    assert sim.requests(TIKTOK) == 3


async def test_tikhubs_own_rate_limit_is_waited_out() -> None:
    app = create_app(seed=11, clock=SimClock(START), tikhub_qps=2.0)
    with running(app) as url:
        sim = Sim(app, url)
        items = douyin_links(4)
        async with sim.client(upstream={"backoff_max_seconds": 5.0}) as client:
            results = await client.fetch_many(items)
        assert results == {item: sim.stats(item[1]) for item in items}
        assert sim.requests(DOUYIN) > 4  # some were answered 429 and asked again


async def test_a_wrong_tikhub_key_fails_tikhub_items_only_and_stops_asking(sim: Sim) -> None:
    tikhub_items = [*douyin_links(6), *tiktok_links(6)]
    youtube = youtube_links(2)
    async with sim.client(tikhub_api_key="wrong", fetch_concurrency=2) as client:
        results = await client.fetch_many([*tikhub_items, *youtube])
    assert {_failure(results[item]) for item in tikhub_items} == {TIKHUB_KEY_REJECTED}
    assert all(results[item] == sim.stats(item[1]) for item in youtube)
    assert sim.requests(DOUYIN) + sim.requests(TIKTOK) <= 2  # those in flight, no more


async def test_an_unset_key_fails_its_items_without_a_request(sim: Sim) -> None:
    items = [*douyin_links(2), *youtube_links(1)]
    async with sim.client(tikhub_api_key="") as client:
        results = await client.fetch_many(items)
        assert client.requests_made == 1
    assert {_failure(results[item]) for item in items[:2]} == {TIKHUB_KEY_MISSING}
    assert results[items[2]] == sim.stats(items[2][1])


async def test_a_removed_douyin_video_is_not_found(sim: Sim) -> None:
    items = douyin_links(3)
    sim.videos.remove(items[1][1])
    async with sim.client() as client:
        results = await client.fetch_many(items)
    assert _failure(results[items[1]]) == NOT_FOUND
    assert results[items[0]] == sim.stats(items[0][1])
    assert results[items[2]] == sim.stats(items[2][1])


# ---------------------------------------------------------------- short links


async def test_a_douyin_short_link_resolves_to_its_long_links_counts(sim: Sim) -> None:
    (long,) = douyin_links(1)
    video_id = long[1].rsplit("/", 1)[1]
    short = sim.videos.short_link("douyin", video_id)
    async with sim.client() as client:
        results = await client.fetch_many([("douyin", short), long])
    assert results[("douyin", short)] == results[long] == sim.stats(long[1])
    assert sim.requests(httpx.URL(short).path) == 1
    assert sim.requests(DOUYIN) == 1  # one video, one TikHub call


async def test_a_tiktok_short_link_goes_to_tikhub_as_it_is(sim: Sim) -> None:
    short = sim.videos.short_link("tiktok", "7200000000000000042")
    async with sim.client() as client:
        assert await client.fetch("tiktok", short) == sim.stats(short)
    assert sim.requests(TIKTOK) == 1


async def test_an_unknown_short_link_fails_alone(sim: Sim) -> None:
    unknown: Item = ("douyin", "https://v.douyin.com/iNoSuch1/")
    items = [unknown, *douyin_links(1)]
    async with sim.client() as client:
        results = await client.fetch_many(items)
    assert "HTTP 404" in _failure(results[unknown])
    assert results[items[1]] == sim.stats(items[1][1])


# ---------------------------------------------------------------- one bad item


async def test_fetch_many_never_raises_for_bad_items(sim: Sim) -> None:
    good = [*youtube_links(2), *douyin_links(2), *tiktok_links(2)]
    down = tiktok_links(1, first=7_100_000_000_000_000_000)[0]
    bad: list[Item] = [
        ("youtube", "ftp://www.youtube.com/watch?v=abcdefghijk"),
        ("youtube", "https://www.youtube.com/channel/UC123"),
        ("douyin", "https://www.youtube.com/watch?v=abcdefghijk"),
        ("tiktok", "https://www.tiktok.com/@u/video/" + "9" * 3000),
        ("vimeo", "https://vimeo.com/1"),  # type: ignore[list-item]
    ]
    # The TikTok video that only answers 503 is tried `attempts` times, then given up.
    sim.app.state.faults.add(status=503, count=3, path=TIKTOK)
    async with sim.client(fetch_concurrency=1) as client:
        results = await client.fetch_many([down, *bad, *good])
    assert "3 attempts failed" in _failure(results[down])
    assert all(_failure(results[item]).startswith("bad link: ") for item in bad)
    assert all(results[item] == sim.stats(item[1]) for item in good)


async def test_metrics_name_the_three_upstreams(sim: Sim) -> None:
    def sent(upstream: str) -> float:
        labels = {"upstream": upstream, "endpoint": "resolve" if "short" in upstream else ""}
        if not labels["endpoint"]:
            labels["endpoint"] = "videos" if upstream == "youtube" else "douyin_video"
        return REGISTRY.get_sample_value("upstream_requests_total", labels) or 0.0

    before = {name: sent(name) for name in ("youtube", "tikhub", "douyin_short_link")}
    short = sim.videos.short_link("douyin", "7300000000000000001")
    async with sim.client() as client:
        await client.fetch_many([("douyin", short), *youtube_links(1)])
    after = {name: sent(name) for name in before}
    assert {name: after[name] - before[name] for name in before} == {
        "youtube": 1,
        "tikhub": 1,
        "douyin_short_link": 1,
    }


# ---------------------------------------------------------------- links

_YT_ID = st.text(string.ascii_letters + string.digits + "_-", min_size=11, max_size=11)
_AWEME_ID = st.integers(10**17, 10**19 - 1).map(str)
_HANDLE = st.text(string.ascii_lowercase + string.digits + "._", min_size=1, max_size=24)
_QUERY = st.sampled_from(["", "?si=abc", "?lang=en&is_copy_url=1", "?feature=share"])
_SCHEME = st.sampled_from(["https://", "http://", "HTTPS://"])


@st.composite
def youtube_link(draw: st.DrawFn) -> tuple[str, str]:
    video_id = draw(_YT_ID)
    host = draw(st.sampled_from(["www.youtube.com", "youtube.com", "m.youtube.com", "YouTube.com"]))
    form = draw(
        st.sampled_from(
            [
                f"{host}/watch?v={video_id}",
                f"{host}/watch?feature=share&v={video_id}&t=3s",
                f"youtu.be/{video_id}",
                f"{host}/shorts/{video_id}",
                f"{host}/embed/{video_id}",
                f"{host}/live/{video_id}",
            ]
        )
    )
    return draw(_SCHEME) + form, video_id


@st.composite
def tiktok_link(draw: st.DrawFn) -> tuple[str, str]:
    video_id = draw(_AWEME_ID)
    host = draw(st.sampled_from(["www.tiktok.com", "tiktok.com", "m.tiktok.com"]))
    form = draw(
        st.sampled_from(
            [
                f"{host}/@{draw(_HANDLE)}/video/{video_id}",
                f"{host}/embed/v2/{video_id}",
                f"m.tiktok.com/v/{video_id}.html",
            ]
        )
    )
    return draw(_SCHEME) + form + draw(_QUERY), video_id


@st.composite
def douyin_link(draw: st.DrawFn) -> tuple[str, str]:
    video_id = draw(_AWEME_ID)
    form = draw(
        st.sampled_from(
            [
                f"www.douyin.com/video/{video_id}",
                f"douyin.com/video/{video_id}/",
                f"www.iesdouyin.com/share/video/{video_id}/",
                f"www.douyin.com/discover?modal_id={video_id}",
                f"www.douyin.com/user/MS4wLjABAAAA?modal_id={video_id}",
            ]
        )
    )
    return draw(_SCHEME) + form, video_id


_CODE = st.text(string.ascii_letters + string.digits, min_size=5, max_size=12)
SHORT_LINKS = st.one_of(
    _CODE.map(lambda code: ("douyin", f"https://v.douyin.com/{code}/")),
    _CODE.map(lambda code: ("tiktok", f"https://vm.tiktok.com/{code}/")),
    _CODE.map(lambda code: ("tiktok", f"https://vt.tiktok.com/{code}")),
    _CODE.map(lambda code: ("tiktok", f"https://www.tiktok.com/t/{code}/")),
)
VIDEO_LINKS = st.one_of(
    youtube_link().map(lambda found: ("youtube", *found)),
    tiktok_link().map(lambda found: ("tiktok", *found)),
    douyin_link().map(lambda found: ("douyin", *found)),
)


@settings(max_examples=300)
@given(VIDEO_LINKS)
def test_video_key_reads_the_id_from_every_form(case: tuple[str, str, str]) -> None:
    platform, link, video_id = case
    assert video_key(platform, link) == video_id
    normalized = check_link(platform, f"  {link}  ")
    assert normalized.startswith("https://") and "#" not in normalized
    assert video_key(platform, normalized) == video_id
    assert check_link(platform, normalized) == normalized  # normalizing twice changes nothing
    others = [p for p in ("youtube", "tiktok", "douyin") if p != platform]
    assert all(video_key(other, link) is None for other in others)
    with pytest.raises(BadLink):
        check_link(others[0], link)


def test_a_link_fits_the_column_once_normalized() -> None:
    link = "http://douyin.com/video/7300000000000000000?a=" + "b" * 1000
    link += "c" * (MAX_LINK_LENGTH - len(link))  # exactly the limit, one more once https
    with pytest.raises(BadLink, match="longer than"):
        check_link("douyin", link)
    assert len(check_link("douyin", link[:-1])) == MAX_LINK_LENGTH


@settings(max_examples=100)
@given(SHORT_LINKS)
def test_short_links_need_resolving(case: tuple[str, str]) -> None:
    platform, link = case
    assert video_key(platform, link) is None
    assert is_short_link(platform, link)
    assert check_link(platform, link).startswith("https://")


@pytest.mark.parametrize(
    ("platform", "link", "problem"),
    [
        ("youtube", "ftp://www.youtube.com/watch?v=abcdefghijk", "http(s)"),
        ("youtube", "javascript:alert(1)//youtube.com", "http(s)"),
        ("youtube", "www.youtube.com/watch?v=abcdefghijk", "http(s)"),
        ("youtube", "https://evil.example/watch?v=abcdefghijk", "not a youtube link"),
        ("youtube", "https://www.youtube.com@evil.example/watch?v=abcdefghijk", "not a youtube"),
        ("youtube", "https://notyoutube.com/watch?v=abcdefghijk", "not a youtube link"),
        ("youtube", "https://www.youtube.com/watch?v=short", "not a link to a youtube video"),
        ("youtube", "https://www.youtube.com/channel/UCabc", "not a link to a youtube video"),
        ("youtube", "https://www.youtube.com/watch?v=abc\ndefghijk", "control characters"),
        ("tiktok", "https://www.tiktok.com/@someone", "not a link to a tiktok video"),
        ("tiktok", "https://www.douyin.com/video/7300000000000000000", "not a tiktok link"),
        ("douyin", "https://www.douyin.com/video/7" + "0" * MAX_LINK_LENGTH, "longer than"),
        ("douyin", "https:///video/7300000000000000000", "no host"),
        ("douyin", "https://[::1/video/7300000000000000000", "not a valid URL"),
        ("bilibili", "https://www.bilibili.com/video/BV1xx411c7mD", "unknown platform"),
    ],
)
def test_bad_links_say_what_is_wrong(platform: str, link: str, problem: str) -> None:
    with pytest.raises(BadLink, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_link(platform, link)
    assert video_key(platform, link) is None


_PREFIXES = st.sampled_from(
    [
        "",
        "https://",
        "https://www.youtube.com/",
        "https://youtu.be/",
        "https://www.youtube.com/watch?v=",
        "https://www.tiktok.com/@",
        "https://vm.tiktok.com/",
        "https://www.douyin.com/video/",
        "https://v.douyin.com/",
        "http://www.douyin.com/discover?modal_id=",
    ]
)
TEXTS = st.builds(str.__add__, _PREFIXES, st.text(max_size=300))


@settings(max_examples=1000)
@given(st.sampled_from(["youtube", "tiktok", "douyin"]), TEXTS)
def test_any_text_is_a_key_or_none_and_a_link_or_bad_link(platform: str, text: str) -> None:
    key = video_key(platform, text)
    assert key is None or key.isascii()
    try:
        normalized = check_link(platform, text)
    except BadLink:
        return
    assert normalized.startswith("https://")
    assert check_link(platform, normalized) == normalized
