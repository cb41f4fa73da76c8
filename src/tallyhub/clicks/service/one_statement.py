"""A usual click batch on PostgreSQL: one statement, committed by PostgreSQL itself.

The general path (clicks.py) is a transaction of four round trips: BEGIN, the rows, the
counters, COMMIT. In a busy server each round trip also waits for a turn of the event
loop that serves the HTTP requests, and the hottest rows (a campaign, its day) stay
locked from the counters statement until the COMMIT has come back. Here the whole batch
is a single statement sent outside a transaction: one round trip, and the campaign and
day rows are held only while PostgreSQL finishes the statement and flushes its commit.

What the general path computes between its statements is done in SQL instead:

- the users new to a campaign are the rows the campaign-users insert really inserted
  (its RETURNING), counted into `campaigns.unique_users` by the counters update;
- a summary's tag string is extended inside its own upsert, under its row lock: the
  tags of the batch that the stored string does not list yet, in first-seen order. When
  one of them was first seen before the newest stored tag (a slower batch of another
  process, with an older click), the string would have to be re-sorted from the tag rows,
  which one statement cannot see consistently: the statement then fails on purpose,
  nothing of it is written, and the batch takes the general path (`TagsOutOfOrder`).

Locks are taken in the same order as on the general path: campaign users, summaries,
their tags, then the campaigns (in id order) and their days (the breakdown deltas are
plain inserts, which lock nothing another batch takes). The
statement's main part reads the campaign-users insert, so that runs first; PostgreSQL
then runs the other data-modifying CTEs from the last listed to the first, which is why
they are listed hottest first.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, bindparam, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tallyhub.clicks.models import (
    CampaignBreakdownDelta,
    CampaignDailyStats,
    CampaignUser,
    ClickSummary,
    ClickSummaryTag,
    InteractionLog,
    Message,
)
from tallyhub.clicks.service.breakdowns import DELTA_COLUMNS
from tallyhub.clicks.service.summaries import FirstSeen, SummaryKey, SummaryMoves, table_of
from tallyhub.core.bulk import RowSet, unnest_arrays

OUT_OF_ORDER = "tallyhub: tag first seen before the newest stored one"

_USER_COLUMNS = ("campaign_id", "line_id", "first_event_id", "first_clicked_at")
_SUMMARY_COLUMNS = (
    "campaign_id",
    "line_id",
    "source_campaign_id",
    "total_clicks",
    "last_clicked_at",
    "last_click_tag",
    "tags_seen_until",
    "created_at",
)
_TAG_COLUMNS = (
    "campaign_id",
    "line_id",
    "source_campaign_id",
    "tag",
    "first_seen_at",
    "position",
    "first_event_id",
)
_LOG_COLUMNS = (
    "event_id",
    "line_id",
    "campaign_id",
    "source_campaign_id",
    "interaction_type",
    "interaction_value",
    "tags",
    "triggered_at",
    "business_date",
    "user_agent",
    "counted",
    "referrer_host",
)
_MESSAGE_COLUMNS = (
    "member_id",
    "campaign_id",
    "direction",
    "message_type",
    "content",
    "event_id",
    "created_at",
)
_DAILY_COLUMNS = ("campaign_id", "business_date", "clicks")


class TagsOutOfOrder(Exception):
    """A summary's new tag was first seen before its newest stored tag: the batch must be
    written by the general path, which re-sorts the string. Nothing was written."""


def _names(columns: tuple[str, ...]) -> str:
    return ", ".join(columns)


_USERS = unnest_arrays(table_of(CampaignUser), _USER_COLUMNS, "u")
_SUMMARIES = unnest_arrays(table_of(ClickSummary), _SUMMARY_COLUMNS, "s")
_TAGS = unnest_arrays(table_of(ClickSummaryTag), _TAG_COLUMNS, "g")
_LOGS = unnest_arrays(table_of(InteractionLog), _LOG_COLUMNS, "l")
_MESSAGES = unnest_arrays(table_of(Message), _MESSAGE_COLUMNS, "m")
_DAILY = unnest_arrays(table_of(CampaignDailyStats), _DAILY_COLUMNS, "d")
_DELTAS = unnest_arrays(table_of(CampaignBreakdownDelta), DELTA_COLUMNS, "b")


@lru_cache(maxsize=1)
def _statement() -> TextClause:
    users, summaries, tags = _USERS.source, _SUMMARIES.source, _TAGS.source
    logs, messages, daily = _LOGS.source, _MESSAGES.source, _DAILY.source
    deltas = _DELTAS.source
    # A CTE can read only the CTEs listed before it; the ones nothing reads run after the
    # main part, from the last listed to the first. Hence: what is read first, then the
    # writes hottest first.
    sql = f"""
