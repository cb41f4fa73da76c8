"""What every upstream simulator shares: a controllable clock, fault injection, a request
counter, the `/__sim/` control routes, and ways to serve a simulator in-process or alone.

A simulator (`<domain>/simulator.py`) gets its app from `simulator_app()` and adds the
upstream's own routes to it. Everything under `/__sim/` is control, never the upstream's API:
it is neither counted nor faulted.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

CONTROL_PREFIX = "/__sim/"
_START_TIMEOUT = 10.0  # seconds `running()` waits for the server to accept connections
_STOP_TIMEOUT = 10.0  # seconds it waits for a graceful stop before forcing one

BusinessError = Callable[[int, str], dict[str, Any]]


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a simulated instant needs a time zone (naive datetimes are ambiguous)")
    return instant.astimezone(UTC)


class SimClock:
    """A frozen UTC clock: time moves only when told to (`advance`, `set`), so tests and
    demos decide what "now" is. Safe to move from another thread than the server's."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        self._now = _as_utc(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (never backward: use `set` for that); the new now."""
        if seconds < 0 or math.isnan(seconds):
            raise ValueError("advance takes a non-negative number of seconds")
        with self._lock:
            self._now = datetime.fromtimestamp(self._now.timestamp() + seconds, UTC)
            return self._now

    def set(self, instant: datetime) -> datetime:
        with self._lock:
            self._now = _as_utc(instant)
            return self._now


@dataclass
class Fault:
    """One queued fault. `count` requests answer HTTP `status` (or, when `business_code` is
    set, HTTP 200 with that business error); `slow_count` requests wait `slow_ms` first.
    `path`, a prefix, limits the fault to the paths it starts."""

    status: int | None = None
    count: int = 1
    retry_after: float | None = None
    business_code: int | None = None
    slow_ms: int = 0
    slow_count: int = 0
    path: str | None = None

    def __post_init__(self) -> None:
        if self.count < 0 or self.slow_count < 0 or self.slow_ms < 0:
            raise ValueError("count, slow_count and slow_ms cannot be negative")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.slow_ms > 0 and self.slow_count == 0:
            raise ValueError("slow_ms needs slow_count: how many requests to slow down")
        if not self.fails and not self.slows:
            raise ValueError("a fault needs status or business_code (with count > 0), or slow_ms")

    @property
    def fails(self) -> bool:
        return self.count > 0 and (self.status is not None or self.business_code is not None)

    @property
    def slows(self) -> bool:
        return self.slow_count > 0 and self.slow_ms > 0

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


@dataclass(frozen=True)
class Verdict:
    """What the faults decided for one request: wait `delay_ms`, then answer `response`
    (a simulated failure) or pass the request on when it is None."""

    delay_ms: int = 0
    response: Response | None = None


