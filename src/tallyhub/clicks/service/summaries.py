"""Per-user click summaries and their tag sets (the seed's `ryan_click_demo`), as a click
batch moves them, and as the API and recalibration read them.

A summary's tag set grows by one row per tag under a unique key; rows are added only by a
transaction that holds the summary's row (the summary upsert takes it first), and that
transaction also writes the summary's comma string, so the string is always complete.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tallyhub.clicks.models import ClickSummary, ClickSummaryTag
from tallyhub.clicks.service.events import ClickEvent
from tallyhub.core.bulk import RowSet, bucketed, unnest_arrays
from tallyhub.core.columns import utcnow

SummaryKey = tuple[int, str, int]  # (campaign_id, line_id, source_campaign_id)
TagKey = tuple[int, str, int, str]
FirstSeen = tuple[datetime, int, str]  # a tag's first click: (time, position, event id)
Executor = AsyncSession | AsyncConnection
K = TypeVar("K")

# Keys per `IN` list where the set of keys has no bound of its own (a recalibration chunk's
# summaries): a tuple IN list grows PostgreSQL's expression stack with every key (8,192
# three-column keys overflowed it), and SQLite and MariaDB cap a statement's variables and
# size. Slices of this many keep each statement small and its prepared form reused.
KEYS_PER_STATEMENT = 512


def in_slices(keys: Iterable[K]) -> Iterator[list[K]]:
    """The distinct keys in `bucketed()` lists of at most KEYS_PER_STATEMENT each."""
    items: list[K] = sorted(set(keys))  # type: ignore[type-var]
    for start in range(0, len(items), KEYS_PER_STATEMENT):
        yield bucketed(items[start : start + KEYS_PER_STATEMENT])


def table_of(model: Any) -> Table:
    table: Table = model.__table__
    return table


SUMMARIES = table_of(ClickSummary)

_TAG_STRING = (
    update(SUMMARIES)
    .where(
        SUMMARIES.c.campaign_id == bindparam("b_cid"),
        SUMMARIES.c.line_id == bindparam("b_uid"),
        SUMMARIES.c.source_campaign_id == bindparam("b_src"),
    )
    .values(last_click_tag=bindparam("b_tags"), tags_seen_until=bindparam("b_until"))
)


@dataclass(slots=True)
class SummaryMoves:
    """What a batch does to its summaries, written with the batch's other rows: `rows`,
    the upsert that adds total_clicks and keeps the later last_clicked_at (a replayed
    click can be older), then `tag_rows`, the tags not known to exist, inserted-or-nothing
    under their unique key while the upsert holds their summaries. `tag_strings()` then
    gives the new comma strings, written with the batch's last statement."""

    rows: RowSet
    tag_rows: RowSet
    tag_keys: list[TagKey]  # every tag key of the batch
    new_tags: dict[TagKey, FirstSeen]  # the tags not known to exist
    tagged: set[SummaryKey]  # summaries that may get a tag


def move_summaries(
    dialect: str, events: Sequence[ClickEvent], known_tags: Collection[TagKey]
) -> SummaryMoves:
    """Plan the summary moves of a batch's clicks. `known_tags` are tag rows known to
    exist (committed). The upsert row-locks every summary of the batch (sorted) before
    any tag is touched; where tags may be added it returns their current tag strings."""
    clicks, last, first_tag = _tally_clicks(events)
    new_tags = {key: seen for key, seen in sorted(first_tag.items()) if key not in known_tags}
    tagged = {key[:3] for key in new_tags}
    returning = bool(tagged) and dialect != "mysql"
    rows = _summary_upsert(clicks, last, returning=returning)
    return SummaryMoves(rows, _new_tag_rows(new_tags), list(first_tag), new_tags, tagged)


def _tally_clicks(
    events: Sequence[ClickEvent],
) -> tuple[Counter[SummaryKey], dict[SummaryKey, datetime], dict[TagKey, FirstSeen]]:
    """One pass over the clicks with a user: clicks per summary, each summary's last
    click, and each tag's first sighting (time, position, event)."""
    clicks: Counter[SummaryKey] = Counter()
    last: dict[SummaryKey, datetime] = {}
    first_tag: dict[TagKey, FirstSeen] = {}
    for event in events:
        if not event.line_id:
            continue
        key = (event.campaign_id, event.line_id, event.source_campaign_id)
        clicks[key] += 1
        if key not in last or event.triggered_at > last[key]:
            last[key] = event.triggered_at
        for position, tag in enumerate(event.tags):
            seen = (event.triggered_at, position, event.event_id)
            tag_key = (*key, tag)
            if tag_key not in first_tag or seen < first_tag[tag_key]:
                first_tag[tag_key] = seen
    return clicks, last, first_tag


