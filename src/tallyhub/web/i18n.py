"""The dashboard's two languages: one message catalog per language (`messages/<lang>.json`,
flat dotted keys), the language a request asks for (the switch's cookie, else the
browser's Accept-Language) and `translate()`. Pages get the whole catalog of their
language, so their scripts label and format with the same words."""

from __future__ import annotations

import functools
import json
from pathlib import Path

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"  # the teams who run TallyHub work in Chinese
LANGUAGE_COOKIE = "tallyhub_lang"
_CATALOGS = Path(__file__).parent / "messages"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    entries: dict[str, str] = json.loads(
        (_CATALOGS / f"{language}.json").read_text(encoding="utf-8")
    )
    return entries


def translate(language: str, key: str, **values: object) -> str:
    """The message `key` in `language`, with `{name}` placeholders filled. A key missing
    from the catalog shows as itself (a test keeps the catalogs complete)."""
    text = catalog(language).get(key, key)
    return text.format(**values) if values else text


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice when it named one of ours; else the first of the browser's
    languages (by quality) that we have; else Chinese."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag))
    for _, _, tag in sorted(ranked):
        language = _match(tag)
        if language is not None:
            return language
    return DEFAULT_LANGUAGE
