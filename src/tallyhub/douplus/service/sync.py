"""Syncing many accounts: each on its own, a few at once, so one account's failure never
stops the others; the run's counts say how each account went, and a run in which an
account failed is recorded as failed (its counts kept) once every account has had its go.

An account whose refresh token has expired is marked `needs_reauth` and left out of the
syncs until it is connected again; that is its outcome, not a failure of the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.crypto import SecretUnreadable
from tallyhub.core.errors import NotFound
from tallyhub.core.jobs.registry import JobFailed
from tallyhub.core.upstream import UpstreamError
from tallyhub.douplus.client import ReauthNeeded
from tallyhub.douplus.models import DouyinAccount
from tallyhub.douplus.service.context import SyncContext
from tallyhub.douplus.service.orders import Mode, sync_orders
from tallyhub.douplus.service.state import record_failure, record_success
from tallyhub.douplus.service.stats import sync_stats
from tallyhub.douplus.service.videos import aggregate_videos

log = structlog.get_logger(__name__)

Stream = Literal["orders_full", "orders_incremental", "stats"]
AccountWork = Callable[[int], Awaitable[dict[str, Any]]]
Progress = Callable[[int, dict[str, Any]], None]  # an account done, and how it went
# What can go wrong with one account and must not stop the others.
ACCOUNT_FAILURES = (UpstreamError, SecretUnreadable, NotFound, SQLAlchemyError, httpx.HTTPError)


async def active_accounts(ctx: SyncContext, only: Sequence[int] | None = None) -> list[int]:
    async def read(session: AsyncSession) -> list[int]:
        query = select(DouyinAccount.id).where(DouyinAccount.status == "active")
        if only is not None:
            query = query.where(DouyinAccount.id.in_(list(only)))
        return list(await session.scalars(query.order_by(DouyinAccount.id)))

    return await ctx.db.run(read, readonly=True)


async def _one(ctx: SyncContext, account_id: int, stream: str, work: AccountWork) -> dict[str, Any]:
    try:
        return {"status": "ok", **await work(account_id)}
    except ReauthNeeded as error:
        return {"status": "needs_reauth", "error": str(error)}
    except ACCOUNT_FAILURES as error:
        log.error("douplus.sync_failed", account_id=account_id, stream=stream, exc_info=True)
        await record_failure(
            ctx.db, account_id, stream, ctx.clock(), f"{type(error).__name__}: {error}"
        )
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]}


async def for_each_account(
    ctx: SyncContext,
    stream: str,
    work: AccountWork,
    accounts: Sequence[int],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run `work` for every account, `account_concurrency` at a time; the run's counts.
    Raises `JobFailed` (with the counts) when an account failed."""
    gate = asyncio.Semaphore(ctx.settings.account_concurrency)

    async def guarded(account_id: int) -> dict[str, Any]:
        async with gate:
            outcome = await _one(ctx, account_id, stream, work)
        if progress is not None:
            progress(account_id, outcome)
        return outcome

    results = await asyncio.gather(*(guarded(a) for a in accounts))
    outcomes = {str(a): r for a, r in zip(accounts, results, strict=True)}
    statuses = [r["status"] for r in results]
    counts: dict[str, Any] = {
        "accounts": len(accounts),
        "ok": statuses.count("ok"),
        "failed": statuses.count("failed"),
        "needs_reauth": statuses.count("needs_reauth"),
        "by_account": outcomes,
    }
    if counts["failed"]:
        raise JobFailed(
            f"{stream}: {counts['failed']} of {len(accounts)} accounts failed: "
            + "; ".join(
                f"{a}: {r['error']}" for a, r in outcomes.items() if r["status"] == "failed"
            ),
            counts,
        )
    return counts


async def sync_orders_of_all(ctx: SyncContext, mode: Mode) -> dict[str, Any]:
    async def work(account_id: int) -> dict[str, Any]:
        return (await sync_orders(ctx, account_id, mode)).counts()

    return await for_each_account(ctx, f"orders_{mode}", work, await active_accounts(ctx))


