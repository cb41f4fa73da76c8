"""The per-video rollup: every video with an order whose figures moved since the last
rollup (`agg_pending`) gets its row for the current window, summed from its orders'
current figures in one grouped statement; the row before it stops being the latest.

Orders of one video are locked while they are summed, so figures that move meanwhile
wait, and leave `agg_pending` set for the next rollup: nothing is summed twice or missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.bulk import RowSet, bucketed, write_rows
from tallyhub.core.db import Database
from tallyhub.douplus.models import DouplusOrder, DouplusVideoStatsAgg
from tallyhub.douplus.service.context import window_of
from tallyhub.douplus.service.state import record_success

CENT = Decimal("0.01")
RATE = Decimal("0.0001")
CHUNK = 512
ALL_ACCOUNTS = 0  # the videos stream's state row: the rollup spans accounts

SUMS: dict[str, Any] = {
    "total_cost": func.sum(DouplusOrder.stat_cost),
    "total_play": func.sum(DouplusOrder.total_play),
    "total_like": func.sum(DouplusOrder.custom_like),
    "total_share": func.sum(DouplusOrder.dy_share),
    "total_comment": func.sum(DouplusOrder.dy_comment),
    "total_convert": func.sum(DouplusOrder.dp_target_convert_cnt),
    "rank_plays": func.sum(DouplusOrder.play_duration_5s_rank * DouplusOrder.total_play),
}


async def aggregate_videos(db: Database, now: datetime) -> dict[str, int]:
    window = window_of(now)

    async def roll(session: AsyncSession) -> int:
        items = await _pending_items(session)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(items), CHUNK):
            rows += await _sums(session, bucketed(items[start : start + CHUNK]), window)
        await _write(session, rows, window)
        await record_success(session, ALL_ACCOUNTS, "videos", now, count=len(rows), window=window)
        return len(rows)

    return {"videos": await db.run(roll)}


async def _pending_items(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(DouplusOrder.item_id).where(DouplusOrder.agg_pending.is_(True)).distinct()
    )
    return sorted(rows)


async def _sums(session: AsyncSession, items: list[str], window: datetime) -> list[dict[str, Any]]:
    # Lock the videos' orders (in order) before summing them, then clear their flags.
    await session.execute(
        select(DouplusOrder.id)
        .where(DouplusOrder.item_id.in_(items))
        .order_by(DouplusOrder.id)
        .with_for_update()
    )
    grouped = await session.execute(
        select(
            DouplusOrder.item_id,
            func.min(DouplusOrder.account_id).label("account_id"),
            func.max(DouplusOrder.title).label("title"),
            func.count().label("order_count"),
            *(expression.label(name) for name, expression in SUMS.items()),
        )
        .where(DouplusOrder.item_id.in_(items))
        .group_by(DouplusOrder.item_id)
    )
    await session.execute(
        update(DouplusOrder)
        .where(DouplusOrder.item_id.in_(items), DouplusOrder.agg_pending.is_(True))
        .values(agg_pending=False)
    )
    return [_video_row(row._mapping, window) for row in grouped]


def _ratio(numerator: Decimal, denominator: Decimal, unit: Decimal) -> Decimal:
    return (numerator / denominator).quantize(unit) if denominator else Decimal(0).quantize(unit)


def _video_row(row: Any, window: datetime) -> dict[str, Any]:
    cost = Decimal(str(row["total_cost"] or 0)).quantize(CENT)
    plays = Decimal(int(row["total_play"] or 0))
    converts = Decimal(int(row["total_convert"] or 0))
    rank_plays = Decimal(str(row["rank_plays"] or 0))
    return {
        "item_id": row["item_id"],
        "account_id": row["account_id"],
        "title": row["title"] or "",
        "stat_time": window,
        "is_latest": True,
        "order_count": int(row["order_count"]),
        "total_cost": cost,
        "total_play": int(plays),
        "total_like": int(row["total_like"] or 0),
        "total_share": int(row["total_share"] or 0),
        "total_comment": int(row["total_comment"] or 0),
        "total_convert": int(converts),
        # Plays per 100 yuan spent; like and share rates per play; cost per conversion;
        # the 5-second completion rate weighted by plays (not an average of averages).
        "play_per_100_cost": _ratio(plays * 100, cost, CENT),
        "like_rate": _ratio(Decimal(int(row["total_like"] or 0)), plays, RATE),
        "share_rate": _ratio(Decimal(int(row["total_share"] or 0)), plays, RATE),
        "avg_convert_cost": _ratio(cost, converts, CENT),
        "avg_5s_rank": _ratio(rank_plays, plays, RATE),
    }


async def _write(session: AsyncSession, rows: Sequence[dict[str, Any]], window: datetime) -> None:
    if not rows:
        return
    items = sorted(row["item_id"] for row in rows)
    for start in range(0, len(items), CHUNK):
        await session.execute(
            update(DouplusVideoStatsAgg)
            .where(
                DouplusVideoStatsAgg.item_id.in_(bucketed(items[start : start + CHUNK])),
                DouplusVideoStatsAgg.is_latest.is_(True),
                DouplusVideoStatsAgg.stat_time != window,
            )
            .values(is_latest=False)
        )
    figures = [c for c in rows[0] if c not in ("item_id", "stat_time")]
    conn = await session.connection()
    await write_rows(
        conn,
        RowSet(
            DouplusVideoStatsAgg,
            sorted(rows, key=lambda r: r["item_id"]),
            keys=("item_id", "stat_time"),
            replace=tuple(figures),
        ),
    )
