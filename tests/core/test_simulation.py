"""The simulator kit: the clock, the faults, the request counter, and serving over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tallyhub.core.simulation import Faults, SimClock, running, simulator_app

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def _envelope(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "sim", "data": {}}


def _app(faults: Faults | None = None, clock: SimClock | None = None) -> FastAPI:
    app = simulator_app(
        "test upstream",
        clock=clock or SimClock(START),
        faults=faults or Faults(),
        business_error=_envelope,
    )

    @app.get("/api/ping")
    def ping() -> dict[str, Any]:
        return {"code": 0, "pong": True}

    @app.get("/other/ping")
    def other() -> dict[str, Any]:
        return {"code": 0, "other": True}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        yield http


def test_clock_is_frozen_until_moved() -> None:
    clock = SimClock(START)
    assert clock.now() == START
    assert clock.now() == START  # no time passes by itself
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.now() == START + timedelta(seconds=90)
    shanghai = datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert clock.set(shanghai) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC


def test_clock_defaults_to_now_in_whole_seconds_and_refuses_ambiguity() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    clock = SimClock()
    assert clock.now().microsecond == 0
    assert clock.now() >= before
    with pytest.raises(ValueError, match="time zone"):
        SimClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(-1)


def test_clock_moves_from_other_threads() -> None:
    clock = SimClock(START)
    threads = [threading.Thread(target=clock.advance, args=(1,)) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.now() == START + timedelta(seconds=50)


async def test_clock_over_http(client: httpx.AsyncClient) -> None:
    assert (await client.get("/__sim/clock")).json() == {"now": START.isoformat()}
    moved = await client.post("/__sim/clock", json={"advance_seconds": 3600})
    assert moved.json() == {"now": (START + timedelta(hours=1)).isoformat()}
    moved = await client.post("/__sim/clock", json={"now": "2026-05-01T12:00:00+08:00"})
    assert moved.json() == {"now": "2026-05-01T04:00:00+00:00"}
    assert (await client.post("/__sim/clock", json={})).status_code == 422
    both = {"now": "2026-05-01T12:00:00Z", "advance_seconds": 1}
    assert (await client.post("/__sim/clock", json=both)).status_code == 422
    assert (await client.post("/__sim/clock", json={"advance_seconds": -5})).status_code == 422
    naive = await client.post("/__sim/clock", json={"now": "2026-05-01T12:00:00"})
    assert naive.status_code == 422


async def test_status_burst_with_retry_after(client: httpx.AsyncClient) -> None:
    fault = {"status": 503, "count": 2, "retry_after": 1, "business_code": None, "path": None}
    queued = await client.post("/__sim/faults", json=fault)
    assert queued.json()["pending"][0]["count"] == 2
    for _ in range(2):
        answer = await client.get("/api/ping")
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
    answer = await client.get("/api/ping")
    assert answer.status_code == 200
    assert answer.json() == {"code": 0, "pong": True}
    assert (await client.get("/__sim/faults")).json()["pending"] == []


async def test_business_code_burst_uses_the_upstream_envelope(client: httpx.AsyncClient) -> None:
    await client.post("/__sim/faults", json={"business_code": 40100, "count": 2})
    for _ in range(2):
        answer = await client.get("/api/ping")
        assert answer.status_code == 200
        body = answer.json()
        assert body["code"] == 40100
        assert set(body) == {"code", "message", "request_id", "data"}
    assert (await client.get("/api/ping")).json()["code"] == 0


async def test_faults_queue_in_order(client: httpx.AsyncClient) -> None:
    await client.post("/__sim/faults", json={"status": 503, "count": 1})
    await client.post("/__sim/faults", json={"business_code": 50000, "count": 1})
    await client.post("/__sim/faults", json={"status": 429, "count": 1})
    pending = (await client.get("/__sim/faults")).json()["pending"]
    assert [(f["status"], f["business_code"]) for f in pending] == [
        (503, None),
        (None, 50000),
        (429, None),
    ]
    first, second, third, fourth = [await client.get("/api/ping") for _ in range(4)]
    assert first.status_code == 503
    assert "Retry-After" not in first.headers
    assert (second.status_code, second.json()["code"]) == (200, 50000)
    assert third.status_code == 429
    assert fourth.json()["code"] == 0


async def test_path_filter_spares_other_paths(client: httpx.AsyncClient) -> None:
    await client.post("/__sim/faults", json={"status": 500, "count": 1, "path": "/api/"})
    assert (await client.get("/other/ping")).status_code == 200
    assert (await client.get("/__sim/faults")).json()["pending"][0]["count"] == 1
    assert (await client.get("/api/ping")).status_code == 500
    assert (await client.get("/api/ping")).status_code == 200


async def test_clearing_and_refusing_faults(client: httpx.AsyncClient) -> None:
    await client.post("/__sim/faults", json={"status": 500, "count": 10})
    await client.post("/__sim/faults", json={"rate_limit_per_second": 5})
    cleared = (await client.delete("/__sim/faults")).json()
    assert cleared == {"pending": [], "rate_limit_per_second": None, "rate_limit_code": None}
    assert (await client.get("/api/ping")).status_code == 200
    for refused in (
        {},
        {"count": 3},
        {"slow_ms": 100},  # how many requests to slow is not said
        {"status": 200},
        {"status": 503, "count": -1},
    ):
        answer = await client.post("/__sim/faults", json=refused)
        assert answer.status_code == 422, refused
    assert (await client.get("/__sim/faults")).json()["pending"] == []


async def test_slow_answers_are_slow() -> None:
    """Only the slowed request outlasts a short client timeout; the next one is quick."""
    faults = Faults()
    faults.add(slow_ms=1000, slow_count=1)
    with running(_app(faults)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/api/ping", timeout=0.1)
            assert faults.pending() == []
            answer = await http.get("/api/ping", timeout=1.0)
            assert answer.json() == {"code": 0, "pong": True}


async def test_a_slow_fault_may_also_fail() -> None:
    faults = Faults()
    faults.add(status=502, count=1, slow_ms=10, slow_count=2)
    transport = httpx.ASGITransport(app=_app(faults))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        assert (await http.get("/api/ping")).status_code == 502
        assert faults.pending()[0]["slow_count"] == 1
        assert (await http.get("/api/ping")).status_code == 200
        assert faults.pending() == []


async def test_rate_limit_answers_429_without_a_code(client: httpx.AsyncClient) -> None:
    # 0.01 a second: one request passes, the next token is 100 s away.
    view = (await client.post("/__sim/faults", json={"rate_limit_per_second": 0.01})).json()
    assert view["rate_limit_per_second"] == 0.01
    assert view["pending"] == []
    assert (await client.get("/api/ping")).status_code == 200
    limited = await client.get("/api/ping")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await client.get("/__sim/clock")).status_code == 200  # control is never limited


async def test_rate_limit_answers_the_business_code() -> None:
    faults = Faults(rate_limit_code=40100)
    transport = httpx.ASGITransport(app=_app(faults))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        await http.post("/__sim/faults", json={"rate_limit_per_second": 0.01})
        assert (await http.get("/api/ping")).json()["code"] == 0
        limited = await http.get("/api/ping")
        assert (limited.status_code, limited.json()["code"]) == (200, 40100)
        faults.rate_limit_per_second = None
        assert (await http.get("/api/ping")).json()["code"] == 0


def test_faults_refuse_what_does_nothing() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.add()
    with pytest.raises(ValueError):
        faults.add(status=503, count=0)
    with pytest.raises(ValueError):
        faults.rate_limit_per_second = 0
    assert faults.pending() == []


async def test_request_counter(client: httpx.AsyncClient) -> None:
    await client.post("/__sim/faults", json={"status": 503, "count": 1})
    for path in ("/api/ping", "/api/ping", "/other/ping", "/api/ping"):
        await client.get(path)
    await client.get("/__sim/faults")
    counted = (await client.get("/__sim/requests")).json()
    assert counted == {"total": 4, "by_path": {"/api/ping": 3, "/other/ping": 1}}
    assert (await client.delete("/__sim/requests")).json() == {"total": 0, "by_path": {}}
    assert (await client.get("/__sim/requests")).json() == {"total": 0, "by_path": {}}


def test_running_serves_over_real_http_and_stops() -> None:
    clock = SimClock(START)
    app = _app(clock=clock)
    with running(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url) as http:
            assert http.get("/api/ping").json() == {"code": 0, "pong": True}
            clock.advance(60)  # from this thread, seen by the server's
            assert http.get("/__sim/clock").json()["now"] == "2026-03-01T04:01:00+00:00"
            assert http.get("/__sim/requests").json()["total"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/api/ping")


async def test_running_works_inside_a_running_event_loop() -> None:
    assert asyncio.get_running_loop().is_running()
    with running(_app()) as first, running(_app()) as second:
        assert first != second
        async with httpx.AsyncClient() as http:
            answers = await asyncio.gather(
                http.get(f"{first}/api/ping"), http.get(f"{second}/other/ping")
            )
    assert [answer.json() for answer in answers] == [
        {"code": 0, "pong": True},
        {"code": 0, "other": True},
    ]
