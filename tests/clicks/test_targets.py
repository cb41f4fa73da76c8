"""Redirect targets are judged by the host a browser goes to (UTS-46, non-transitional, the
way every current browser resolves a name), not by Python's IDNA 2003 codec."""

from __future__ import annotations

import pytest

from tallyhub.clicks.service import Refused, host_allowed, parse_target
from tallyhub.core.auth import Role
from tests.clicks.helpers import click
from tests.conftest import Harness
from tests.factories import make_campaign, make_user

sqlite_only = pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)

# target → the host a browser goes to
BROWSER_HOSTS = [
    ("https://boß.com/", "xn--bo-hia.com"),  # IDNA 2003 (Python's codec) said boss.com
    ("https://faß.de/", "xn--fa-hia.de"),
    ("https://bo%C3%9F.com/", "xn--bo-hia.com"),  # browsers decode %-escapes in a host
    ("https://BOSS.com/", "boss.com"),
    ("https://ｂｏｓｓ.com/", "boss.com"),  # full-width letters map to ASCII
    ("https://BÜCHER.de/", "xn--bcher-kva.de"),
    ("https://例え.テスト/", "xn--r8jz45g.xn--zckzah"),
    ("https://shop.example.com./", "shop.example.com"),
]


@pytest.mark.parametrize(("target", "host"), BROWSER_HOSTS)
def test_a_target_host_is_the_one_a_browser_goes_to(target: str, host: str) -> None:
    assert parse_target(target)[1] == host


@pytest.mark.parametrize(
    "target",
    ["https://☃.net/", "https://a\u200db.com/", "https://evil.com%2Fshop.example.com/"],
)
def test_a_host_no_browser_would_resolve_is_refused(target: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_target(target)
    assert refused.value.reason == "invalid_target"


def test_sharp_s_is_not_ss() -> None:
    assert not host_allowed(parse_target("https://boß.com/")[1], ["boss.com"])
    assert host_allowed(parse_target("https://boß.com/")[1], ["xn--bo-hia.com"])
    assert not host_allowed(parse_target("https://shop.boß.com/")[1], ["*.boss.com"])


@sqlite_only
async def test_a_click_to_a_look_alike_host_is_refused(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin, allowed_hosts=["boss.com", "xn--fa-hia.de"])
    refused = await click(harness, cid=c["id"], to="https://boß.com/")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "host_not_allowed"
    assert "xn--bo-hia.com" in refused.json()["error"]["message"]
    assert (await click(harness, cid=c["id"], to="https://BOSS.com/")).status_code == 302
    passed = await click(harness, cid=c["id"], to="https://faß.de/a")
    assert passed.status_code == 302, passed.text
    assert passed.headers["location"] == "https://fa%C3%9F.de/a"


async def test_campaign_search_takes_percent_and_underscore_literally(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    for name in ("50% off", "500 off", "a_b", "axb"):
        await make_campaign(harness, admin, name)

    async def found(search: str) -> list[str]:
        response = await harness.client.get(
            "/api/clicks/campaigns", params={"search": search}, headers=admin
        )
        assert response.status_code == 200, response.text
        return sorted(c["name"] for c in response.json()["items"])

    assert await found("50%") == ["50% off"]
    assert await found("a_b") == ["a_b"]
    assert await found("%") == ["50% off"]
    assert await found("OFF") == ["50% off", "500 off"]
