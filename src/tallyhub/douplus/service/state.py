"""Sync state per (account, stream): when it last completed, when it was last tried and
how that went. A success is saved in the transaction of the data it covers; a failure in
its own, so it is recorded even though its data were not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.db import Database
from tallyhub.core.upstream import SYNC_LAG, SYNC_LAST_SUCCESS
from tallyhub.douplus.config import NAME
from tallyhub.douplus.models import DouplusSyncState


async def record_success(
    session: AsyncSession,
    account_id: int,
    stream: str,
    now: datetime,
    *,
    count: int,
    window: datetime | None = None,
) -> None:
    row = {
        "account_id": account_id,
        "stream": stream,
        "last_success_at": now,
        "last_attempt_at": now,
        "last_window": window,
        "last_error": None,
        "last_count": count,
    }
    replace = ("last_success_at", "last_attempt_at", "last_window", "last_error", "last_count")
    conn = await session.connection()
    await write_rows(
        conn, RowSet(DouplusSyncState, [row], keys=("account_id", "stream"), replace=replace)
    )
    labels = (NAME, stream, str(account_id))
    SYNC_LAST_SUCCESS.labels(*labels).set(now.timestamp())
    SYNC_LAG.labels(*labels).set(0)


async def record_failure(
    db: Database, account_id: int, stream: str, now: datetime, error: str
) -> None:
    async def save(session: AsyncSession) -> datetime | None:
        row = {
            "account_id": account_id,
            "stream": stream,
            "last_attempt_at": now,
            "last_error": error[:4000],
            "last_count": 0,
        }
        conn = await session.connection()
        await write_rows(
            conn,
            RowSet(
                DouplusSyncState,
                [row],
                keys=("account_id", "stream"),
                replace=("last_attempt_at", "last_error"),
            ),
        )
        state = await session.get(DouplusSyncState, (account_id, stream))
        return state.last_success_at if state is not None else None

    last = await db.run(save)
    if last is not None:
        SYNC_LAG.labels(NAME, stream, str(account_id)).set((now - last).total_seconds())
