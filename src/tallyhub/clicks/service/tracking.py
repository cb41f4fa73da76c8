"""What `/__track` decides before anything is written: tag normalization, which redirect
targets are safe, signed links, and the dedup key. Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote, urlsplit

import idna

MAX_TAGS = 20
MAX_TAG_LENGTH = 64
MAX_UID_LENGTH = 64
MAX_TARGET_LENGTH = 2048
MAX_ID = 2**31 - 1
INTERACTION_TYPES = frozenset(
    ("image_click", "button_url", "carousel_click", "text_link", "rich_menu")
)
DEFAULT_TYPE = "image_click"

# Characters a browser reads differently from urllib (backslash as a slash) or that must
# never reach a header (controls, whitespace).
_UNSAFE = frozenset("\\ \t\r\n\x0b\x0c\x7f") | frozenset(chr(c) for c in range(32))
# What a browser refuses in a host once its %-escapes are decoded (WHATWG "forbidden
# domain code points", less the controls `_UNSAFE` holds).
_FORBIDDEN_IN_HOST = frozenset("#%/:<>?@[\\]^|") | _UNSAFE
# Everything a URL may legally contain stays as it is; only the rest (non-ASCII) is quoted.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


class Refused(Exception):
    """The click cannot be accepted as given; `reason` is the metric label."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def normalize_tags(tags: str | Iterable[str] | None) -> list[str]:
    """Split on commas, trim, drop empty and repeated entries, keep first-seen order."""
    if not tags:
        return []
    parts = tags.split(",") if isinstance(tags, str) else (p for t in tags for p in t.split(","))
    seen: set[str] = set()
    result: list[str] = []
    for part in parts:
        tag = part.strip()
        if tag and tag not in seen:
            seen.add(tag)
            result.append(tag)
    return result


def check_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise Refused("bad_parameter", f"tag: at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH:
            raise Refused("bad_parameter", f"tag: each tag has at most {MAX_TAG_LENGTH} characters")
        if any(ch in _UNSAFE for ch in tag):
            raise Refused("bad_parameter", "tag: control characters are not allowed")
    return tags


def parse_id(name: str, raw: str | None, *, default: int | None = None) -> int:
    """A positive (or, with a default, non-negative) integer query parameter."""
    if raw is None or raw == "":
        if default is None:
            raise Refused("bad_parameter", f"{name}: required")
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise Refused("bad_parameter", f"{name}: must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if value > MAX_ID or (default is None and value < 1):
        raise Refused("bad_parameter", f"{name}: out of range")
    return value


def check_uid(raw: str | None) -> str | None:
    if not raw:
        return None
    if len(raw) > MAX_UID_LENGTH or any(ch in _UNSAFE for ch in raw):
        raise Refused(
            "bad_parameter", f"uid: at most {MAX_UID_LENGTH} characters, no spaces or controls"
        )
    return raw


def check_type(raw: str | None) -> str:
    if not raw:
        return DEFAULT_TYPE
    if raw not in INTERACTION_TYPES:
        raise Refused("bad_parameter", f"type: one of {', '.join(sorted(INTERACTION_TYPES))}")
    return raw


def parse_target(to: str | None) -> tuple[str, str]:
    """The redirect target as it goes into `Location` (non-ASCII percent-encoded), and its
    host as a browser resolves it (`browser_host`). Refuses anything that is not a plain
    absolute http(s) URL: `javascript:`, scheme-relative `//host`, backslashes,
    credentials, control characters."""
    if not to:
        raise Refused("bad_parameter", "to: required")
    if len(to) > MAX_TARGET_LENGTH:
        raise Refused("bad_parameter", f"to: at most {MAX_TARGET_LENGTH} characters")
    if any(ch in _UNSAFE for ch in to):
        raise Refused("invalid_target", "to: spaces, backslashes and control characters refused")
    try:
        parts = urlsplit(to)
        port = parts.port
    except ValueError as error:
        raise Refused("invalid_target", f"to: not a valid URL ({error})") from error
    del port
    if parts.scheme not in ("http", "https"):
        raise Refused("invalid_target", "to: only absolute http:// or https:// URLs")
    if "@" in parts.netloc:
        raise Refused("invalid_target", "to: URLs with credentials are refused")
    host = browser_host(parts.hostname or "")
    if not host:
        raise Refused("invalid_target", "to: the URL has no host")
    location = to if to.isascii() else quote(to, safe=_URL_SAFE)
    return location, host


def browser_host(host: str) -> str:
    """The ASCII name a browser goes to for `host` (WHATWG URL host parsing): percent-escapes
    decoded, then UTS-46 processing, non-transitional, as every current browser does.
    Python's own "idna" codec is IDNA 2003 and maps `ß` to `ss`: `boß.com` would pass for
    an allowed `boss.com` while the browser goes to `xn--bo-hia.com`."""
    if "%" in host:
        host = unquote(host)
        if any(ch in _FORBIDDEN_IN_HOST for ch in host):
            raise Refused("invalid_target", "to: the host is not a valid name")
    host = host.rstrip(".")
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii").rstrip(".")
    except (idna.IDNAError, UnicodeError) as error:
        raise Refused("invalid_target", "to: the host is not a valid name") from error


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """`example.com` allows exactly that host; `*.example.com` allows its subdomains."""
    for pattern in allowed_hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


# ---------------------------------------------------------------- signed links


def link_key(secret_key: str) -> bytes:
    """A key of its own for links, derived from the server's secret."""
    return hmac.new(secret_key.encode(), b"tallyhub.clicks.links.v1", hashlib.sha256).digest()


def sign_link(
    key: bytes, cid: int, to: str, src: int, type_: str, tags: Sequence[str], uid: str | None
) -> str:
    """`g…` signs everything but the uid (any uid may be appended later); `u…` also binds
    the link to one uid. The first letter is part of what is signed."""
    scope = "u" if uid is not None else "g"
    canonical = json.dumps(
        [scope, cid, to, src, type_, ",".join(tags), uid or ""],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    mac = hmac.new(key, canonical.encode(), hashlib.sha256).digest()
    return scope + base64.urlsafe_b64encode(mac[:24]).decode("ascii")


def verify_link(
    key: bytes,
    sig: str,
    cid: int,
    to: str,
    src: int,
    type_: str,
    tags: Sequence[str],
    uid: str | None,
) -> bool:
    if len(sig) != 33 or sig[0] not in "ug":
        return False
    if sig[0] == "u":
        if uid is None:
            return False
        expected = sign_link(key, cid, to, src, type_, tags, uid)
    else:
        expected = sign_link(key, cid, to, src, type_, tags, None)
    return hmac.compare_digest(expected, sig)


def dedup_key(
    uid: str | None, client: str, cid: int, src: int, type_: str, to: str, *, bot: bool = False
) -> str:
    """The same (uid, cid, src, type, to) within the window counts once. Without a uid the
    client (address and user agent) stands in for the user, so two anonymous people
    clicking the same link are not taken for one double click. A bot's fetch (a chat app
    building the link's preview) has a key of its own: it never takes the place of the
    person's click that follows it."""
    who = uid if uid is not None else "\x00" + client
    if bot:
        who += "\x00bot"
    raw = "\x1f".join((who, str(cid), str(src), type_, to)).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


class EventIds:
    """Click ids, unique without a system call each: 16 random hex digits drawn once (per
    process: each builds its own), then a counter. uuid4() read os.urandom for every
    click."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._next = itertools.count().__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():016x}"