async def sync_stats_of_all(ctx: SyncContext) -> dict[str, Any]:
    async def work(account_id: int) -> dict[str, Any]:
        return (await sync_stats(ctx, account_id)).counts()

    return await for_each_account(ctx, "stats", work, await active_accounts(ctx))


# ---------------------------------------------------------------- syncs asked for


async def request_sync(
    session: AsyncSession,
    principal: Principal,
    mode: Mode,
    account_id: int | None,
    now: datetime,
) -> list[int]:
    """Mark one account (or every active one the principal sees) for a sync; their ids."""
    query = select(DouyinAccount.id).where(
        DouyinAccount.status == "active", principal.visible(DouyinAccount.owner_id)
    )
    if account_id is not None:
        query = query.where(DouyinAccount.id == account_id)
    ids = list(await session.scalars(query))
    if account_id is not None and not ids:
        raise NotFound(f"no active DOU+ account {account_id}")
    if ids:
        await session.execute(
            update(DouyinAccount)
            .where(DouyinAccount.id.in_(ids))
            .values(sync_requested=mode, sync_requested_at=now)
        )
    return ids


async def _requested(ctx: SyncContext) -> list[tuple[int, str, datetime]]:
    async def read(session: AsyncSession) -> list[tuple[int, str, datetime]]:
        rows = await session.execute(
            select(DouyinAccount.id, DouyinAccount.sync_requested, DouyinAccount.sync_requested_at)
            .where(DouyinAccount.status == "active", DouyinAccount.sync_requested.is_not(None))
            .order_by(DouyinAccount.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    return await ctx.db.run(read, readonly=True)


async def _done(ctx: SyncContext, account_id: int, asked_at: datetime, count: int) -> None:
    """The request is met (unless asked again meanwhile); its stream's error is cleared."""

    async def clear(session: AsyncSession) -> None:
        await session.execute(
            update(DouyinAccount)
            .where(DouyinAccount.id == account_id, DouyinAccount.sync_requested_at == asked_at)
            .values(sync_requested=None, sync_requested_at=None)
        )
        await record_success(session, account_id, "requested", ctx.clock(), count=count)

    await ctx.db.run(clear)


async def sync_now(
    ctx: SyncContext, mode: Mode, only: Sequence[int] | None, progress: Progress | None
) -> dict[str, Any]:
    """Orders in `mode`, then figures, of the active accounts (or those of `only`), then
    the videos rollup: what the CLI's `tallyhub sync douplus` runs."""
    accounts = await active_accounts(ctx, only)

    async def work(account_id: int) -> dict[str, Any]:
        orders = await sync_orders(ctx, account_id, mode)
        stats = await sync_stats(ctx, account_id)
        return {**orders.counts(), "moved": stats.moved}

    try:
        return await for_each_account(ctx, f"orders_{mode}", work, accounts, progress)
    finally:
        await aggregate_videos(ctx.db, ctx.clock())


async def sync_requested(ctx: SyncContext) -> dict[str, Any]:
    """Orders (in the mode asked for), then figures, of every account with a sync asked
    for; then the videos rollup. A request made meanwhile stays for the next run."""
    requests = await _requested(ctx)
    asked = {account_id: (mode, at) for account_id, mode, at in requests}

    async def work(account_id: int) -> dict[str, Any]:
        mode, at = asked[account_id]
        orders = await sync_orders(ctx, account_id, "full" if mode == "full" else "incremental")
        stats = await sync_stats(ctx, account_id)
        await _done(ctx, account_id, at, orders.fetched)
        return {"mode": mode, **orders.counts(), "moved": stats.moved}

    try:
        return await for_each_account(ctx, "requested", work, list(asked))
    finally:
        if asked:  # what the accounts that did sync brought, ranked at once
            await aggregate_videos(ctx.db, ctx.clock())
