"""What the DOU+ tests share: the simulator served over real HTTP, an app whose client
points at it, accounts connected with the simulator's tokens, and the figures stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role
from tallyhub.core.simulation import SimClock, running
from tallyhub.douplus import service, simulator
from tallyhub.douplus.client import DouplusClient, Tokens
from tallyhub.douplus.config import DouplusSettings, douplus_settings
from tallyhub.douplus.models import DouplusAccountDaily, DouplusOrder
from tallyhub.douplus.service import SyncContext
from tests.conftest import Harness
from tests.factories import add_user

# Retries without the production pauses, and no rate limit of ours in the way.
FAST = {
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.02,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
}


@dataclass
class Sim:
    url: str
    clock: SimClock
    world: Any
    app: Any

    def totals(self, sec_uid: str, **kw: Any) -> dict[str, Any]:
        totals: dict[str, Any] = self.world.totals(sec_uid, **kw)
        return totals

    @property
    def sec_uids(self) -> list[str]:
        return sorted(self.world.accounts)


@contextmanager
def simulated(accounts: int = 2, orders: int = 150, seed: int = 7) -> Iterator[Sim]:
    clock = SimClock()
    app = simulator.create_app(
        seed=seed,
        accounts=accounts,
        orders_per_account=orders,
        clock=clock,
        app_id="test-app",
        app_secret="test-secret",
    )
    with running(app) as url:
        yield Sim(url, clock, app.state.world, app)


def douplus_overrides(sim: Sim, **upstream: Any) -> dict[str, Any]:
    return {
        "douplus": {
            "base_url": sim.url,
            "app_id": "test-app",
            "app_secret": "test-secret",
            "upstream": {**FAST, **upstream},
        }
    }


def settings_of(h: Harness) -> DouplusSettings:
    return douplus_settings(h.runtime.settings)


@asynccontextmanager
async def sync_context(h: Harness, sim: Sim) -> AsyncIterator[SyncContext]:
    """A sync's context on the harness's database, its time the simulator's."""
    settings = settings_of(h)
    async with DouplusClient(settings, base_url=sim.url) as client:
        yield SyncContext(h.runtime.db, h.runtime.secret_box(), client, settings, sim.clock.now)


async def owner(h: Harness, username: str = "owner", role: Role = Role.admin) -> Principal:
    user = await add_user(h.runtime, username, role)
    return Principal(user.id, user.username, user.role)


async def connect(h: Harness, sim: Sim, who: Principal, sec_uid: str) -> int:
    """Connect a simulated account with its current tokens (no sync is started)."""
    view = next(a for a in sim.world.account_views() if a["aweme_sec_uid"] == sec_uid)
    tokens = Tokens(view["access_token"], view["expires_in"], view["refresh_token"], None)

    async def save(session: AsyncSession) -> int:
        account, _ = await service.save_account(
            session, who, h.runtime.secret_box(), sec_uid, view["nickname"], tokens
        )
        return account.id

    account_id: int = await h.runtime.db.run(save)
    return account_id


async def connect_all(h: Harness, sim: Sim, who: Principal) -> dict[str, int]:
    return {uid: await connect(h, sim, who, uid) for uid in sim.sec_uids}


async def stored(h: Harness, account_id: int) -> dict[str, Any]:
    """The account's orders and figures as stored, in the simulator's totals' shape."""

    async def read(session: AsyncSession) -> dict[str, Any]:
        orders = await session.scalar(
            select(func.count()).where(DouplusOrder.account_id == account_id)
        )
        days = (
            await session.execute(
                select(
                    func.coalesce(func.sum(DouplusAccountDaily.order_count), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.stat_cost), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.total_play), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.custom_like), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.dy_share), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.dy_comment), 0),
                    func.coalesce(func.sum(DouplusAccountDaily.dp_target_convert_cnt), 0),
                ).where(DouplusAccountDaily.account_id == account_id)
            )
        ).one()
        current = (
            await session.execute(
                select(
                    func.coalesce(func.sum(DouplusOrder.stat_cost), 0),
                    func.coalesce(func.sum(DouplusOrder.total_play), 0),
                ).where(DouplusOrder.account_id == account_id)
            )
        ).one()
        return {
            "order_count": orders,
            "day_order_count": int(days[0]),
            "stat_cost": str(Decimal(str(days[1])).quantize(Decimal("0.01"))),
            "total_play": int(days[2]),
            "custom_like": int(days[3]),
            "dy_share": int(days[4]),
            "dy_comment": int(days[5]),
            "dp_target_convert_cnt": int(days[6]),
            "current_cost": str(Decimal(str(current[0])).quantize(Decimal("0.01"))),
            "current_play": int(current[1]),
        }

    return await h.runtime.db.run(read, readonly=True)


def expected(totals: dict[str, Any]) -> dict[str, Any]:
    """The simulator's truth in `stored()`'s shape."""
    cost = str(Decimal(totals["stat_cost"]).quantize(Decimal("0.01")))
    return {
        "order_count": totals["order_count"],
        "day_order_count": totals["order_count"],
        "stat_cost": cost,
        "total_play": totals["total_play"],
        "custom_like": totals["custom_like"],
        "dy_share": totals["dy_share"],
        "dy_comment": totals["dy_comment"],
        "dp_target_convert_cnt": totals["dp_target_convert_cnt"],
        "current_cost": cost,
        "current_play": totals["total_play"],
    }