def _summary_upsert(
    clicks: Counter[SummaryKey], last: dict[SummaryKey, datetime], *, returning: bool
) -> RowSet:
    now = utcnow()
    return RowSet(
        SUMMARIES,
        [
            {
                "campaign_id": cid,
                "line_id": uid,
                "source_campaign_id": src,
                "total_clicks": n,
                "last_clicked_at": last[cid, uid, src],
                "last_click_tag": None,
                "created_at": now,
            }
            for (cid, uid, src), n in sorted(clicks.items())
        ],
        keys=("campaign_id", "line_id", "source_campaign_id"),
        increment=("total_clicks",),
        later=("last_clicked_at",),
        returning=_TAG_STRING_NAMES if returning else (),
    )


def _new_tag_rows(new_tags: dict[TagKey, FirstSeen]) -> RowSet:
    # A row that exists already (a tag this process has not seen, or one a hand-edited
    # string already lists) is left alone instead of failing the batch.
    return RowSet(
        ClickSummaryTag,
        [
            {
                "campaign_id": cid,
                "line_id": uid,
                "source_campaign_id": src,
                "tag": tag,
                "first_seen_at": seen[0],
                "position": seen[1],
                "first_event_id": seen[2],
            }
            for (cid, uid, src, tag), seen in new_tags.items()
        ],
        keys=("campaign_id", "line_id", "source_campaign_id", "tag"),
    )


async def tag_strings(
    conn: AsyncConnection, moves: SummaryMoves, returned: Sequence[tuple[Any, ...]]
) -> RowSet:
    """The new comma strings of the summaries that got tags, as an update set for the
    batch's last statement. `returned` is what the summary upsert returned: each string
    as it was under the lock (MySQL has no RETURNING: read back).

    Tags are only ever added by a transaction that holds their summary's row (the summary
    upsert took it; recalibration locks it too), and that transaction also writes the
    string. So the string read under the lock is the complete set, and nobody can add a
    tag meanwhile. Tags first seen after every stored one are appended; otherwise (a
    replayed click) the string is rebuilt from the tag rows in first-seen order, here."""
    strings: list[dict[str, Any]] = []
    if not moves.tagged:
        return _strings(strings)
    rows: Sequence[Any] = returned
    if not moves.rows.returning:
        read: list[Any] = []
        for keys in in_slices(moves.tagged):
            read += (
                await conn.execute(
                    select(*_TAG_STRING_COLUMNS).where(
                        tuple_(
                            SUMMARIES.c.campaign_id,
                            SUMMARIES.c.line_id,
                            SUMMARIES.c.source_campaign_id,
                        ).in_(keys)
                    )
                )
            ).all()
        rows = read
    current = {
        (cid, uid, src): (tags, until)
        for cid, uid, src, tags, until in rows
        if (cid, uid, src) in moves.tagged
    }
    added: dict[SummaryKey, list[tuple[FirstSeen, str]]] = defaultdict(list)
    for (cid, uid, src, tag), seen in moves.new_tags.items():
        present, _ = current.get((cid, uid, src), (None, None))
        if present is None or tag not in present.split(","):
            added[cid, uid, src].append((seen, tag))
    resort: list[SummaryKey] = []
    for key, tags in sorted(added.items()):
        tags.sort()
        present, until = current.get(key, (None, None))
        if until is not None and tags[0][0][0] <= until:
            resort.append(key)
            continue
        strings.append(
            {
                "campaign_id": key[0],
                "line_id": key[1],
                "source_campaign_id": key[2],
                "last_click_tag": ",".join([*filter(None, [present]), *(t for _, t in tags)]),
                "tags_seen_until": tags[-1][0][0],
            }
        )
    if resort:
        await rebuild_tag_strings(conn, resort)
    return _strings(strings)


def _strings(rows: list[dict[str, Any]]) -> RowSet:
    return RowSet(
        SUMMARIES,
        rows,
        keys=("campaign_id", "line_id", "source_campaign_id"),
        replace=("last_click_tag", "tags_seen_until"),
        update=True,
    )


def _summary_key_columns() -> Any:
    return tuple_(
        ClickSummaryTag.campaign_id, ClickSummaryTag.line_id, ClickSummaryTag.source_campaign_id
    )


