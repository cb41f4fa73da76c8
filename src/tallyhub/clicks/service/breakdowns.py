"""The per-day breakdown rows (`CampaignDailyBreakdown`) and the batches' deltas to them
(`CampaignBreakdownDelta`): what a click batch adds, the fold of the deltas into the rows,
what a range says by one dimension, and their recalibration from the log.

A click adds one to its day's count of its kind of visitor: whether it counted, its device
type, OS, browser, referrer host and bot name (empty for people). A batch inserts one
delta per campaign and day it touched, listing its kinds with their counts; `fold_deltas`
(every few seconds in each serving process, and before a recalibration) adds them to the
rows and deletes them. A breakdown by `device`, `os`, `browser` or `referrer` sums the rows
and the deltas of the clicks that count; by `bot`, those of the bots' clicks kept out of
the counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    TextClause,
    cast,
    delete,
    func,
    insert,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks.models import CampaignBreakdownDelta, CampaignDailyBreakdown, InteractionLog
from tallyhub.clicks.service.agents import DIRECT, classify
from tallyhub.clicks.service.events import FreshClick
from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.db import Database
from tallyhub.core.recalibration import drift

# (campaign, day, counted, device, os, browser, referrer, bot name)
BreakdownKey = tuple[int, date, bool, str, str, str, str, str]
KEYS = (
    "campaign_id",
    "business_date",
    "counted",
    "device",
    "os_family",
    "browser_family",
    "referrer_host",
    "bot_name",
)
B = CampaignDailyBreakdown
D = CampaignBreakdownDelta
DELTA_COLUMNS = ("campaign_id", "business_date", "kinds")
FOLD_CHUNK = 10_000  # deltas folded per statement
# The column a dimension sums by, its place in a key, and whether it reads the clicks
# that count.
DIMENSION_COLUMNS: dict[str, tuple[Any, int, bool]] = {
    "device": (B.device, 3, True),
    "os": (B.os_family, 4, True),
    "browser": (B.browser_family, 5, True),
    "referrer": (B.referrer_host, 6, True),
    "bot": (B.bot_name, 7, False),
}
# (counted, the agent's JSON, referrer host or None)
_Kind = tuple[bool, str, str | None]


def delta_rows(clicks: Iterable[FreshClick]) -> RowSet:
    """One delta per campaign and day of the classified clicks, in key order."""
    per_day: dict[tuple[int, date], Counter[_Kind]] = {}
    for click in clicks:
        agent = click.agent
        if agent is None:
            continue
        day = (click.event.campaign_id, click.day)
        kinds = per_day.get(day)
        if kinds is None:
            kinds = per_day[day] = Counter()
        kinds[click.counted, agent.json, click.event.referrer] += 1
    return RowSet(
        D,
        [
            {"campaign_id": cid, "business_date": day, "kinds": _kinds_json(kinds)}
            for (cid, day), kinds in sorted(per_day.items())
        ],
    )


def _kinds_json(kinds: Counter[_Kind]) -> str:
    """`[[counted, device, os, browser, bot name, referrer, clicks], …]`, from the parts
    already in JSON: a batch builds a few of these per campaign, on the click path."""
    entries = (
        f"[{int(counted)},{agent},{_json_text(referrer or DIRECT)},{n}]"
        for (counted, agent, referrer), n in kinds.items()
    )
    return f"[{','.join(entries)}]"


@lru_cache(maxsize=4096)
def _json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def moves_of(deltas: Iterable[Sequence[Any]]) -> Counter[BreakdownKey]:
    """What (campaign, day, kinds) deltas add to the rows."""
    moves: Counter[BreakdownKey] = Counter()
    for cid, day, kinds in deltas:
        for counted, device, os, browser, bot, referrer, n in json.loads(kinds):
            moves[int(cid), day, bool(counted), device, os, browser, referrer, bot] += int(n)
    return moves


def breakdown_rows(moves: Counter[BreakdownKey]) -> RowSet:
    """The moves as an upsert set, in key order."""
    return RowSet(
        B,
        [{**dict(zip(KEYS, key, strict=True)), "clicks": n} for key, n in sorted(moves.items())],
        keys=KEYS,
        increment=("clicks",),
    )


# ---------------------------------------------------------------- the fold


async def fold_deltas(
    session: AsyncSession,
    campaign_ids: Sequence[int] | None = None,
    limit: int = FOLD_CHUNK,
    upto: int | None = None,
) -> int:
    """Add up to `limit` deltas (the oldest; of `campaign_ids` only and up to id `upto`,
    when given) to the rows and delete them, in the caller's transaction; how many this
    folded. Only what this DELETE removed is added, so a delta is folded once however many
    fold at once."""
    query = select(D.id).order_by(D.id).limit(limit)
    if upto is not None:
        query = query.where(D.id <= upto)
    if campaign_ids is not None:
        query = query.where(D.campaign_id.in_(campaign_ids))
    conn = await session.connection()
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return 0
    if conn.dialect.name == "postgresql":
        before = (await conn.execute(_FOLD_SETTINGS)).one()
        bounds = {"ids": ids, "low": ids[0], "high": ids[-1]}
        folded = int((await conn.execute(_fold_in_postgresql(), bounds)).scalar_one())
        restore = dict(zip(_PLAN, before[: len(_PLAN)], strict=True))
        await conn.execute(_RESTORE_SETTINGS, restore)
        return folded
    gone = (
        await conn.execute(
            delete(D).where(D.id.in_(ids)).returning(D.campaign_id, D.business_date, D.kinds)
        )
    ).all()
    moves = moves_of(gone)
    if moves:
        await write_rows(conn, breakdown_rows(moves))
    return len(gone)


# The fold's plan, for its transaction only. Its estimates are far off (a JSON list's
# length is unknown to the planner, and the deltas come and go faster than statistics):
# compiling it to machine code (JIT) would cost more than running it; the deltas are
# found by their ids, never by reading the table through its dead rows; and they are
# summed in a hash table, so that only the sums are sorted (by key).
_PLAN = {"jit": "off", "enable_seqscan": "off", "enable_sort": "off"}
# Each setting's value before (restored after the fold: a recalibration folds in its own
# transaction and goes on), and the fold's.
_FOLD_SETTINGS = text(
    "SELECT "
    + ", ".join(f"current_setting('{name}')" for name in _PLAN)
    + ", "
    + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in _PLAN.items())
)
_RESTORE_SETTINGS = text(
    "SELECT " + ", ".join(f"set_config('{name}', :{name}, true)" for name in _PLAN)
)


@lru_cache(maxsize=1)
def _fold_in_postgresql() -> TextClause:
    """The fold as one statement that PostgreSQL runs by itself: the deltas deleted, their
    kinds read from the JSON and summed per row key, then added to the rows in key order.
    Done in Python, a busy server spent a fifth of its time folding."""
    keys = ", ".join(KEYS)
    return text(
        f"""
