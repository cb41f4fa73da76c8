"""Demo data for `make run`: a demo admin, then each domain's own demo data (its
`Domain.seed_demo`). Idempotent: a second run adds nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role, User, create_user
from tallyhub.core.runtime import Runtime
from tallyhub.domains import DOMAINS


async def seed(runtime: Runtime) -> dict[str, Any]:
    if runtime.settings.env == "production":
        raise RuntimeError("demo data is refused when TALLYHUB_ENV=production")

    async def ensure_admin(session: AsyncSession) -> int:
        user = await session.scalar(select(User).where(User.username == "demo"))
        if user is None:
            user = await create_user(session, "demo", "demo", Role.admin)
        return user.id

    admin = Principal(await runtime.db.run(ensure_admin), "demo", Role.admin)
    counts: dict[str, Any] = {}
    for domain in DOMAINS:
        if domain.seed_demo is not None:
            counts[domain.name] = await domain.seed_demo(runtime, admin)
    return counts
