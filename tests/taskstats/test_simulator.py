"""The video-statistics simulator keeps the contracts the client is written against:
YouTube's videos.list (strings, absent ids, 50 ids, key, quota and its error body), TikHub's
envelope, key and 429, the short-link redirects, and counts that come from the seed and
only grow with the clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tallyhub.core.simulation import SimClock, running
from tallyhub.taskstats.simulator import (
    TIKHUB_PATHS,
    YOUTUBE_PATH,
    VideoWorld,
    create_app,
)

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 20:00 the day before, Pacific
YT_KEY = "sim-youtube-key"
BEARER = {"Authorization": "Bearer sim-tikhub-key"}
DOUYIN_ID = "7345678901234567890"
TIKTOK_ID = "7301234567890123456"


def youtube_ids(count: int, prefix: str = "v") -> list[str]:
    return [f"{prefix}{n:010d}"[-11:] for n in range(count)]


@dataclass
class Sim:
    app: FastAPI
    http: httpx.Client
    clock: SimClock

    @property
    def videos(self) -> VideoWorld:
        world: VideoWorld = self.app.state.videos
        return world

    def youtube(self, ids: list[str], **params: Any) -> httpx.Response:
        query = {"part": "statistics", "id": ",".join(ids), "key": YT_KEY, **params}
        return self.http.get(YOUTUBE_PATH, params=query)

    def tikhub(self, platform: str, share_url: str, headers: Any = BEARER) -> httpx.Response:
        return self.http.get(
            TIKHUB_PATHS[platform], params={"share_url": share_url}, headers=headers
        )

    def requests(self, path: str) -> int:
        by_path: dict[str, int] = self.http.get("/__sim/requests").json()["by_path"]
        return by_path.get(path, 0)


@pytest.fixture
def sim() -> Iterator[Sim]:
    clock = SimClock(START)
    app = create_app(seed=3, clock=clock)
    with running(app) as url, httpx.Client(base_url=url) as http:
        yield Sim(app, http, clock)


# ---------------------------------------------------------------- YouTube


def test_youtube_answers_statistics_as_strings_for_the_ids_asked(sim: Sim) -> None:
    ids = youtube_ids(3)
    answer = sim.youtube(ids)
    assert answer.status_code == 200
    body = answer.json()
    assert body["kind"] == "youtube#videoListResponse" and body["etag"]
    assert body["pageInfo"] == {"totalResults": 3, "resultsPerPage": 3}
    assert [item["id"] for item in body["items"]] == ids
    for item in body["items"]:
        assert item["kind"] == "youtube#video" and item["etag"]
        statistics = item["statistics"]
        assert all(isinstance(value, str) and value.isdigit() for value in statistics.values())
        truth = sim.videos.truth(f"https://www.youtube.com/watch?v={item['id']}")
        assert int(statistics["viewCount"]) == truth["view"]
        assert statistics["favoriteCount"] == "0"


def test_hidden_likes_and_closed_comments_are_absent_and_read_as_zero(sim: Sim) -> None:
    ids = youtube_ids(50, prefix="h")
    items = sim.youtube(ids).json()["items"]
    no_likes = [item for item in items if "likeCount" not in item["statistics"]]
    no_comments = [item for item in items if "commentCount" not in item["statistics"]]
    assert no_likes and no_comments  # about one in twenty each
    for item in no_likes:
        assert sim.videos.truth(f"https://youtu.be/{item['id']}")["like"] == 0
    for item in no_comments:
        assert sim.videos.truth(f"https://youtu.be/{item['id']}")["comment"] == 0


def test_unknown_malformed_and_removed_ids_are_simply_absent(sim: Sim) -> None:
    kept, removed = youtube_ids(2)
    sim.http.post("/__sim/videos/removed", json={"link": f"https://youtu.be/{removed}"})
    answer = sim.youtube([kept, removed, "too-short", kept])
    assert answer.status_code == 200
    assert [item["id"] for item in answer.json()["items"]] == [kept]
    assert sim.videos.truth(f"https://youtu.be/{removed}")["removed"] is True


def test_more_than_fifty_ids_is_a_400(sim: Sim) -> None:
    assert sim.youtube(youtube_ids(50)).status_code == 200
    answer = sim.youtube(youtube_ids(51))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 400 and error["errors"][0]["reason"] == "invalidFilters"


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"key": "wrong"}, 400, "keyInvalid"),
        ({"key": ""}, 403, "forbidden"),
        ({"part": ""}, 400, "required"),
        ({"part": "snippet"}, 400, "unknownPart"),
        ({"id": ""}, 400, "missingRequiredParameter"),
    ],
)
def test_youtube_refusals_carry_googles_error_body(
    sim: Sim, params: dict[str, str], status: int, reason: str
) -> None:
    answer = sim.youtube(youtube_ids(1), **params)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == status and error["message"]
    assert error["errors"][0]["reason"] == reason


def test_quota_exhaustion_answers_403_quota_exceeded_until_midnight_pacific(sim: Sim) -> None:
    state = sim.http.post("/__sim/youtube/quota", json={"remaining": 2}).json()
    assert state == {"remaining": 2, "resets_at": "2026-03-01T00:00:00-08:00"}
    assert [sim.youtube(youtube_ids(1)).status_code for _ in range(2)] == [200, 200]
    refused = sim.youtube(youtube_ids(1))
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": 403,
            "message": refused.json()["error"]["message"],
            "errors": [
                {
                    "message": refused.json()["error"]["message"],
                    "domain": "youtube.quota",
                    "reason": "quotaExceeded",
                }
            ],
        }
    }
    assert "quota" in refused.json()["error"]["message"]
    sim.clock.advance(4 * 3600 - 1)  # 23:59:59 Pacific: still the same quota day
    assert sim.youtube(youtube_ids(1)).status_code == 403
    sim.clock.advance(1)
    assert sim.youtube(youtube_ids(1)).status_code == 200
    assert sim.http.get("/__sim/youtube/quota").json() == {"remaining": None, "resets_at": None}


# ---------------------------------------------------------------- TikHub


@pytest.mark.parametrize(
    ("platform", "link"),
    [
        ("douyin", f"https://www.douyin.com/video/{DOUYIN_ID}"),
        ("douyin", f"https://www.iesdouyin.com/share/video/{DOUYIN_ID}/?region=CN"),
        ("tiktok", f"https://www.tiktok.com/@someone/video/{TIKTOK_ID}?lang=en"),
    ],
)
def test_tikhub_answers_its_envelope_with_the_videos_statistics(
    sim: Sim, platform: str, link: str
) -> None:
    answer = sim.tikhub(platform, link)
    assert answer.status_code == 200
    body = answer.json()
    assert body["code"] == 200 and body["request_id"]
    assert body["router"] == TIKHUB_PATHS[platform]
    assert body["params"] == {"share_url": link}
    detail = body["data"]["aweme_detail"]
    truth = sim.videos.truth(link)
    assert detail["aweme_id"] == truth["video_id"]
    statistics = detail["statistics"]
    assert (
        statistics["play_count"],
        statistics["digg_count"],
        statistics["comment_count"],
        statistics["share_count"],
        statistics["collect_count"],
    ) == (truth["view"], truth["like"], truth["comment"], truth["share"], truth["collect"])
    assert all(isinstance(value, int) for key, value in statistics.items() if key != "aweme_id")


@pytest.mark.parametrize("platform", ["douyin", "tiktok"])
def test_tikhub_takes_short_share_urls_too(sim: Sim, platform: str) -> None:
    video_id = DOUYIN_ID if platform == "douyin" else TIKTOK_ID
    short = sim.videos.short_link(platform, video_id)
    body = sim.tikhub(platform, short).json()
    assert body["data"]["aweme_detail"]["aweme_id"] == video_id


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sim-tikhub-key"}],
)
def test_tikhub_refuses_a_missing_or_wrong_key_with_401(sim: Sim, headers: Any) -> None:
    answer = sim.tikhub("douyin", f"https://www.douyin.com/video/{DOUYIN_ID}", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["detail"]["code"] == 401


def test_tikhub_refuses_links_that_name_no_video_of_its_platform(sim: Sim) -> None:
    tiktok_link = f"https://www.tiktok.com/@a/video/{TIKTOK_ID}"
    for platform, link in [
        ("douyin", tiktok_link),
        ("douyin", "https://v.douyin.com/unknown/"),
        ("tiktok", "https://example.com/video/123456789"),
    ]:
        answer = sim.tikhub(platform, link)
        assert answer.status_code == 400, link
        assert answer.json()["detail"]["params"] == {"share_url": link}
    assert sim.tikhub("douyin", "").status_code == 422


def test_a_removed_video_has_no_aweme_detail(sim: Sim) -> None:
    link = f"https://www.douyin.com/video/{DOUYIN_ID}"
    sim.http.post("/__sim/videos/removed", json={"link": link})
    body = sim.tikhub("douyin", link).json()
    assert body["code"] == 200
    assert body["data"]["aweme_detail"] is None
    assert body["data"]["filter_detail"]["aweme_id"] == DOUYIN_ID


def test_tikhub_answers_429_with_retry_after_above_its_rate() -> None:
    app = create_app(clock=SimClock(START), tikhub_qps=2.0)
    link = f"https://www.douyin.com/video/{DOUYIN_ID}"
    with running(app) as url, httpx.Client(base_url=url) as http:
        answers = [
            http.get(TIKHUB_PATHS["douyin"], params={"share_url": link}, headers=BEARER)
            for _ in range(6)
        ]
        limited = [answer for answer in answers if answer.status_code == 429]
        assert answers[0].status_code == 200
        assert limited, [answer.status_code for answer in answers]
        assert all(int(answer.headers["Retry-After"]) >= 1 for answer in limited)
        assert all(answer.json()["detail"]["code"] == 429 for answer in limited)
        # YouTube is not under TikHub's rate.
        youtube = {"part": "statistics", "id": youtube_ids(1)[0], "key": YT_KEY}
        assert all(http.get(YOUTUBE_PATH, params=youtube).status_code == 200 for _ in range(6))
        assert http.post("/__sim/tikhub/rate", json={"qps": None}).json() == {"qps": None}
        assert all(
            http.get(TIKHUB_PATHS["douyin"], params={"share_url": link}, headers=BEARER).status_code
            == 200
            for _ in range(6)
        )


# ---------------------------------------------------------------- short links


def test_short_links_redirect_to_their_video(sim: Sim) -> None:
    douyin = sim.http.post(
        "/__sim/short-links", json={"platform": "douyin", "video_id": DOUYIN_ID}
    ).json()["short_link"]
    assert re.fullmatch(r"https://v\.douyin\.com/[A-Za-z0-9]+/", douyin)
    answer = sim.http.get(httpx.URL(douyin).path)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"https://www.douyin.com/video/{DOUYIN_ID}/"
    tiktok = sim.videos.short_link("tiktok", TIKTOK_ID)
    location = sim.http.get(httpx.URL(tiktok).path).headers["Location"]
    assert re.fullmatch(rf"https://www\.tiktok\.com/@\w+/video/{TIKTOK_ID}", location)
    assert sim.http.get("/nosuchcode/").status_code == 404
    assert sim.requests(httpx.URL(douyin).path) == 1


def test_a_short_link_and_its_long_link_have_the_same_truth(sim: Sim) -> None:
    short = sim.videos.short_link("douyin", DOUYIN_ID)
    long = sim.http.get("/__sim/video", params={"link": f"https://douyin.com/video/{DOUYIN_ID}"})
    assert sim.http.get("/__sim/video", params={"link": short}).json() == long.json()
    assert sim.http.get("/__sim/video", params={"link": "https://example.com/"}).status_code == 404


def test_a_short_link_needs_a_well_formed_id(sim: Sim) -> None:
    answer = sim.http.post("/__sim/short-links", json={"platform": "douyin", "video_id": "x1"})
    assert answer.status_code == 422


# ---------------------------------------------------------------- the world


def _counts(world: VideoWorld, links: list[str]) -> list[dict[str, Any]]:
    return [world.truth(link) for link in links]


LINKS = [
    *(f"https://youtu.be/{video_id}" for video_id in youtube_ids(20)),
    *(f"https://www.douyin.com/video/{7_300_000_000_000_000_000 + n}" for n in range(20)),
    *(f"https://www.tiktok.com/@u/video/{7_200_000_000_000_000_000 + n}" for n in range(20)),
]


def test_counts_come_from_the_seed() -> None:
    def world(seed: int) -> VideoWorld:
        made: VideoWorld = create_app(seed=seed, clock=SimClock(START)).state.videos
        return made

    assert _counts(world(5), LINKS) == _counts(world(5), LINKS)
    assert _counts(world(5), LINKS) != _counts(world(6), LINKS)


def test_counts_are_plausible_and_only_grow_with_the_clock(sim: Sim) -> None:
    before = _counts(sim.videos, LINKS)
    for truth in before:
        assert 300 <= truth["view"] <= 10_000_000
        assert truth["like"] <= truth["view"] // 5 and truth["comment"] <= truth["view"] // 50
        if truth["platform"] == "youtube":
            assert truth["share"] == truth["collect"] == 0
    douyin = [truth for truth in before if truth["platform"] == "douyin"]
    assert all(truth["share"] > 0 and truth["collect"] > 0 for truth in douyin)
    sim.clock.advance(timedelta(days=3).total_seconds())
    after = _counts(sim.videos, LINKS)
    assert all(
        later[count] >= earlier[count]
        for earlier, later in zip(before, after, strict=True)
        for count in ("view", "like", "comment", "share", "collect")
    )
    assert all(
        later["view"] > earlier["view"] for earlier, later in zip(before, after, strict=True)
    )


def test_the_kits_faults_apply_to_every_upstream_path(sim: Sim) -> None:
    sim.http.post("/__sim/faults", json={"status": 503, "count": 1, "path": YOUTUBE_PATH})
    assert sim.youtube(youtube_ids(1)).status_code == 503
    assert sim.youtube(youtube_ids(1)).status_code == 200
    assert sim.requests(YOUTUBE_PATH) == 2