class _TokenBucket:
    """`rate` requests a second, with a burst of one second's worth (at least one)."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError("rate_limit_per_second must be positive (None switches it off)")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take a token: 0 when one was there, else the seconds until one will be."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Faults:
    """The failures the next requests suffer, queued in order, plus an optional rate limit
    (answered with the business code `rate_limit_code`, or HTTP 429 when there is none).
    Settable from Python (`add`, the rate-limit properties, `clear`) and over HTTP."""

    def __init__(
        self, *, rate_limit_per_second: float | None = None, rate_limit_code: int | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._bucket: _TokenBucket | None = None
        self.rate_limit_code = rate_limit_code
        self.rate_limit_per_second = rate_limit_per_second

    @property
    def rate_limit_per_second(self) -> float | None:
        bucket = self._bucket
        return None if bucket is None else bucket.rate

    @rate_limit_per_second.setter
    def rate_limit_per_second(self, rate: float | None) -> None:
        bucket = None if rate is None else _TokenBucket(rate)
        with self._lock:
            self._bucket = bucket

    def add(
        self,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        business_code: int | None = None,
        slow_ms: int = 0,
        slow_count: int = 0,
        path: str | None = None,
    ) -> Fault:
        """Queue a fault behind the ones already pending."""
        fault = Fault(
            status=status,
            count=count,
            retry_after=retry_after,
            business_code=business_code,
            slow_ms=slow_ms,
            slow_count=slow_count,
            path=path,
        )
        with self._lock:
            self._queue.append(fault)
        log.info("simulation.fault_queued", **asdict(fault))
        return fault

    def clear(self) -> None:
        """Drop every pending fault and switch the rate limit off (its code is kept)."""
        with self._lock:
            self._queue.clear()
            self._bucket = None

    def pending(self) -> list[dict[str, Any]]:
        """The queued faults, with what is left of their counts."""
        with self._lock:
            return [asdict(fault) for fault in self._queue]

    def view(self) -> dict[str, Any]:
        return {
            "pending": self.pending(),
            "rate_limit_per_second": self.rate_limit_per_second,
            "rate_limit_code": self.rate_limit_code,
        }

    def decide(self, path: str, business_error: BusinessError) -> Verdict:
        """Take what applies to one request to `path` from the rate limit and the queue."""
        with self._lock:
            wait = 0.0 if self._bucket is None else self._bucket.take()
            if wait > 0:
                return Verdict(response=self._rate_limited(wait, business_error))
            slow = self._take(path, slow=True)
            failing = self._take(path, slow=False)
            self._drop_spent()
        delay_ms = 0 if slow is None else slow.slow_ms
        response = None if failing is None else _fault_response(failing, business_error)
        return Verdict(delay_ms=delay_ms, response=response)

    def _take(self, path: str, *, slow: bool) -> Fault | None:
        for fault in self._queue:
            if (fault.slows if slow else fault.fails) and fault.matches(path):
                if slow:
                    fault.slow_count -= 1
                else:
                    fault.count -= 1
                return fault
        return None

    def _drop_spent(self) -> None:
        self._queue = deque(f for f in self._queue if f.fails or f.slows)

    def _rate_limited(self, wait: float, business_error: BusinessError) -> Response:
        message = f"too many requests: over {self._bucket_rate()} a second (simulated)"
        if self.rate_limit_code is not None:
            return JSONResponse(business_error(self.rate_limit_code, message))
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        return JSONResponse({"message": message}, status_code=429, headers=headers)

    def _bucket_rate(self) -> float | None:
        return None if self._bucket is None else self._bucket.rate


def _fault_response(fault: Fault, business_error: BusinessError) -> Response:
    if fault.business_code is not None:
        message = f"simulated fault: business code {fault.business_code}"
        return JSONResponse(business_error(fault.business_code, message))
    status = fault.status if fault.status is not None else 500
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    return JSONResponse(
        {"message": f"simulated fault: HTTP {status}"}, status_code=status, headers=headers
    )


def _generic_business_error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {}}


class RequestCounter:
    """How many upstream API requests a simulator answered, in total and by path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: Counter[str] = Counter()

    def record(self, path: str) -> None:
        with self._lock:
            self._by_path[path] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self._by_path.values()), "by_path": dict(self._by_path)}

    def reset(self) -> None:
        with self._lock:
            self._by_path.clear()


