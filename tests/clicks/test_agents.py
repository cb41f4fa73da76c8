"""Who sent a click, from real User-Agent strings: current browsers on desktops and phones,
LINE's and WeChat's in-app browsers, the link-preview fetchers of chat apps, a search
crawler and HTTP tools; and the Referer's host. Pure functions, no database."""

from __future__ import annotations

import pytest
import ua_parser
from ua_parser.regex import Resolver as RustResolver

from tallyhub.clicks.service.agents import _PARSER, classify, referrer_host

# (name, User-Agent, kind, bot kind, bot name, device, OS, browser)
AGENTS = [
    ("Chrome, Windows",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
     " Chrome/131.0.0.0 Safari/537.36",
     "person", None, None, "desktop", "Windows", "Chrome"),
    ("Chrome, macOS",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
     " Chrome/131.0.0.0 Safari/537.36",
     "person", None, None, "desktop", "Mac OS X", "Chrome"),
    ("Safari, macOS",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
     " Version/18.1 Safari/605.1.15",
     "person", None, None, "desktop", "Mac OS X", "Safari"),
    ("Firefox, Windows",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "person", None, None, "desktop", "Windows", "Firefox"),
    ("Firefox, Linux",
     "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "person", None, None, "desktop", "Linux", "Firefox"),
    ("Safari, iPhone",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
     " Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
     "person", None, None, "phone", "iOS", "Mobile Safari"),
    ("Chrome, iPhone",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
     " Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
     "person", None, None, "phone", "iOS", "Chrome Mobile iOS"),
    ("Chrome, Android phone",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
     " Chrome/131.0.0.0 Mobile Safari/537.36",
     "person", None, None, "phone", "Android", "Chrome Mobile"),
    ("Firefox, Android phone",
     "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
     "person", None, None, "phone", "Android", "Firefox Mobile"),
    ("Samsung Internet",
     "Mozilla/5.0 (Linux; Android 14; SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko)"
     " SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
     "person", None, None, "phone", "Android", "Samsung Internet"),
    ("Safari, iPad",
     "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
     " Version/18.1 Mobile/15E148 Safari/604.1",
     "person", None, None, "tablet", "iOS", "Mobile Safari"),
    ("Chrome, Android tablet (no 'Mobile')",
     "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko)"
     " Chrome/131.0.0.0 Safari/537.36",
     "person", None, None, "tablet", "Android", "Chrome"),
    ("LINE in-app browser, iPhone",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML,"
     " like Gecko) Mobile/15E148 Safari Line/14.9.0",
     "person", None, None, "phone", "iOS", "LINE"),
    ("LINE in-app browser, Android",
     "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36"
     " (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36"
     " Line/14.8.1/IAB",
     "person", None, None, "phone", "Android", "LINE"),
    ("WeChat in-app browser, iPhone",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
     " Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323d) NetType/WIFI Language/zh_CN",
     "person", None, None, "phone", "iOS", "WeChat Browser"),
    # ua-parser names WeChat's Android browser by the WebView it runs in.
    ("WeChat in-app browser, Android",
     "Mozilla/5.0 (Linux; Android 13; V2254A Build/TP1A.220624.014; wv) AppleWebKit/537.36"
     " (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065"
     " MMWEBSDK/20231202 MMWEBID/2585 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64"
     " Weixin NetType/WIFI Language/zh_CN ABI/arm64",
     "person", None, None, "phone", "Android", "Chrome Mobile WebView"),
    # LINE's preview fetcher passes for Facebook's in the library: our table names it.
    ("LINE link preview", "facebookexternalhit/1.1;line-poker/1.0",
     "bot", "preview", "LINE", "bot", "Other", "FacebookBot"),
    ("Telegram link preview", "TelegramBot (like TwitterBot)",
     "bot", "preview", "Telegram", "bot", "Other", "TelegramBot"),
    ("WhatsApp link preview", "WhatsApp/2.23.20.0",
     "bot", "preview", "WhatsApp", "bot", "Other", "WhatsApp"),
    ("Slack link preview", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
     "bot", "preview", "Slack", "bot", "Other", "Slackbot-LinkExpanding"),
    ("Facebook link preview",
     "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
     "bot", "preview", "Facebook", "bot", "Other", "FacebookBot"),
    ("Twitter/X link preview", "Twitterbot/1.0",
     "bot", "preview", "Twitter/X", "bot", "Other", "Twitterbot"),
    # Missed by crawlerdetect: our table flags it.
    ("Bluesky link preview",
     "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
     "bot", "preview", "Bluesky", "bot", "Other", "Other"),
    ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "bot", "crawler", "Googlebot", "bot", "Other", "Googlebot"),
    ("Googlebot smartphone",
     "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML,"
     " like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1;"
     " +http://www.google.com/bot.html)",
     "bot", "crawler", "Googlebot", "bot", "Android", "Googlebot"),
    ("curl", "curl/8.5.0", "bot", "tool", "curl", "bot", "Other", "curl"),
    ("python-httpx", "python-httpx/0.28.1", "bot", "tool", "python-httpx", "bot", "Other", "Other"),
    # No User-Agent at all: unknown, and counted as a person's.
    ("no User-Agent", None, "unknown", None, None, "other", "Other", "Other"),
    ("a blank User-Agent", "  ", "unknown", None, None, "other", "Other", "Other"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user_agent", "kind", "bot_kind", "bot_name", "device", "os", "browser"),
    [pytest.param(*row[1:], id=row[0]) for row in AGENTS],
)
def test_each_user_agent_is_classified(
    user_agent: str | None,
    kind: str,
    bot_kind: str | None,
    bot_name: str | None,
    device: str,
    os: str,
    browser: str,
) -> None:
    agent = classify(user_agent)
    found = (agent.kind, agent.bot_kind, agent.bot_name, agent.device, agent.os, agent.browser)
    assert found == (kind, bot_kind, bot_name, device, os, browser)
    assert agent.is_bot == (kind == "bot")
    assert classify(user_agent) is agent  # a string seen before: its cached answer


def test_the_rust_matcher_does_the_parsing() -> None:
    assert ua_parser.RegexResolver is RustResolver
    assert isinstance(_PARSER.resolver, RustResolver)


def test_an_agents_names_fit_their_columns() -> None:
    agent = classify("Mozilla/5.0 (compatible; " + "X" * 300 + "bot/1.0)")
    assert agent.is_bot and agent.bot_name is not None
    assert max(len(agent.bot_name), len(agent.os), len(agent.browser)) <= 64


@pytest.mark.parametrize(
    ("referer", "host"),
    [
        (None, "direct"),
        ("", "direct"),
        ("https://LINE.me/R/ti/p/@shop?ref=abc#x", "line.me"),
        ("http://t.co/AbC123", "t.co"),
        ("https://www.google.com./search?q=spring", "www.google.com"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("about:blank", "unknown"),
        ("https://a b.example/", "unknown"),
        ("https://" + "a" * 300 + ".example/", "a" * 255),
    ],
)
def test_the_referrer_is_its_host_only(referer: str | None, host: str) -> None:
    assert referrer_host(referer) == host
