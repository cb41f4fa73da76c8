"""Standard Webhooks signatures (standardwebhooks.com): the sender signs
"{webhook-id}.{webhook-timestamp}.{body}" with HMAC-SHA256 under the endpoint's secret
(`whsec_` + base64 of the key) and sends `webhook-signature: v1,<base64 signature>`; the
receiver recomputes it and refuses a timestamp outside its tolerance (replays)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60


class InvalidSignature(Exception):
    """The body, its id or its timestamp is not what the sender signed, or is too old."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers of one attempt (a new timestamp each time, the same id)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret, message_id, stamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """What a receiver does: raise `InvalidSignature` unless one of the signatures in
    `webhook-signature` (space-separated, versioned) matches and the timestamp is recent."""
    lower = {k.lower(): v for k, v in headers.items()}
    message_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp")
    given = lower.get("webhook-signature", "")
    if not message_id or not stamp or not given:
        raise InvalidSignature("webhook-id, webhook-timestamp and webhook-signature are needed")
    try:
        timestamp = int(stamp)
    except ValueError as error:
        raise InvalidSignature("webhook-timestamp is not a number") from error
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    expected = signature(secret, message_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in given.split()):
        raise InvalidSignature("no signature matches")
