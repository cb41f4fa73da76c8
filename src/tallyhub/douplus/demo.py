"""`make run`'s DOU+ data: the simulator started in this process, the client pointed at
it, and its accounts connected to the demo admin through the real OAuth exchange, each
with a full sync asked for, so the DOU+ pages fill by themselves.

The simulator starts afresh with each `serve`; connecting again gives the known accounts
their new tokens (the old ones are the old simulator's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role, User
from tallyhub.core.columns import utcnow
from tallyhub.core.runtime import Runtime
from tallyhub.core.simulation import SimClock, running
from tallyhub.douplus import jobs, service, simulator
from tallyhub.douplus.client import DouplusClient, Tokens
from tallyhub.douplus.config import DouplusSettings, douplus_settings

log = structlog.get_logger(__name__)


# The demo's simulated time follows the wall clock, and now and then an account places a
# new order, so today's figures move while someone watches.
TICK_SECONDS = 30.0
NEW_ORDER_EVERY_TICKS = 4


@asynccontextmanager
async def simulated_upstream(runtime: Runtime, settings: DouplusSettings) -> AsyncIterator[str]:
    """The DOU+ simulator served on a free local port while the block runs; its URL."""
    app = simulator.create_app(
        seed=settings.simulator_seed,
        accounts=settings.simulator_accounts,
        orders_per_account=settings.simulator_orders,
        app_id=settings.app_id,
        app_secret=settings.app_secret,
    )
    world = app.state.world
    for sec_uid in list(world.accounts):
        world.add_orders(sec_uid, 2)  # placed today, so the day's tiles are not empty
    with running(app) as url:
        log.info("douplus.simulator_started", url=url)
        ticking = asyncio.create_task(_follow_wall_clock(app.state.clock, world))
        try:
            yield url
        finally:
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)


async def _follow_wall_clock(clock: SimClock, world: Any) -> None:
    accounts = sorted(world.accounts)
    tick = 0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        clock.set(utcnow())
        tick += 1
        if tick % NEW_ORDER_EVERY_TICKS == 0:
            world.add_orders(accounts[tick // NEW_ORDER_EVERY_TICKS % len(accounts)], 1)


async def _demo_owner(runtime: Runtime) -> Principal | None:
    async def find(session: AsyncSession) -> Principal | None:
        user = await session.scalar(select(User).where(User.username == "demo"))
        if user is None:
            user = await session.scalar(
                select(User).where(User.role == Role.admin).order_by(User.id).limit(1)
            )
        return None if user is None else Principal(user.id, user.username, user.role)

    return await runtime.db.run(find, readonly=True)


async def connect_simulated_accounts(runtime: Runtime, url: str) -> int:
    """Connect every simulated account to the demo admin (OAuth: an auth code from the
    simulator, exchanged by the real client) and start their full sync; how many."""
    owner = await _demo_owner(runtime)
    if owner is None:
        log.warning("douplus.simulator_no_owner", hint="run `tallyhub demo seed` first")
        return 0
    settings = douplus_settings(runtime.settings)
    async with httpx.AsyncClient(base_url=url) as control:
        accounts = (await control.get("/__sim/accounts")).raise_for_status().json()
        codes = [
            (await control.post("/__sim/auth-codes", json={"aweme_sec_uid": a["aweme_sec_uid"]}))
            .raise_for_status()
            .json()["auth_code"]
            for a in accounts
        ]
    async with DouplusClient(settings, base_url=url) as client:
        grants = await asyncio.gather(*(client.access_token(code) for code in codes))
    box = runtime.secret_box()
    for account, tokens in zip(accounts, grants, strict=True):

        async def connect(
            session: AsyncSession, account: dict[str, Any] = account, tokens: Tokens = tokens
        ) -> None:
            saved, _ = await service.save_account(
                session, owner, box, account["aweme_sec_uid"], account.get("nickname"), tokens
            )
            await service.request_sync(session, owner, "full", saved.id, utcnow())

        await runtime.db.run(connect)
    await jobs.start_requested(runtime)
    log.info("douplus.simulator_connected", accounts=len(accounts), owner=owner.username)
    return len(accounts)
