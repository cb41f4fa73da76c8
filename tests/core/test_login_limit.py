"""The failed-login limit (core/limiter.FailureLimiter.attempt): attempts are counted before
they are judged, so a burst sent side by side gets no more guesses than one sent in turn;
in-process and shared through Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tallyhub.core.auth import Role
from tallyhub.core.errors import TooManyRequests, Unauthorized
from tallyhub.core.limiter import FailureLimiter
from tests.conftest import TestDatabase
from tests.factories import add_user


def _address() -> str:
    """An address of this test's own: with Redis, counts live 60 s beyond the test."""
    return "10.{}.{}.{}".format(*secrets.token_bytes(3))


async def _burst(app: Any, address: str, password: str, n: int) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        form = {"username": "alice", "password": password}
        answers = await asyncio.gather(
            *(client.post("/api/auth/token", data=form) for _ in range(n))
        )
    return [a.status_code for a in answers]


async def _limits_each_address(harness_factory: Any, db: TestDatabase, **settings: Any) -> None:
    async with harness_factory(db, auth={"failed_code_limit": 5}, **settings) as h:
        await add_user(h.runtime, "alice", Role.viewer, password="right-pw")
        codes = await _burst(h.app, _address(), "wrong", 20)
        assert sorted(codes) == [401] * 5 + [429] * 15

        # Signing in successfully takes nothing from the allowance of an address.
        address = _address()
        assert await _burst(h.app, address, "wrong", 2) == [401, 401]
        for _ in range(6):  # one after another, as a person signs in
            assert await _burst(h.app, address, "right-pw", 1) == [200]
        assert await _burst(h.app, address, "wrong", 3) == [401, 401, 401]
        assert await _burst(h.app, address, "right-pw", 1) == [429]


async def test_guesses_sent_side_by_side_get_no_more_than_the_limit(
    harness_factory: Any, test_db: TestDatabase
) -> None:
    await _limits_each_address(harness_factory, test_db)


async def test_the_limit_holds_the_same_when_counted_in_redis(
    harness_factory: Any, test_db: TestDatabase, redis_url: str
) -> None:
    await _limits_each_address(harness_factory, test_db, redis_url=redis_url)


async def test_an_attempt_taken_back_after_its_window_leaves_no_negative_count(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    limiter = FailureLimiter(f"test{secrets.token_hex(4)}", 2, 1, redis)
    address = _address()
    try:
        for _ in range(3):  # each succeeds only after its window has ended
            async with limiter.attempt(address):
                await asyncio.sleep(1.1)
        assert await redis.get(limiter._key(address)) is None, "no count left, not -3"
        # The next window judges exactly `limit` wrong guesses.
        outcomes = []
        for _ in range(4):
            try:
                async with limiter.attempt(address):
                    raise Unauthorized("wrong")
            except (Unauthorized, TooManyRequests) as refused:
                outcomes.append(type(refused).__name__)
        assert outcomes == ["Unauthorized", "Unauthorized", "TooManyRequests", "TooManyRequests"]
        assert 0 < await redis.ttl(limiter._key(address)) <= 1
    finally:
        await redis.delete(limiter._key(address))
        await redis.aclose()


async def test_overlapping_attempts_each_take_back_their_own() -> None:
    limiter = FailureLimiter("test-local", 5, 60)
    first_in, second_in, first_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    stamps: list[float] = []  # each attempt's own entry, as it is counted

    async def succeeds_first() -> None:
        async with limiter.attempt("a"):
            stamps.append(limiter._local["a"][-1])
            first_in.set()
            await second_in.wait()
        first_done.set()

    async def fails_later() -> None:
        await first_in.wait()
        with pytest.raises(Unauthorized):
            async with limiter.attempt("a"):
                stamps.append(limiter._local["a"][-1])
                second_in.set()
                await first_done.wait()
                raise Unauthorized("wrong")

    await asyncio.gather(succeeds_first(), fails_later())
    assert stamps[0] != stamps[1]
    assert list(limiter._local["a"]) == [stamps[1]], "the failure stays, the success is gone"

    async with limiter.attempt("b"):
        pass
    assert "b" not in limiter._local, "an address with nothing counted is forgotten"
