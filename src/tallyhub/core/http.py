"""The HTTP edge: one transaction per request; errors as JSON (domain errors, bad input,
bodies over the limit, and whatever else goes wrong); the error answers each operation
documents; the query parameters of pages and day ranges.

`TransactionalRoute` wraps every endpoint of a router: it opens the session, runs the
endpoint, commits before the response leaves, and retries the whole request on a deadlock
or serialization failure. Endpoints get the session through the `Session` dependency.
`HotPathsApp` is the front door: hot paths, body limits, the access log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tallyhub.core import metrics
from tallyhub.core.config import CoreSettings, HttpSettings
from tallyhub.core.db import Database, backoff, is_retryable
from tallyhub.core.errors import BadDayRange, DomainError
from tallyhub.core.pagination import MAX_PAGE, MAX_PAGE_SIZE, PAGE_SIZE, PageParams

log = structlog.get_logger(__name__)

T = TypeVar("T")

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

UNEXPECTED_ERRORS = Counter(
    "http_unexpected_errors_total", "Requests answered 500: an error no handler took", ["route"]
)
BODIES_REFUSED = Counter("http_bodies_refused_total", "Request bodies refused as too large (413)")


# ---------------------------------------------------------------- errors as JSON


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def domain_error_response(error: DomainError) -> JSONResponse:
    return JSONResponse(error_body(error.code, error.message), error.status, error.headers)


def validation_error_response(errors: Sequence[Any]) -> JSONResponse:
    """422 naming each bad field (pydantic's error list, with or without a 'body' prefix)."""
    problems = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        problems.append({"field": where, "message": item.get("msg", "invalid")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse(
        error_body("validation_error", summary or "invalid request", fields=problems), 422
    )


_HTTP_ERROR_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def http_error_response(error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_ERROR_CODES.get(error.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(error.detail)), error.status_code, getattr(error, "headers", None)
    )


def unreadable_body_response(cause: BaseException) -> JSONResponse:
    """422 for a body FastAPI could not even decode (JSON that is not UTF-8, a broken
    form), which it answers as a bare 400 "There was an error parsing the body"."""
    problem = {"field": "body", "message": f"cannot be read: {cause}"[:300]}
    return JSONResponse(
        error_body("validation_error", f"body: {problem['message']}", fields=[problem]), 422
    )


def internal_error_response() -> JSONResponse:
    return JSONResponse(error_body("internal_error", "the request could not be handled"), 500)


def _unexpected_error(scope: Scope, route: str) -> None:
    """Log (with the traceback of the error being handled) and count an unexpected error;
    `route` is the route's template, so that ids in paths do not multiply the series."""
    log.error("http.unexpected_error", method=scope["method"], path=scope["path"], exc_info=True)
    UNEXPECTED_ERRORS.labels(route).inc()


class UnexpectedErrors:
    """ASGI middleware: an error no handler took becomes the JSON envelope with 500, logged
    with its path and counted. Unlike Starlette's ServerErrorMiddleware it does not raise
    the error on to the server, which would drop the keep-alive connection. (An error after
    the response started can no longer be answered: that one goes on.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            _unexpected_error(scope, getattr(scope.get("route"), "path_format", "(no route)"))
            if started:
                raise
            await internal_error_response()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, DomainError)
        return domain_error_response(error)

    async def validation_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return validation_error_response(error.errors())

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400 and error.__cause__ is not None:
            return unreadable_body_response(error.__cause__)
        return http_error_response(error)

    async def pool_exhausted(request: Request, error: Exception) -> Response:
        # Every pooled connection stayed busy for the whole pool timeout: overload, which
        # the client should retry, not a server fault.
        log.warning("db.pool_timeout", path=request.url.path)
        metrics.POOL_TIMEOUTS.inc()
        return JSONResponse(
            error_body("overloaded", "no database connection came free in time; retry"),
            503,
            {"Retry-After": "1"},
        )

    app.add_exception_handler(exc.TimeoutError, pool_exhausted)
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(UnexpectedErrors)


# ---------------------------------------------------------------- request body limits

_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(StarletteHTTPException):
    """413. An HTTPException, so that FastAPI lets it through its body parsing (anything
    else raised there becomes a 400) to the handler that answers the JSON envelope."""

    def __init__(self, limit: int) -> None:
        # The rest of the body is never read: the connection cannot serve another request.
        super().__init__(
            413, f"the request body is over the limit of {limit} bytes", {"Connection": "close"}
        )


@dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be: `default` bytes, or `by_path` for some paths."""

    default: int = 1024 * 1024
    by_path: Mapping[str, int] = field(default_factory=dict)

    async def guard(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app`, refusing a body over the limit: by its Content-Length before reading
        any of it, or (chunked) once the bytes read pass the limit."""
        limit = self.by_path.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is None:
            await _counting_body(app, limit, scope, receive, send)
        elif declared > limit:
            BODIES_REFUSED.inc()
            await http_error_response(BodyTooLarge(limit))(scope, receive, send)
        else:  # the server delivers no more than Content-Length says
            await app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:  # not a length: the body is counted as it is read instead
                return None
    return None


async def _counting_body(
    app: ASGIApp, limit: int, scope: Scope, receive: Receive, send: Send
) -> None:
    read = 0
    started = False

    async def counting() -> Message:
        nonlocal read
        message = await receive()
        read += len(message.get("body", b""))
        if read > limit:
            BODIES_REFUSED.inc()
            raise BodyTooLarge(limit)
        return message

    async def watched(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, counting, watched)
    except BodyTooLarge as error:  # one no handler answered (FastAPI's routes do)
        if started:
            raise
        await http_error_response(error)(scope, receive, send)


# ---------------------------------------------------------------- hot paths

HotHandler = Callable[[Request], Coroutine[Any, Any, Response]]


class HotPathsApp(FastAPI):
    """The FastAPI app, with a front door for the few endpoints hit thousands of times a
    second: an exact (method, path) match in `hot_paths` goes straight to its ASGI app,
    ahead of everything FastAPI and Starlette wrap around a request (telemetry, error
    middleware, routing, dependency resolution), which costs more than the endpoint's own
    work. Everything else is served as usual (keep a FastAPI or Starlette route for the
    same path, so /docs describes it and other methods get 405). A hot endpoint answers
    its own errors. The front door also holds request bodies to `body_limits`, for hot
    paths and the rest alike, and writes the access log (`HttpSettings.access_log`): the
    hot paths only when `access_log_hot_paths` asks, so that they cost nothing more."""

    def __init__(self, *args: Any, body_limits: BodyLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hot_paths: dict[tuple[str, str], ASGIApp] = {}
        self.body_limits = body_limits or BodyLimits()
        self._dispatch: ASGIApp = self._first_call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _BODILESS:
            await self.body_limits.guard(self._dispatch, scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _first_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Build the dispatcher once the app is complete (its hot paths registered, the
        runtime with its settings in `state`), then use it from now on."""
        self._dispatch = self._dispatcher(_http_settings(self))
        await self._dispatch(scope, receive, send)

    def _dispatcher(self, settings: HttpSettings) -> ASGIApp:
        rest: ASGIApp = super().__call__
        hot = dict(self.hot_paths)
        if settings.access_log:
            rest = access_logged(rest)
            if settings.access_log_hot_paths:
                hot = {key: access_logged(endpoint) for key, endpoint in hot.items()}

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                endpoint = hot.get((scope["method"], scope["path"]))
                if endpoint is not None:
                    scope["app"] = self  # as Starlette sets it: `request.app` finds the runtime
                    await endpoint(scope, receive, send)
                    return
            await rest(scope, receive, send)

        return dispatch


def _http_settings(app: FastAPI) -> HttpSettings:
    runtime = getattr(app.state, "runtime", None)
    settings = getattr(runtime, "settings", None)
    return settings.http if isinstance(settings, CoreSettings) else HttpSettings()


def access_logged(app: ASGIApp) -> ASGIApp:
    """`app`, writing one info line per HTTP request it answers: method, path, status and
    duration in ms. The path only: a query string may carry a token (a WebSocket's sign-in
    goes there) or a person's id. A request whose answer never started is logged as 500."""

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, watched)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    return logged


def plain_endpoint(handler: HotHandler) -> ASGIApp:
    """An ASGI app from a Request -> Response handler, rendering domain and HTTP errors as
    the usual JSON and anything else as a logged 500 (it runs outside FastAPI's exception
    handlers and error middleware)."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await handler(Request(scope, receive))
        except DomainError as error:
            response = domain_error_response(error)
        except StarletteHTTPException as error:  # a body over the limit
            response = http_error_response(error)
        except Exception:
            _unexpected_error(scope, scope["path"])  # a hot path is one exact path
            response = internal_error_response()
        await response(scope, receive, send)

    return endpoint


# ---------------------------------------------------------------- the transaction edge


F = TypeVar("F", bound=Callable[..., Any])


def read_only_session(endpoint: F) -> F:
    """Mark an endpoint whose writes happen elsewhere (a group-commit writer, a job run):
    its request session only reads, so on SQLite it never holds the write lock that the
    writer it waits for needs."""
    endpoint.__tallyhub_readonly__ = True  # type: ignore[attr-defined]
    return endpoint


class TransactionalRoute(APIRoute):
    """Runs each request in one transaction that commits before the response is sent."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route_name = self.path
        force_readonly = getattr(self.endpoint, "__tallyhub_readonly__", False)

        async def transactional(request: Request) -> Response:
            db: Database = request.app.state.runtime.db
            readonly = force_readonly or request.method in _SAFE_METHODS
            attempt = 0
            with metrics.HTTP_DURATION.labels(request.method, route_name).time():
                while True:
                    try:
                        async with db.transaction(readonly=readonly) as session:
                            request.state.session = session
                            response = await handler(request)
                        break
                    except exc.DBAPIError as error:
                        if attempt >= 5 or not is_retryable(error):
                            raise
                        attempt += 1
                        metrics.DB_RETRIES.labels(kind="request").inc()
                        log.warning("request.retry", route=route_name, attempt=attempt)
                        await backoff(attempt)
            metrics.HTTP_REQUESTS.labels(request.method, route_name, response.status_code).inc()
            return response

        return transactional


def _session(request: Request) -> AsyncSession:
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is None:
        raise RuntimeError("route is not a TransactionalRoute; no session was opened")
    return session


Session = Annotated[AsyncSession, Depends(_session)]


# ---------------------------------------------------------------- query parameters


def _page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1")] = 1,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Rows per page (≤ {MAX_PAGE_SIZE})")
    ] = PAGE_SIZE,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Paging = Annotated[PageParams, Depends(_page_params)]


class DayRange(BaseModel):
    """Business dates `from`..`to`, both included; either may be open."""

    start: date | None
    end: date | None


def _day_range(
    start: Annotated[date | None, Query(alias="from", description="First day (YYYY-MM-DD)")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (YYYY-MM-DD)")] = None,
) -> DayRange:
    if start and end and start > end:
        raise BadDayRange(f"from ({start}) is after to ({end})")
    return DayRange(start=start, end=end)


Days = Annotated[DayRange, Depends(_day_range)]
