"""`/__track` and the clicks admin API through HTTP, on SQLite, PostgreSQL and MariaDB
(checks that cannot differ between databases run on SQLite only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from tallyhub.clicks import wiring
from tallyhub.clicks.models import Member, Message
from tallyhub.core.auth import Role
from tests.clicks.helpers import PERSON, TARGET, campaign, click, metric, summary_of, users
from tests.conftest import Harness, TestDatabase
from tests.factories import make_campaign, make_user

NO_DEDUP = {"dedup_window_ms": 0}
sqlite_only = pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)


async def test_five_clicks_count_five_and_write_every_record(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    async with harness_factory(test_db, clicks=NO_DEDUP) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        tags = ["A,B", "B, C ", "", "A,,A", "D"]
        for tag in tags:
            response = await click(
                h, cid=c["id"], uid="U_TEST_001", src=999, type="image_click", tag=tag
            )
            assert response.status_code == 302, response.text
            assert response.headers["location"] == TARGET
            assert response.headers["cache-control"] == "no-store"

        figures = await campaign(h, admin, c["id"])
        assert (figures["clicked_count"], figures["unique_users"]) == (5, 1)
        summary = summary_of(await users(h, admin, c["id"]), "U_TEST_001", 999)
        assert summary["total_clicks"] == 5
        assert summary["tags"] == ["A", "B", "C", "D"]
        assert summary["last_click_tag"] == "A,B,C,D"
        assert summary["display_name"] is None

        # Without a uid: no member, no summary; the counter and the log still move.
        assert (await click(h, cid=c["id"])).status_code == 302
        figures = await campaign(h, admin, c["id"])
        assert (figures["clicked_count"], figures["unique_users"]) == (6, 1)
        assert len(await users(h, admin, c["id"])) == 1

        # A HEAD (a link previewer) is answered but not counted.
        head = await h.client.head("/__track", params={"cid": c["id"], "to": TARGET, "uid": "U9"})
        assert head.status_code == 302
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 6

        log = await h.client.get(f"/api/clicks/campaigns/{c['id']}/interactions", headers=admin)
        assert log.status_code == 200
        page = log.json()
        assert page["total"] == 6 and len(page["items"]) == 6
        newest = page["items"][0]
        assert newest["line_id"] is None and newest["interaction_type"] == "image_click"
        assert newest["interaction_value"] == TARGET
        assert page["items"][1]["tags"] == ["D"] and page["items"][1]["source_campaign_id"] == 999

        daily = await h.client.get(f"/api/clicks/campaigns/{c['id']}/daily", headers=admin)
        assert [d["clicks"] for d in daily.json()] == [6]

        async with h.runtime.db.transaction(readonly=True) as session:
            members = await session.scalar(select(func.count()).select_from(Member))
            messages = list(await session.scalars(select(Message)))
        assert members == 1
        assert len(messages) == 5
        assert messages[0].content["event"] == "campaign_click"

        renamed = await h.client.patch(
            "/api/clicks/members/U_TEST_001", json={"display_name": "Ryan"}, headers=admin
        )
        assert renamed.status_code == 200 and renamed.json()["display_name"] == "Ryan"
        mine = await h.client.get("/api/clicks/users/U_TEST_001", headers=admin)
        assert [(s["display_name"], s["total_clicks"]) for s in mine.json()["items"]] == [
            ("Ryan", 5)
        ]


REFUSED = [
    ({"to": "javascript:alert(1)"}, 400, "invalid_target"),
    ({"to": "//evil.example/"}, 400, "invalid_target"),
    ({"to": "https://evil.example/"}, 400, "host_not_allowed"),
    ({"to": "https://shop.example.com.evil.example/"}, 400, "host_not_allowed"),
    ({"to": "https://shop.example.com@evil.example/"}, 400, "invalid_target"),
    ({"to": "https://evil.example\\@shop.example.com/"}, 400, "invalid_target"),
    ({"to": "https:\\\\evil.example"}, 400, "invalid_target"),
    ({"to": "https:evil.example"}, 400, "invalid_target"),
    ({"to": "data:text/html,<script>alert(1)</script>"}, 400, "invalid_target"),
    ({"to": "ftp://shop.example.com/"}, 400, "invalid_target"),
    ({"to": "https://shop.example.com/\r\nSet-Cookie: a=b"}, 400, "invalid_target"),
    ({"to": ""}, 400, "bad_parameter"),
    ({"cid": None}, 400, "bad_parameter"),
    ({"cid": "abc"}, 400, "bad_parameter"),
    ({"cid": "0"}, 400, "bad_parameter"),
    ({"src": "-1"}, 400, "bad_parameter"),
    ({"type": "bogus"}, 400, "bad_parameter"),
    ({"tag": "x" * 65}, 400, "bad_parameter"),
    ({"cid": "999999"}, 404, "unknown_campaign"),
]


@sqlite_only
async def test_open_redirect_attempts_and_bad_parameters_are_refused(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin)
    rejected_before = sum(
        metric("track_rejected_total", reason=r) for r in {code for _, _, code in REFUSED}
    )
    for overrides, status, code in REFUSED:
        params: dict[str, Any] = {"cid": c["id"], "uid": "U1", "to": TARGET, **overrides}
        response = await click(harness, **params)
        assert response.status_code == status, (overrides, response.text)
        assert response.json()["error"]["code"] == code, overrides
        assert "location" not in response.headers
    posted = await harness.client.post("/__track", params={"cid": c["id"], "to": TARGET})
    assert posted.status_code == 405
    twice = await harness.client.get(f"/__track?cid={c['id']}&to={TARGET}&to=https://evil.example")
    assert twice.status_code == 400 and "more than once" in twice.json()["error"]["message"]
    rejected_after = sum(
        metric("track_rejected_total", reason=r) for r in {code for _, _, code in REFUSED}
    )
    assert rejected_after - rejected_before == len(REFUSED) + 1  # and the repeated `to`
    assert (await campaign(harness, admin, c["id"]))["clicked_count"] == 0


@sqlite_only
async def test_signed_links(harness_factory: Any, test_db: TestDatabase) -> None:
    async with harness_factory(test_db, clicks=NO_DEDUP) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin, allowed_hosts=[])
        issued = await h.client.post(
            "/api/clicks/links",
            json={"cid": c["id"], "to": "https://elsewhere.example/x?y=1", "src": 7, "tag": "A, B"},
            headers=admin,
        )
        assert issued.status_code == 200, issued.text
        url = urlsplit(issued.json()["url"])
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert params["tag"] == "A,B" and params["sig"] == issued.json()["sig"]

        ok = await h.client.get(f"{url.path}?{url.query}", headers={"User-Agent": PERSON})
        assert ok.status_code == 302 and ok.headers["location"] == "https://elsewhere.example/x?y=1"
        # A generic link takes any uid appended by the sender.
        assert (await click(h, **params, uid="U_ANY")).status_code == 302

        for tampered in (
            {"to": "https://evil.example/x?y=1"},
            {"tag": "A,B,C"},
            {"src": "8"},
            {"type": "rich_menu"},
            {"cid": str(c["id"] + 1)},
            {"sig": "g" + "A" * 32},
            {"sig": "nonsense"},
        ):
            response = await click(h, **{**params, **tampered})
            expected = 404 if "cid" in tampered else 400
            assert response.status_code == expected, (tampered, response.text)
        # Without a signature the host list applies, and it is empty.
        unsigned = {k: v for k, v in params.items() if k != "sig"}
        assert (await click(h, **unsigned)).json()["error"]["code"] == "host_not_allowed"

        bound = await h.client.post(
            "/api/clicks/links",
            json={"cid": c["id"], "to": "https://elsewhere.example/", "uid": "U_ONE"},
            headers=admin,
        )
        bound_params = {k: v[0] for k, v in parse_qs(urlsplit(bound.json()["url"]).query).items()}
        assert (await click(h, **bound_params)).status_code == 302
        assert (await click(h, **{**bound_params, "uid": "U_OTHER"})).status_code == 400
        assert (await click(h, **{**bound_params, "uid": None})).status_code == 400

        refused = await h.client.post(
            "/api/clicks/links", json={"cid": c["id"], "to": "javascript:alert(1)"}, headers=admin
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_target"
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 3


async def test_campaign_changes_apply_to_clicks_at_once(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin)
    target = "https://promo.example.org/"
    assert (await click(harness, cid=c["id"], to=target)).status_code == 400  # now cached
    patched = await harness.client.patch(
        f"/api/clicks/campaigns/{c['id']}",
        json={"allowed_hosts": ["shop.example.com", "*.example.org"]},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["allowed_hosts"] == ["shop.example.com", "*.example.org"]
    assert (await click(harness, cid=c["id"], to=target)).status_code == 302
    assert (await click(harness, cid=c["id"], to="https://example.org/")).status_code == 400
    listed = await harness.client.get("/api/clicks/campaigns", headers=admin)
    assert [(x["id"], x["clicked_count"]) for x in listed.json()["items"]] == [(c["id"], 1)]
    bad = await harness.client.patch(
        f"/api/clicks/campaigns/{c['id']}",
        json={"allowed_hosts": ["https://evil.example/path"]},
        headers=admin,
    )
    assert bad.status_code == 422 and "allowed_hosts" in bad.json()["error"]["message"]


@sqlite_only
async def test_operators_see_only_their_campaigns_and_viewers_only_read(
    harness: Harness,
) -> None:
    alice = await make_user(harness, "alice", Role.operator)
    bob = await make_user(harness, "bob", Role.operator)
    viewer = await make_user(harness, "vera", Role.viewer)
    mine = await make_campaign(harness, alice, "Alice's")
    await make_campaign(harness, bob, "Bob's")
    assert (await click(harness, cid=mine["id"], uid="U_A")).status_code == 302
    base = f"/api/clicks/campaigns/{mine['id']}"

    for path in (base, f"{base}/users", f"{base}/interactions", f"{base}/daily"):
        response = await harness.client.get(path, headers=bob)
        assert response.status_code == 404, path
        assert (await harness.client.get(path, headers=viewer)).status_code == 200, path
    assert (await harness.client.patch(base, json={"name": "x"}, headers=bob)).status_code == 404
    link = {"cid": mine["id"], "to": TARGET}
    assert (
        await harness.client.post("/api/clicks/links", json=link, headers=bob)
    ).status_code == 404
    listed = await harness.client.get("/api/clicks/campaigns", headers=bob)
    assert [c["name"] for c in listed.json()["items"]] == ["Bob's"]
    assert (await harness.client.get("/api/clicks/users/U_A", headers=bob)).json()["total"] == 0
    assert (await harness.client.get("/api/clicks/users/U_A", headers=alice)).json()["total"] == 1
    rename = {"display_name": "A"}
    member = "/api/clicks/members/U_A"
    assert (await harness.client.patch(member, json=rename, headers=bob)).status_code == 404
    assert (await harness.client.patch(member, json=rename, headers=alice)).status_code == 200

    writes = [
        ("POST", "/api/clicks/campaigns", {"name": "v"}),
        ("PATCH", base, {"name": "v"}),
        ("POST", "/api/clicks/links", link),
        ("PATCH", member, rename),
    ]
    for method, path, body in writes:
        response = await harness.client.request(method, path, json=body, headers=viewer)
        assert response.status_code == 403, (method, path)
    assert (await harness.client.get("/api/clicks/campaigns")).status_code == 401


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_dedup_window_counts_a_double_click_once(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin)
    clock = FakeClock()
    wiring.parts(harness.runtime).tracker.dedup.clock = clock
    dedup_before = metric("track_dedup_total")

    assert (await click(harness, cid=c["id"], uid="U1")).status_code == 302
    clock.now += 0.1
    assert (await click(harness, cid=c["id"], uid="U1")).status_code == 302  # deduplicated
    assert (await campaign(harness, admin, c["id"]))["clicked_count"] == 1
    clock.now += 1.5
    assert (await click(harness, cid=c["id"], uid="U1")).status_code == 302
    # Another user, or another target of the same user, is not a double click.
    assert (await click(harness, cid=c["id"], uid="U2")).status_code == 302
    assert (await click(harness, cid=c["id"], uid="U1", to=TARGET + "?b")).status_code == 302
    assert (await campaign(harness, admin, c["id"]))["clicked_count"] == 4
    assert metric("track_dedup_total") - dedup_before == 1


@sqlite_only
async def test_dedup_window_is_shared_through_redis(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    import asyncio
    import uuid

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = "redis://127.0.0.1:6379/15"
    probe = Redis.from_url(url)
    try:
        await probe.ping()
    except (RedisError, OSError) as error:
        from tests.conftest import unavailable

        unavailable(f"redis unreachable at {url}: {error!r}")
    finally:
        await probe.aclose()
    async with harness_factory(test_db, redis_url=url, clicks={"dedup_window_ms": 300}) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        uid = f"U_{uuid.uuid4().hex[:10]}"
        for _ in range(3):
            assert (await click(h, cid=c["id"], uid=uid)).status_code == 302
        await asyncio.sleep(0.45)
        assert (await click(h, cid=c["id"], uid=uid)).status_code == 302
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 2
