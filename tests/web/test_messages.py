"""The two message catalogs (web/messages): the same keys with the same placeholders in
both languages, every key a template or script names is in them, and the language a
request gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tallyhub.web import i18n

WEB = Path(i18n.__file__).parent
# t("key") or t("key", ...): a literal key (t("role." ~ name) builds one from a prefix).
USED = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.-]+)["']\s*[,)]""")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _used_keys() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in [*WEB.glob("pages/*"), *WEB.glob("static/*.js")]:
        for key in USED.findall(path.read_text(encoding="utf-8")):
            used.setdefault(key, set()).add(path.name)
    return used


def test_both_catalogs_have_the_same_keys_and_placeholders() -> None:
    chinese, english = i18n.catalog("zh-CN"), i18n.catalog("en")
    assert sorted(chinese.keys() - english.keys()) == [], "missing in en.json"
    assert sorted(english.keys() - chinese.keys()) == [], "missing in zh-CN.json"
    for key, text in english.items():
        assert text.strip() and chinese[key].strip(), f"{key} is empty"
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(chinese[key])), key


def test_every_key_a_page_names_is_in_the_catalogs() -> None:
    used = _used_keys()
    assert len(used) > 50  # the pages do use the catalogs
    missing = {key: files for key, files in used.items() if key not in i18n.catalog("en")}
    assert missing == {}


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        ("en", "zh-CN,zh;q=0.9", "en"),  # the switch's choice wins
        ("fr", "en-US,en;q=0.9", "en"),  # a cookie naming no language of ours is ignored
        (None, "zh-TW,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "fr-FR,fr;q=0.9,en;q=0.5", "en"),
        (None, "en;q=0.4,zh;q=0.8", "zh-CN"),  # by quality, not by order
        (None, "de-DE", "zh-CN"),
        (None, None, "zh-CN"),
        (None, "en;q=abc,zh", "zh-CN"),  # a malformed quality counts as 0
    ],
)
def test_the_language_of_a_request(cookie: str | None, accept: str | None, expected: str) -> None:
    assert i18n.choose_language(cookie, accept) == expected


def test_a_message_fills_its_placeholders() -> None:
    assert i18n.translate("en", "range.days", n=7) == "7 days"
    assert i18n.translate("zh-CN", "range.days", n=7) == "7 天"
