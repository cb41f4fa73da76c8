"""What a click must satisfy: tag normalization (the seed's cases and properties), safe
redirect targets, signed links, the dedup key. Pure functions, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tallyhub.clicks.service.tracking import (
    EventIds,
    Refused,
    dedup_key,
    host_allowed,
    link_key,
    normalize_tags,
    parse_target,
    sign_link,
    verify_link,
)
from tallyhub.clicks.track import Tracker, _tags, _tags_cached, _unquote_cached


def test_normalize_tags_seed_cases() -> None:
    assert normalize_tags("A,B,C") == ["A", "B", "C"]
    assert normalize_tags("A, B , C ") == ["A", "B", "C"]
    assert normalize_tags("A,A,B,B") == ["A", "B"]
    assert normalize_tags("A,,B,,") == ["A", "B"]
    assert normalize_tags("") == []
    assert normalize_tags(None) == []
    assert normalize_tags(["B,A", " C", "A"]) == ["B", "A", "C"]
    assert normalize_tags("会员, VIP ,会员") == ["会员", "VIP"]


tag_text = st.text(alphabet=st.sampled_from([*"ab ,\t", "会", "Ü"]), max_size=40)


@given(tag_text)
def test_normalize_tags_properties(raw: str) -> None:
    tags = normalize_tags(raw)
    assert all(tag and tag == tag.strip() and "," not in tag for tag in tags)
    assert len(tags) == len(set(tags))
    # Order is first-seen order of the trimmed, non-empty parts.
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    assert tags == list(dict.fromkeys(parts))
    assert normalize_tags(",".join(tags)) == tags  # idempotent


@given(st.lists(tag_text, max_size=5), st.lists(tag_text, max_size=5))
def test_merging_keeps_every_tag_once_in_first_seen_order(
    first: list[str], then: list[str]
) -> None:
    merged = normalize_tags([*first, *then])
    assert merged[: len(normalize_tags(first))] == normalize_tags(first)
    assert set(merged) == set(normalize_tags(first)) | set(normalize_tags(then))


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("https://shop.example.com/a?b=c#d", "shop.example.com"),
        ("HTTP://Shop.Example.COM.:8080/", "shop.example.com"),
        ("https://例え.jp/パス", "xn--r8jz45g.jp"),
    ],
)
def test_parse_target_accepts_plain_http_urls(target: str, host: str) -> None:
    location, parsed_host = parse_target(target)
    assert parsed_host == host
    assert location.isascii()


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(1)",
        "//evil.example",
        "/relative",
        "https://user:pw@evil.example/",
        "https://evil.example\\@shop.example.com",
        "https://evil.example:99999/",
        "https://shop.example.com/\nx",
        "http://",
        "x" * 3000,
    ],
)
def test_parse_target_refuses_unsafe_targets(target: str) -> None:
    with pytest.raises(Refused):
        parse_target(target)


def test_host_patterns() -> None:
    allowed = ["shop.example.com", "*.example.org"]
    assert host_allowed("shop.example.com", allowed)
    assert host_allowed("a.b.example.org", allowed)
    assert not host_allowed("example.org", allowed)
    assert not host_allowed("evilexample.org", allowed)
    assert not host_allowed("shop.example.com.evil", allowed)


def test_signatures_cover_every_parameter() -> None:
    key = link_key("secret")
    sig = sign_link(key, 1, "https://x.example/", 0, "image_click", ["A"], None)
    assert verify_link(key, sig, 1, "https://x.example/", 0, "image_click", ["A"], None)
    assert verify_link(key, sig, 1, "https://x.example/", 0, "image_click", ["A"], "U_any")
    for changed in [
        (2, "https://x.example/", 0, "image_click", ["A"]),
        (1, "https://y.example/", 0, "image_click", ["A"]),
        (1, "https://x.example/", 5, "image_click", ["A"]),
        (1, "https://x.example/", 0, "rich_menu", ["A"]),
        (1, "https://x.example/", 0, "image_click", ["A", "B"]),
    ]:
        assert not verify_link(key, sig, *changed, None)
    assert not verify_link(
        link_key("other"), sig, 1, "https://x.example/", 0, "image_click", ["A"], None
    )
    bound = sign_link(key, 1, "https://x.example/", 0, "image_click", [], "U1")
    assert verify_link(key, bound, 1, "https://x.example/", 0, "image_click", [], "U1")
    assert not verify_link(key, bound, 1, "https://x.example/", 0, "image_click", [], "U2")
    # Turning a bound link into a generic one changes what is signed.
    assert not verify_link(
        key, "g" + bound[1:], 1, "https://x.example/", 0, "image_click", [], None
    )


def test_dedup_key_tells_anonymous_clients_apart() -> None:
    assert dedup_key("U1", "a", 1, 0, "image_click", "t") == dedup_key(
        "U1", "b", 1, 0, "image_click", "t"
    )
    assert dedup_key(None, "a", 1, 0, "image_click", "t") != dedup_key(
        None, "b", 1, 0, "image_click", "t"
    )
    assert dedup_key("U1", "", 1, 0, "image_click", "t") != dedup_key(
        "U1", "", 1, 1, "image_click", "t"
    )


_QUERY_PIECES = st.sampled_from(
    ["cid", "uid", "to", "tag", "src", "type", "sig", "x", "=", "&", "+", "%", "%2B", "%26",
     "%3D", "%E4%B8%AD", "%zz", "%E4", "a b", "中", "https://example.com/?a=1", ""]
)  # fmt: skip


@given(st.lists(_QUERY_PIECES, max_size=12).map("".join))
def test_the_track_query_is_read_as_parse_qsl_reads_it(query: str) -> None:
    """`/__track` reads its query with its own loop; it must agree with the standard
    library on everything: plus signs, %-escapes (also broken ones), empty and bare
    parts, repeated names."""
    from urllib.parse import parse_qsl

    raw = query.encode("utf-8")
    expected_params: dict[str, str] = {}
    expected_tags: list[str] = []
    repeated = False
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "tag":
            expected_tags.append(value)
        elif name in ("cid", "to", "src", "type", "uid", "sig"):
            repeated = repeated or name in expected_params
            expected_params[name] = value
    if repeated:
        with pytest.raises(Refused, match="given more than once"):
            Tracker._params(raw)
        return
    assert Tracker._params(raw) == (expected_params, expected_tags)


def test_long_values_are_read_alike_whether_kept_or_not() -> None:
    """Values are unquoted once and kept (the same few come again and again), up to a
    length; a longer one (here 700 CJK characters, 6,300 characters quoted) is unquoted
    every time, and reads the same."""
    from urllib.parse import quote

    short = "https://shop.example.com/" + "商" * 10
    long = "https://shop.example.com/" + "商" * 700
    _unquote_cached.cache_clear()
    for target in (short, long, short, long):
        params, tags = Tracker._params(f"cid=1&to={quote(target, safe='')}&tag=a+b".encode())
        assert params == {"cid": "1", "to": target}
        assert tags == ["a b"]
    kept = _unquote_cached.cache_info()
    assert (kept.currsize, kept.hits) == (2, 4)  # short target: 1 hit; tag: 3; long: none


def test_tag_lists_are_kept_only_when_a_valid_click_could_carry_them() -> None:
    _tags_cached.cache_clear()
    assert _tags(("a,b", "a")) == ("a", "b")
    assert _tags(("a",) * 5000) == ("a",)  # one tag, but too long a key to keep
    assert _tags_cached.cache_info().currsize == 1


def test_event_ids_are_unique_within_and_across_processes() -> None:
    """Each process (each uvicorn worker builds its Tracker) draws its own prefix."""
    import subprocess
    import sys

    here = EventIds()
    ids = [here() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # fits event_id columns
    elsewhere = subprocess.run(
        [sys.executable, "-c", "from tallyhub.clicks.service.tracking import EventIds\n"
         "e = EventIds()\nprint(e(), e())"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(elsewhere) == 2 and not set(elsewhere) & set(ids)
    assert elsewhere[0][:16] == elsewhere[1][:16] != ids[0][:16]
