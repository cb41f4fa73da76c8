"""Errors a client can act on. Services raise them; the HTTP edge (core/http.py) turns each
into the JSON error envelope with its status."""

from __future__ import annotations


class DomainError(Exception):
    """An error the client can act on; the edge turns it into JSON with `status`."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers


class BadRequest(DomainError):
    status, code = 400, "bad_request"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class BadDayRange(DomainError):
    """A `from`..`to` the caller must change (backwards, or too long); the message names
    the parameter."""

    status, code = 422, "bad_day_range"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooManyRequests(DomainError):
    status, code = 429, "too_many_requests"


class Unavailable(DomainError):
    status, code = 503, "unavailable"


class UpstreamFailed(DomainError):
    """A third-party API refused or failed what this request needed from it."""

    status, code = 502, "upstream_failed"
