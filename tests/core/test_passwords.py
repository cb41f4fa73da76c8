"""Signing in with a password: the check costs the same whoever asks, and runs beside the
event loop rather than on it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Role, User, hash_password, verify_password
from tests.conftest import Harness
from tests.factories import PASSWORD, add_user


def _checks() -> float:
    return REGISTRY.get_sample_value("auth_password_checks_total") or 0.0


async def _sign_in(h: Harness, username: str, password: str) -> int:
    response = await h.client.post(
        "/api/auth/token", data={"username": username, "password": password}
    )
    return response.status_code


async def test_an_unknown_username_costs_a_password_check_like_a_wrong_password(
    harness: Harness,
) -> None:
    """Answered without a hash check, an unknown name came back in 3 ms and a wrong
    password in ~200 ms: the time told which usernames exist."""
    await add_user(harness.runtime, "ana", Role.viewer)
    await add_user(harness.runtime, "bo", Role.viewer)
    await harness.runtime.db.run(_disable("bo"))
    cases = [("ana", "wrong-password", 401), ("nobody", PASSWORD, 401), ("bo", PASSWORD, 401)]
    for username, password, status in cases:
        before = _checks()
        assert await _sign_in(harness, username, password) == status
        assert _checks() - before == 1, username
    before = _checks()
    assert await _sign_in(harness, "ana", PASSWORD) == 200
    assert _checks() - before == 1


def _disable(username: str) -> Callable[[AsyncSession], Awaitable[None]]:
    async def work(session: AsyncSession) -> None:
        await session.execute(update(User).where(User.username == username).values(is_active=False))

    return work


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
async def test_password_checks_leave_the_event_loop_free(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Five sign-ins at once: no step of the event loop takes as long as half of one
    password check (asyncio's slow-callback report, with the threshold measured here).
    Checked on the loop, each check held every other request for its whole length."""
    await add_user(harness.runtime, "ana", Role.viewer)
    one = hash_password("x")
    started = time.perf_counter()
    verify_password(one, "y")
    threshold = (time.perf_counter() - started) / 2
    loop = asyncio.get_running_loop()
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = threshold
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            codes = await asyncio.gather(
                *(_sign_in(harness, "ana", p) for p in [PASSWORD, "no", "no", PASSWORD, "no"])
            )
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = slow
    assert sorted(codes) == [200, 200, 401, 401, 401]
    stalls = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert stalls == []