class _SimulationMiddleware:
    """Counts every request outside `/__sim/` and applies the faults to it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: Faults,
        counter: RequestCounter,
        business_error: BusinessError,
    ) -> None:
        self.app, self.faults, self.counter = app, faults, counter
        self.business_error = business_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        self.counter.record(path)
        verdict = self.faults.decide(path, self.business_error)
        if verdict.delay_ms:
            await asyncio.sleep(verdict.delay_ms / 1000)
        if verdict.response is not None:
            await verdict.response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class FaultRequest(BaseModel):
    """A fault to queue (`status` or `business_code`, and/or `slow_ms`), and/or the rate
    limit to set (`rate_limit_per_second`: null switches it off)."""

    status: int | None = Field(None, ge=400, le=599)
    count: int = Field(1, ge=0)
    retry_after: float | None = Field(None, ge=0)
    business_code: int | None = None
    slow_ms: int = Field(0, ge=0)
    slow_count: int = Field(0, ge=0)
    path: str | None = None
    rate_limit_per_second: float | None = Field(None, gt=0)
    rate_limit_code: int | None = None


class ClockRequest(BaseModel):
    """Either `advance_seconds` (forward) or `now` (any instant with an offset)."""

    advance_seconds: float | None = Field(None, ge=0)
    now: datetime | None = None


_RATE_FIELDS = {"rate_limit_per_second", "rate_limit_code"}


def _apply_fault_request(faults: Faults, body: FaultRequest) -> None:
    """Queue the fault the body describes and/or set the rate limit; nothing on a refusal."""
    rates = body.model_fields_set & _RATE_FIELDS
    queues = body.status is not None or body.business_code is not None or body.slow_ms > 0
    if not rates and not queues:
        raise HTTPException(422, "give status, business_code, slow_ms or a rate limit")
    fields = body.model_dump(exclude=_RATE_FIELDS)
    try:
        if queues:
            Fault(**fields)  # validated before anything changes
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    if "rate_limit_code" in rates:
        faults.rate_limit_code = body.rate_limit_code
    if "rate_limit_per_second" in rates:
        faults.rate_limit_per_second = body.rate_limit_per_second
    if queues:
        faults.add(**fields)


def _move_clock(clock: SimClock, body: ClockRequest) -> None:
    if (body.advance_seconds is None) == (body.now is None):
        raise HTTPException(422, "give exactly one of advance_seconds and now")
    try:
        if body.now is not None:
            clock.set(body.now)
        else:
            clock.advance(body.advance_seconds or 0.0)
    except ValueError as error:
        raise HTTPException(422, str(error)) from error


def _fault_routes(router: APIRouter, faults: Faults) -> None:
    @router.get("/faults", summary="The pending faults and the rate limit")
    def show_faults() -> dict[str, Any]:
        return faults.view()

    @router.post("/faults", summary="Queue a fault and/or set the rate limit")
    def add_fault(body: FaultRequest) -> dict[str, Any]:
        _apply_fault_request(faults, body)
        return faults.view()

    @router.delete("/faults", summary="Drop every pending fault and the rate limit")
    def clear_faults() -> dict[str, Any]:
        faults.clear()
        return faults.view()


def _request_routes(router: APIRouter, counter: RequestCounter) -> None:
    @router.get("/requests", summary="Upstream API requests answered, in total and by path")
    def show_requests() -> dict[str, Any]:
        return counter.snapshot()

    @router.delete("/requests", summary="Start counting requests from zero")
    def reset_requests() -> dict[str, Any]:
        counter.reset()
        return counter.snapshot()


def _clock_routes(router: APIRouter, clock: SimClock) -> None:
    @router.get("/clock", summary="The simulated now")
    def show_clock() -> dict[str, str]:
        return {"now": clock.now().isoformat()}

    @router.post("/clock", summary="Advance the simulated clock, or set it")
    def move_clock(body: ClockRequest) -> dict[str, str]:
        _move_clock(clock, body)
        return {"now": clock.now().isoformat()}


def _control_router(clock: SimClock, faults: Faults, counter: RequestCounter) -> APIRouter:
    router = APIRouter(prefix="/__sim", tags=["simulator control"])
    _fault_routes(router, faults)
    _request_routes(router, counter)
    _clock_routes(router, clock)
    return router


def simulator_app(
    title: str,
    *,
    clock: SimClock,
    faults: Faults,
    business_error: BusinessError | None = None,
) -> FastAPI:
    """An app with the `/__sim/` control routes (faults, requests, clock), the request
    counter and the fault middleware; the simulator adds the upstream's routes to it.
    `business_error(code, message)` builds the upstream's error envelope for business-code
    faults. `app.state` holds `clock`, `faults` and `requests` (the counter)."""
    app = FastAPI(
        title=title,
        docs_url="/__sim/docs",
        openapi_url="/__sim/openapi.json",
        redoc_url=None,
    )
    counter = RequestCounter()
    app.state.clock, app.state.faults, app.state.requests = clock, faults, counter
    app.include_router(_control_router(clock, faults, counter))
    app.add_middleware(
        _SimulationMiddleware,
        faults=faults,
        counter=counter,
        business_error=business_error or _generic_business_error,
    )
    return app


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _quiet_config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level="warning", access_log=False, server_header=False, **options
    )


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the simulator's server stopped while starting (see its log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator's server did not start in {_START_TIMEOUT:g} s")
        time.sleep(0.01)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(_STOP_TIMEOUT)
    if thread.is_alive():
        log.warning("simulation.forced_stop", timeout=_STOP_TIMEOUT)
        server.force_exit = True
        thread.join(_STOP_TIMEOUT)


@contextmanager
def running(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` in a background thread on a free port; the base URL once it accepts
    connections. A thread of its own, so it works under a running event loop too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(_quiet_config(app, lifespan="auto"))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name=f"simulator:{port}", daemon=True
        )
        thread.start()
        try:
            _wait_started(server, thread)
            yield _base_url(host, port)
        finally:
            _stop(server, thread)
    finally:
        listener.close()


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` until interrupted (`tallyhub simulate <name> --port N`)."""
    log.info("simulation.serving", url=_base_url(host, port))
    uvicorn.Server(_quiet_config(app, host=host, port=port)).run()
