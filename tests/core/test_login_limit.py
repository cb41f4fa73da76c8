"""The failed-login limit (core/auth.FailureLimiter.attempt): attempts are counted before
they are judged, so a burst sent side by side gets no more guesses than one sent in turn;
in-process and shared through Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tallyhub.core.auth import Role, create_user
from tests.conftest import TestDatabase, unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"


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


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
async def test_guesses_sent_side_by_side_get_no_more_than_the_limit(
    harness_factory: Any, test_db: TestDatabase, shared: bool
) -> None:
    settings: dict[str, Any] = {"auth": {"failed_code_limit": 5}}
    if shared:
        client = Redis.from_url(REDIS_URL)
        try:
            await asyncio.wait_for(client.ping(), 3)
        except (RedisError, OSError, TimeoutError) as error:
            unavailable(f"redis unreachable at {REDIS_URL}: {error!r}")
        finally:
            await client.aclose()
        settings["redis_url"] = REDIS_URL
    async with harness_factory(test_db, **settings) as h:
        await h.runtime.db.run(lambda s: create_user(s, "alice", "right-pw", Role.viewer))
        codes = await _burst(h.app, _address(), "wrong", 20)
        assert sorted(codes) == [401] * 5 + [429] * 15

        # Signing in successfully takes nothing from the allowance of an address.
        address = _address()
        assert await _burst(h.app, address, "wrong", 2) == [401, 401]
        for _ in range(6):  # one after another, as a person signs in
            assert await _burst(h.app, address, "right-pw", 1) == [200]
        assert await _burst(h.app, address, "wrong", 3) == [401, 401, 401]
        assert await _burst(h.app, address, "right-pw", 1) == [429]