WITH
users AS (
  INSERT INTO campaign_users AS t ({_names(_USER_COLUMNS)}) SELECT * FROM {users}
  ON CONFLICT (campaign_id, line_id) DO NOTHING
  RETURNING t.campaign_id
),
tags_in AS (
  SELECT * FROM {tags} AS g({_names(_TAG_COLUMNS)})
),
locked AS (
  SELECT c.id FROM campaigns AS c WHERE c.id = ANY(CAST(:campaign_ids AS INTEGER[]))
  ORDER BY c.id FOR UPDATE
),
daily AS (
  INSERT INTO campaign_daily_stats AS t ({_names(_DAILY_COLUMNS)})
  SELECT * FROM {daily}
  ON CONFLICT (campaign_id, business_date) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks
),
counters AS (
  UPDATE campaigns AS t
  SET clicked_count = t.clicked_count + u.n,
      unique_users = t.unique_users
        + (SELECT count(*) FROM users WHERE users.campaign_id = t.id),
      bot_clicks = t.bot_clicks + u.b
  FROM unnest(CAST(:campaign_ids AS INTEGER[]), CAST(:campaign_clicks AS INTEGER[]),
              CAST(:campaign_bots AS INTEGER[])) AS u(id, n, b),
       locked AS l
  WHERE t.id = u.id AND l.id = u.id
),
messages AS (
  INSERT INTO messages ({_names(_MESSAGE_COLUMNS)}) SELECT * FROM {messages}
),
logs AS (
  INSERT INTO component_interaction_logs ({_names(_LOG_COLUMNS)}) SELECT * FROM {logs}
),
deltas AS (
  INSERT INTO campaign_breakdown_deltas ({_names(DELTA_COLUMNS)}) SELECT * FROM {deltas}
),
tags AS (
  INSERT INTO click_summary_tags AS t ({_names(_TAG_COLUMNS)}) SELECT * FROM {tags}
  ON CONFLICT (campaign_id, line_id, source_campaign_id, tag) DO NOTHING
),
summaries AS (
{_summary_upsert(summaries)}
)
SELECT count(*) FROM users
"""
    return text(sql).bindparams(
        bindparam("campaign_ids"),
        bindparam("campaign_clicks"),
        bindparam("campaign_bots"),
        *(
            p
            for u in (_USERS, _SUMMARIES, _TAGS, _LOGS, _MESSAGES, _DAILY, _DELTAS)
            for p in u.params
        ),
    )


def _summary_upsert(summaries: str) -> str:
    """The summaries' upsert, which extends each tag string under the summary's row lock
    with the batch's tags (`tags_in`) the string does not list yet, in first-seen order;
    or fails on purpose (`OUT_OF_ORDER`) when one was first seen before the newest stored
    tag."""
    return f"""\
  INSERT INTO click_summaries AS t ({_names(_SUMMARY_COLUMNS)}) SELECT * FROM {summaries}
  ON CONFLICT (campaign_id, line_id, source_campaign_id) DO UPDATE SET
    total_clicks = t.total_clicks + EXCLUDED.total_clicks,
    last_clicked_at = greatest(t.last_clicked_at, EXCLUDED.last_clicked_at),
    (last_click_tag, tags_seen_until) = (
      SELECT
        CASE
          WHEN count(*) = 0 THEN t.last_click_tag
          WHEN t.tags_seen_until IS NOT NULL AND min(g.first_seen_at) <= t.tags_seen_until
            THEN CAST(concat('{OUT_OF_ORDER}: ', t.id) AS INTEGER)::text
          ELSE concat_ws(',', t.last_click_tag,
            string_agg(g.tag, ',' ORDER BY g.first_seen_at, g.position, g.first_event_id))
        END,
        CASE WHEN count(*) = 0 THEN t.tags_seen_until
          ELSE greatest(t.tags_seen_until, max(g.first_seen_at)) END
      FROM tags_in AS g
      WHERE g.campaign_id = t.campaign_id AND g.line_id = t.line_id
        AND g.source_campaign_id = t.source_campaign_id
        AND (t.last_click_tag IS NULL
             OR NOT g.tag = ANY(string_to_array(t.last_click_tag, ',')))
    )"""


async def write_batch(
    conn: AsyncConnection,
    *,
    users: RowSet,
    summaries: SummaryMoves,
    logs: RowSet,
    messages: RowSet,
    campaigns: RowSet,
    daily: RowSet,
    deltas: RowSet,
) -> None:
    """Write a batch's rows in one statement on a connection in autocommit mode. Raises
    `TagsOutOfOrder` (nothing written) when a summary's string would have to be
    re-sorted."""
    # A new summary's row is inserted with its tags already in its string.
    added: dict[SummaryKey, list[tuple[FirstSeen, str]]] = defaultdict(list)
    for (cid, uid, src, tag), seen in summaries.new_tags.items():
        added[cid, uid, src].append((seen, tag))
    summary_rows = []
    for row in summaries.rows.rows:
        tags = sorted(
            added.get((row["campaign_id"], row["line_id"], row["source_campaign_id"]), ())
        )
        summary_rows.append(
            {
                **row,
                "last_click_tag": ",".join(tag for _, tag in tags) or None,
                "tags_seen_until": tags[-1][0][0] if tags else None,
            }
        )
    params: dict[str, list[Any]] = {
        "campaign_ids": [row["id"] for row in campaigns.rows],
        "campaign_clicks": [row["clicked_count"] for row in campaigns.rows],
        "campaign_bots": [row["bot_clicks"] for row in campaigns.rows],
        **_USERS.arrays(users.rows),
        **_SUMMARIES.arrays(summary_rows),
        **_TAGS.arrays(summaries.tag_rows.rows),
        **_LOGS.arrays(logs.rows),
        **_MESSAGES.arrays(messages.rows),
        **_DAILY.arrays(daily.rows),
        **_DELTAS.arrays(deltas.rows),
    }
    try:
        await conn.execute(_statement(), params)
    except exc.DBAPIError as error:
        if OUT_OF_ORDER in str(error.orig):
            raise TagsOutOfOrder(str(error.orig)) from error
        raise