WITH gone AS (
  DELETE FROM campaign_breakdown_deltas
  WHERE id BETWEEN :low AND :high AND id = ANY(CAST(:ids AS BIGINT[]))
  RETURNING campaign_id, business_date, kinds
),
moves AS MATERIALIZED (
  SELECT g.campaign_id, g.business_date, (e->>0) = '1', e->>1, e->>2, e->>3, e->>5, e->>4,
         sum(CAST(e->>6 AS INTEGER))
  FROM gone AS g, jsonb_array_elements(CAST(g.kinds AS JSONB)) AS e
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
),
added AS (
  INSERT INTO campaign_daily_breakdowns AS t ({keys}, clicks)
  SELECT * FROM moves ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
  ON CONFLICT ({keys}) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks
)
SELECT count(*) FROM gone
"""
    )


async def fold_breakdowns(db: Database) -> dict[str, int]:
    """Fold the deltas committed by now, `FOLD_CHUNK` to a transaction, until none of them
    is left (or another fold took the rest). Those inserted meanwhile wait for the next
    turn: under load there always are some, and chasing them folded a few dozen at a time
    without end."""
    upto = await db.run(_last_delta, readonly=True)
    deltas = 0
    while upto is not None and (
        folded := await db.run(lambda session: fold_deltas(session, upto=upto))
    ):
        deltas += folded
    return {"deltas": deltas}


async def fold_campaigns(session: AsyncSession, campaign_ids: Sequence[int]) -> int:
    """Every delta of these campaigns committed by now, folded in the caller's
    transaction."""
    upto = await _last_delta(session)
    total = 0
    while upto is not None and (folded := await fold_deltas(session, campaign_ids, upto=upto)):
        total += folded
    return total


async def _last_delta(session: AsyncSession) -> int | None:
    last: int | None = await session.scalar(select(func.max(D.id)))
    return last


# ---------------------------------------------------------------- reading a range


async def dimension_sums(
    session: AsyncSession, campaign_id: int, dimension: str, first: date, last: date
) -> tuple[Counter[str], Counter[date]]:
    """A range's clicks by the dimension's values and by day: the rows' sums and the
    deltas not folded yet, read in one statement (one snapshot: a fold committing
    meanwhile is seen wholly or not at all)."""
    column, place, counted = DIMENSION_COLUMNS[dimension]
    rows = select(
        B.business_date, column, func.sum(B.clicks), cast(null(), Text).label("kinds")
    ).where(
        B.campaign_id == campaign_id,
        B.business_date >= first,
        B.business_date <= last,
        B.counted.is_(counted),
    )
    deltas = select(
        D.business_date, cast(null(), column.type), cast(null(), Integer), D.kinds
    ).where(D.campaign_id == campaign_id, D.business_date >= first, D.business_date <= last)
    values: Counter[str] = Counter()
    per_day: Counter[date] = Counter()
    pending: list[tuple[int, date, str]] = []
    read = union_all(rows.group_by(B.business_date, column), deltas)
    for day, value, n, kinds in await session.execute(read):
        if kinds is None:
            values[str(value)] += int(n)
            per_day[day] += int(n)
        else:
            pending.append((campaign_id, day, kinds))
    for key, n in moves_of(pending).items():
        if key[2] is counted:
            values[str(key[place])] += n
            per_day[key[1]] += n
    return values, per_day


# ---------------------------------------------------------------- recalibration


async def lock_breakdowns(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> dict[BreakdownKey, int]:
    """The chunk's rows, locked in key order (after its campaign and day rows), with its
    deltas folded into them first."""
    await fold_campaigns(session, campaign_ids)
    columns = [B.__table__.c[k] for k in KEYS]
    rows = await session.execute(
        select(*columns, B.clicks)
        .where(B.campaign_id.in_(campaign_ids))
        .order_by(*columns)
        .with_for_update()
    )
    return {_key(row[:-1]): int(row[-1]) for row in rows}


async def count_breakdowns(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> Counter[BreakdownKey]:
    """What the chunk's logs say the rows should hold, their agents read from their
    User-Agents. Logs without a classification (from before it existed, or while it was
    off: no referrer host) are in no row."""
    L = InteractionLog
    columns = (L.campaign_id, L.business_date, L.counted, L.user_agent, L.referrer_host)
    result = await session.execute(
        select(*columns, func.count())
        .where(L.campaign_id.in_(campaign_ids), L.referrer_host.is_not(None))
        .group_by(*columns)
    )
    moves: Counter[BreakdownKey] = Counter()
    for cid, day, counted, user_agent, referrer, n in result:
        a = classify(user_agent)
        kind = (a.device, a.os, a.browser, referrer, a.bot_name or "")
        moves[int(cid), day, bool(counted), *kind] += int(n)
    return moves


def _key(row: Sequence[Any]) -> BreakdownKey:
    cid, day, counted, device, os, browser, referrer, bot = row
    return (int(cid), day, bool(counted), device, os, browser, referrer, bot)


async def fix_breakdowns(
    session: AsyncSession,
    stored: dict[BreakdownKey, int],
    actual: Counter[BreakdownKey],
    drifts: list[dict[str, Any]],
) -> None:
    """Make the rows say what the logs say: correct, add, or delete (no log supports
    them); each difference is recorded as a drift."""
    missing: list[dict[str, Any]] = []
    for key in sorted(set(stored) | set(actual)):
        have, want = stored.get(key, 0), actual.get(key, 0)
        if have == want:
            continue
        entity = f"{key[0]}@{key[1].isoformat()}"
        drifts.append(drift("campaign_breakdown", entity, _field(key), have, want))
        if key not in stored:
            missing.append({**dict(zip(KEYS, key, strict=True)), "clicks": want})
            continue
        where = [B.__table__.c[name] == value for name, value in zip(KEYS, key, strict=True)]
        if want:
            await session.execute(update(B).where(*where).values(clicks=want))
        else:
            await session.execute(delete(B).where(*where))
    if missing:
        await session.execute(insert(B), missing)


def _field(key: BreakdownKey) -> str:
    """A row's kind of visitor in words: `counted:phone/iOS/LINE/line.me`, or
    `bot:LINE:bot/Other/FacebookBot/direct` for bots' clicks kept out of the counts."""
    _, _, counted, device, os, browser, referrer, bot = key
    prefix = "counted" if counted else f"bot:{bot}"
    return f"{prefix}:{device}/{os}/{browser}/{referrer}"