_TAG_STRING_NAMES = (
    "campaign_id",
    "line_id",
    "source_campaign_id",
    "last_click_tag",
    "tags_seen_until",
)
_TAG_STRING_COLUMNS = tuple(SUMMARIES.c[name] for name in _TAG_STRING_NAMES)
_TAG_ROW_COLUMNS = (
    ClickSummaryTag.campaign_id,
    ClickSummaryTag.line_id,
    ClickSummaryTag.source_campaign_id,
    ClickSummaryTag.tag,
    ClickSummaryTag.first_seen_at,
)
_FIRST_SEEN_ORDER = (ClickSummaryTag.first_seen_at, ClickSummaryTag.position, ClickSummaryTag.id)


_SUMMARY_KEYS = unnest_arrays(
    table_of(ClickSummaryTag), ("campaign_id", "line_id", "source_campaign_id"), "k"
)
# PostgreSQL: the tag rows of any number of summaries in one statement, the keys joined in
# as three arrays (a tuple IN list is planned as one OR per key: 290 ms for 512 keys).
_TAG_ROWS_OF_KEYS = (
    text(
        "SELECT t.campaign_id, t.line_id, t.source_campaign_id, t.tag, t.first_seen_at "
        f"FROM click_summary_tags AS t JOIN {_SUMMARY_KEYS.source} "
        "AS k(campaign_id, line_id, source_campaign_id) "
        "ON t.campaign_id = k.campaign_id AND t.line_id = k.line_id "
        "AND t.source_campaign_id = k.source_campaign_id "
        "ORDER BY t.first_seen_at, t.position, t.id"
    )
    .bindparams(*_SUMMARY_KEYS.params)
    .columns(*_TAG_ROW_COLUMNS)
)


def _dialect(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


async def tag_rows(
    executor: Executor, summaries: Sequence[SummaryKey]
) -> dict[SummaryKey, list[tuple[str, datetime]]]:
    """Each summary's tags with their first-seen time, in first-seen order. PostgreSQL
    reads them in one statement; elsewhere in slices of keys (a summary's rows all come
    from one slice, so each list is in order)."""
    tags: dict[SummaryKey, list[tuple[str, datetime]]] = defaultdict(list)
    if not summaries:
        return tags
    if _dialect(executor) == "postgresql":
        keys = [
            {"campaign_id": cid, "line_id": uid, "source_campaign_id": src}
            for cid, uid, src in sorted(set(summaries))
        ]
        reads = [await executor.execute(_TAG_ROWS_OF_KEYS, _SUMMARY_KEYS.arrays(keys))]
    else:
        reads = [
            await executor.execute(
                select(*_TAG_ROW_COLUMNS)
                .where(_summary_key_columns().in_(keys))
                .order_by(*_FIRST_SEEN_ORDER)
            )
            for keys in in_slices(summaries)
        ]
    for rows in reads:
        for cid, uid, src, tag, seen_at in rows:
            tags[cid, uid, src].append((tag, seen_at))
    return tags


async def tag_rows_of_campaigns(
    executor: Executor, campaign_ids: Sequence[int]
) -> dict[SummaryKey, list[tuple[str, datetime]]]:
    """`tag_rows()` of every summary of these campaigns (a bounded list), in one read."""
    tags: dict[SummaryKey, list[tuple[str, datetime]]] = defaultdict(list)
    rows = await executor.execute(
        select(*_TAG_ROW_COLUMNS)
        .where(ClickSummaryTag.campaign_id.in_(campaign_ids))
        .order_by(*_FIRST_SEEN_ORDER)
    )
    for cid, uid, src, tag, seen_at in rows:
        tags[cid, uid, src].append((tag, seen_at))
    return tags


async def tags_of(
    executor: Executor, summaries: Sequence[SummaryKey]
) -> dict[SummaryKey, list[str]]:
    """Each summary's tags in first-seen order."""
    rows = await tag_rows(executor, summaries)
    return {key: [tag for tag, _ in tags] for key, tags in rows.items()}


async def rebuild_tag_strings(executor: Executor, summaries: Sequence[SummaryKey]) -> None:
    """Set `last_click_tag` (and `tags_seen_until`) from the tag rows. Called by a
    transaction that holds these summary rows: every committed tag is visible to it."""
    rows = await tag_rows(executor, summaries)
    await executor.execute(
        _TAG_STRING,
        [
            {
                "b_cid": cid,
                "b_uid": uid,
                "b_src": src,
                "b_tags": ",".join(tag for tag, _ in rows.get((cid, uid, src), [])) or None,
                "b_until": max((seen for _, seen in rows.get((cid, uid, src), [])), default=None),
            }
            for cid, uid, src in summaries
        ],
    )
