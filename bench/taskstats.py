"""Task-rollup benchmark on PostgreSQL (issue 14): two tables. `python -m bench.taskstats`
prints them.

1. The daily scan (`taskstats.service.scan`) of one day holding 1,000,000 completions over
   10,000 tasks by 50,000 promoters, every figure present (the verification details, already
   in the completions' count columns), no callback_url: its seconds against the seed's loop
   on the same data ("数据聚合逻辑": per task, load its completions, build Python sets per
   platform, sum the details in Python, upsert its row; one task after another), in two
   rounds whose order alternates, every run's `task_daily_stats` rows compared with the
   first scan's. Then a rescan with nothing changed, and a scan with a callback_url on
   every tenth task (their callbacks put in the outbox, not sent).
2. Webhook deliveries: N messages enqueued to one endpoint in one transaction, then
   `deliver_due(concurrency=c)` to a local receiver answering 204 (served in a thread of
   this process) at once, and again to one answering after 50 ms (as a remote partner
   would); deliveries/s per c, and whether the receiver got every message exactly once (by
   webhook-id) with a valid signature.

The data are loaded with INSERT … SELECT over generate_series inside PostgreSQL, rows in
the order of their completion times (a task's completions spread over the table, as they
arrive). Every database is created for the run and dropped after it.

Overrides: BENCH_TASKSTATS_COMPLETIONS (1,000,000), BENCH_TASKSTATS_TASKS (10,000),
BENCH_TASKSTATS_PROMOTERS (50,000), BENCH_TASKSTATS_ROUNDS (2: rounds of the scan and the
loop, the order alternating), BENCH_WEBHOOK_MESSAGES (5,000 per run),
BENCH_WEBHOOK_SLOW_MESSAGES (500 per run; 0 skips the delayed receiver),
BENCH_WEBHOOK_DELAY_MS (50), BENCH_WEBHOOK_CONCURRENCY ("1,8,32"); BENCH_POSTGRES_URL,
BENCH_KEEP_DB=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.harness import (
    Table,
    TempDatabase,
    env_int,
    log,
    machine_load,
    postgres_version,
    quiet_logs,
    run_fast,
    temp_database,
)

GOAL_SCAN_S = 30.0
DAY = date(2024, 12, 9)  # the seed's example day
ZONE = "Asia/Shanghai"  # the server's default time zone: completed_date is local to it
AGENTS = 7  # agent_node values; every 20th promoter has none
NEIGHBOURS = 300  # a task's completions come from a window of this many promoters
CALLBACK_EVERY = 10  # the third scan: a callback_url on every tenth task
CALLBACK_URL = "http://127.0.0.1:9/x2c/callback"  # never called: the scan only enqueues
SITE_NAME = "DramaRelayBot"


@dataclass(frozen=True)
class Sizes:
    completions: int
    tasks: int
    promoters: int
    rounds: int
    messages: int
    slow_messages: int
    delay_ms: int
    concurrency: tuple[int, ...]

    @classmethod
    def from_env(cls) -> Sizes:
        levels = os.environ.get("BENCH_WEBHOOK_CONCURRENCY", "1,8,32")
        return cls(
            completions=env_int("BENCH_TASKSTATS_COMPLETIONS", 1_000_000),
            tasks=env_int("BENCH_TASKSTATS_TASKS", 10_000),
            promoters=env_int("BENCH_TASKSTATS_PROMOTERS", 50_000),
            rounds=max(1, env_int("BENCH_TASKSTATS_ROUNDS", 2)),
            messages=env_int("BENCH_WEBHOOK_MESSAGES", 5_000),
            slow_messages=env_int("BENCH_WEBHOOK_SLOW_MESSAGES", 500),
            delay_ms=env_int("BENCH_WEBHOOK_DELAY_MS", 50),
            concurrency=tuple(int(c) for c in levels.split(",")),
        )


@dataclass(frozen=True)
class Cpu:
    """CPU use over a phase as percentages of one core: this process (the scan, the loop,
    or the deliverer with its receiver thread) and the PostgreSQL backends of the
    benchmark's own database (the server is shared with other work)."""

    own: float
    postgres: float

    def __str__(self) -> str:
        return f"this process {self.own:.0f}%, its database's backends {self.postgres:.0f}%"

    @staticmethod
    def combined(uses: Sequence[tuple[Cpu, float]]) -> Cpu:
        """Several phases' use (each with its seconds) as one."""
        total = sum(seconds for _, seconds in uses) or 1.0
        return Cpu(
            sum(cpu.own * seconds for cpu, seconds in uses) / total,
            sum(cpu.postgres * seconds for cpu, seconds in uses) / total,
        )


def _backend_ticks(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database`, found by its
    process title (`postgres: <user> <database> <client> …`)."""
    ticks: dict[int, float] = {}
    per_second = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres:") or f" {database} " not in title:
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks[int(entry.name)] = (int(fields[11]) + int(fields[12])) / per_second
    return ticks


class PhaseMeter:
    """Measures a phase's `Cpu`. A backend that exits during the phase takes its ticks with
    it (a pool closing overflow connections), so the PostgreSQL figure is a lower bound."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._began = 0.0
        self._own = 0.0
        self._backends: dict[int, float] = {}

    def start(self) -> None:
        self._backends = _backend_ticks(self.database)
        self._own = time.process_time()
        self._began = time.perf_counter()

    def stop(self) -> Cpu:
        elapsed = time.perf_counter() - self._began
        own = time.process_time() - self._own
        now = _backend_ticks(self.database)
        postgres = sum(t - self._backends.get(pid, 0.0) for pid, t in now.items())
        return Cpu(100 * own / elapsed, 100 * postgres / elapsed)


# ---------------------------------------------------------------- 1. the bulk load

_PROMOTERS_SQL = """
INSERT INTO task_users (external_id, name, agent_node, created_at)
SELECT 'bench-promoter-' || i, 'Promoter ' || i,
       CASE WHEN i % 20 = 0 THEN NULL ELSE 'agent-' || (i % $2::int) END,
       now() AT TIME ZONE 'UTC'
FROM generate_series(1, $1::int) AS i
"""

_TASKS_SQL = """
INSERT INTO tasks (project_id, title, duration, callback_url, status, owner_id, created_at,
                   updated_at)
SELECT md5('bench-project-' || (i % 400))::uuid::text, 'Task ' || i,
       (ARRAY[7, 14, 30])[1 + i % 3], NULL, 'active', NULL,
       now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
FROM generate_series(1, $1::int) AS i
"""

# Tasks drawn with random()², so a few tasks have thousands of completions and the last
# ones tens; a task's promoters come from a window of NEIGHBOURS ids, so the same promoter
# completes a task more than once and on several platforms (accounts are deduplicated).
# Douyin brings five figures, YouTube and TikTok three; every seventh completion has no
# comment_count (absent in the details, 0 in the column, as the API stores it).
_COMPLETIONS_SQL = """
INSERT INTO task_completions (external_id, task_id, user_id, platform, submission_link,
                              verification_details, completed_at, completed_date,
                              stats_source, view_count, like_count, comment_count,
                              share_count, collect_count, batch_token, created_at)
WITH picked AS (
    SELECT i,
           1 + floor((random() ^ 2) * $2::int)::int AS task,
           (ARRAY['youtube', 'tiktok', 'douyin'])[1 + floor(random() * 3)::int] AS platform,
           floor(random() * $6::int)::int AS neighbour,
           $4::timestamp + random() * interval '1 day' AS at,
           floor(random() * 20000)::bigint AS views,
           random() AS r
    FROM generate_series(1, $1::int) AS i
), figured AS (
    SELECT p.*,
           1 + (p.task::bigint * 4999 + p.neighbour) % $3::int AS user_id,
           floor(p.views * p.r / 10)::bigint AS likes,
           CASE WHEN p.i % 7 = 0 THEN NULL ELSE floor(p.views * p.r / 50)::bigint END
               AS comments,
           CASE WHEN p.platform = 'douyin' THEN floor(p.views * p.r / 80)::bigint END AS shares,
           CASE WHEN p.platform = 'douyin' THEN floor(p.views * p.r / 60)::bigint END
               AS collects
    FROM picked p
)
SELECT 'bench-completion-' || i, task, user_id, platform,
       CASE platform
           WHEN 'youtube' THEN 'https://www.youtube.com/watch?v=' || substr(md5(i::text), 1, 11)
           WHEN 'tiktok' THEN 'https://www.tiktok.com/@u/video/' || (7300000000000000000 + i)
           ELSE 'https://www.douyin.com/video/' || (7400000000000000000 + i)
       END,
       json_strip_nulls(json_build_object(
           'view_count', views, 'like_count', likes, 'comment_count', comments,
           'share_count', shares, 'collect_count', collects)),
       at, $5::date, 'details', views, likes, coalesce(comments, 0), coalesce(shares, 0),
       coalesce(collects, 0), 'bench-load', now() AT TIME ZONE 'UTC'
FROM figured
ORDER BY at, i
"""


def day_start_utc(day: date) -> datetime:
    """Midnight of `day` in the server's zone, as the naive UTC the columns store."""
    local = datetime.combine(day, datetime.min.time(), ZoneInfo(ZONE))
    return local.astimezone(UTC).replace(tzinfo=None)


async def bulk_load(db: TempDatabase, sizes: Sizes) -> float:
    """Promoters, tasks and the day's completions, then VACUUM ANALYZE; the seconds."""
    began = time.perf_counter()
    conn = await asyncpg.connect(db.dsn)
    try:
        # A throwaway database: no fsync wait per statement, no per-row FK triggers (the
        # rows reference each other correctly by construction).
        await conn.execute(
            "SET synchronous_commit = off; SET session_replication_role = replica;"
            " SET work_mem = '256MB'; SET maintenance_work_mem = '256MB'"
        )
        await conn.fetchval("SELECT setseed(0.20241209)")
        await conn.execute(_PROMOTERS_SQL, sizes.promoters, AGENTS)
        await conn.execute(_TASKS_SQL, sizes.tasks)
        counts = await conn.fetchrow(
            "SELECT (SELECT max(id) FROM task_users) AS promoters,"
            " (SELECT max(id) FROM tasks) AS tasks"
        )
        assert counts is not None
        assert (counts["promoters"], counts["tasks"]) == (sizes.promoters, sizes.tasks), (
            "promoter and task ids must be 1..n in a fresh database"
        )
        log(f"loaded {sizes.promoters:,} promoters, {sizes.tasks:,} tasks; loading completions")
        await conn.execute(
            _COMPLETIONS_SQL,
            sizes.completions,
            sizes.tasks,
            sizes.promoters,
            day_start_utc(DAY),
            DAY,
            NEIGHBOURS,
        )
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM ANALYZE")
        # Flush the load's pages and WAL now, so that no checkpoint of the load's making
        # runs through the first measured scan.
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return time.perf_counter() - began


# ---------------------------------------------------------------- 1. our scan


@dataclass
class ScanRun:
    seconds: float
    cpu: Cpu
    tasks: int
    written: int
    unchanged: int
    callbacks: int
    fetched: int
    failed: int
    requests: int

    def summary(self) -> str:
        return (
            f"{self.tasks:,} tasks: {self.written:,} rows written, {self.unchanged:,} "
            f"unchanged, {self.callbacks:,} callbacks, {self.fetched} fetched, "
            f"{self.failed} failed, {self.requests} upstream requests"
        )


async def time_scan(db: TempDatabase) -> ScanRun:
    """One `scan()` of DAY with its own engine, secret box and video client (from the
    default settings: no figure is missing, so nothing is fetched)."""
    from tallyhub.core.crypto import SecretBox, generate_key
    from tallyhub.core.db import Database
    from tallyhub.taskstats.client import VideoStatsClient
    from tallyhub.taskstats.config import TaskstatsSettings
    from tallyhub.taskstats.service import ScanContext, scan

    database = Database(db.url)
    try:
        async with VideoStatsClient(TaskstatsSettings()) as client:
            context = ScanContext(database, SecretBox([generate_key()]), client, SITE_NAME)
            meter = PhaseMeter(db.name)
            meter.start()
            began = time.perf_counter()
            outcome = await scan(context, DAY)
            seconds = time.perf_counter() - began
            cpu = meter.stop()
            requests = client.requests_made
    finally:
        await database.dispose()
    return ScanRun(
        seconds=seconds,
        cpu=cpu,
        tasks=outcome.tasks,
        written=outcome.tasks - outcome.unchanged - len(outcome.errors),
        unchanged=outcome.unchanged,
        callbacks=outcome.callbacks,
        fetched=outcome.fetched,
        failed=len(outcome.errors),
        requests=requests,
    )


# ---------------------------------------------------------------- 1. the seed's loop


def _figure_names() -> tuple[str, ...]:
    from tallyhub.taskstats.models import DAILY_FIGURES

    return DAILY_FIGURES


_SEED_TASKS_SQL = """
SELECT t.id, t.project_id, t.duration, t.callback_url
FROM tasks t
WHERE t.id IN (SELECT DISTINCT task_id FROM task_completions WHERE completed_date = $1)
ORDER BY t.id
"""

_SEED_COMPLETIONS_SQL = """
SELECT user_id, platform, verification_details, submission_link
FROM task_completions
WHERE task_id = $1 AND completed_date = $2
"""


def _seed_upsert_sql() -> str:
    names = _figure_names()
    columns = ", ".join(names)
    values = ", ".join(f"${n + 3}" for n in range(len(names)))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names)
    return f"""
INSERT INTO task_daily_stats (task_id, stats_date, {columns}, webhook_sent, retry_count,
                              scanned_at)
VALUES ($1, $2, {values}, false, 0, now() AT TIME ZONE 'UTC')
ON CONFLICT (task_id, stats_date) DO UPDATE
SET {updates}, webhook_sent = false, webhook_sent_at = NULL, webhook_response = NULL,
    retry_count = 0, scanned_at = EXCLUDED.scanned_at
"""


def seed_aggregate(records: Sequence[asyncpg.Record]) -> dict[str, int]:
    """The seed's 数据聚合逻辑: accounts as Python sets of user ids (overall and per
    platform), each completion's verification details added up per platform."""
    from tallyhub.taskstats.models import PLATFORM_FIELDS

    figures = dict.fromkeys(_figure_names(), 0)
    accounts: dict[str, set[int]] = {prefix: set() for prefix, _ in PLATFORM_FIELDS.values()}
    users: set[int] = set()
    for user_id, platform, details, link in records:
        prefix, names = PLATFORM_FIELDS[platform]
        users.add(user_id)
        accounts[prefix].add(user_id)
        if details is None:  # the seed would fetch it here; this data set has every figure
            raise RuntimeError(f"completion of {link} has no figures; the load gives all")
        counts = json.loads(details)
        for name in names:
            figures[f"{prefix}_{name}_count"] += counts.get(f"{name}_count") or 0
    figures["total_account_count"] = len(users)
    figures["completion_count"] = len(records)
    for prefix, members in accounts.items():
        figures[f"{prefix}_account_count"] = len(members)
    return figures


@dataclass
class LoopRun:
    seconds: float = 0.0
    cpu: Cpu | None = None
    tasks: int = 0
    read: float = 0.0
    python: float = 0.0
    write: float = 0.0

    @staticmethod
    def mean(runs: Sequence[LoopRun]) -> LoopRun:
        count = len(runs) or 1
        return LoopRun(
            seconds=sum(r.seconds for r in runs) / count,
            tasks=runs[0].tasks if runs else 0,
            read=sum(r.read for r in runs) / count,
            python=sum(r.python for r in runs) / count,
            write=sum(r.write for r in runs) / count,
        )

    def split(self) -> str:
        return (
            f"reading completions {self.read:.1f} s, Python sets and sums {self.python:.1f} s, "
            f"upserts {self.write:.1f} s"
        )


async def _seed_loop(conn: asyncpg.Connection, run: LoopRun) -> None:
    upsert = _seed_upsert_sql()
    names = _figure_names()
    perf = time.perf_counter
    for task in await conn.fetch(_SEED_TASKS_SQL, DAY):
        began = perf()
        records = await conn.fetch(_SEED_COMPLETIONS_SQL, task["id"], DAY)
        read = perf()
        figures = seed_aggregate(records)
        summed = perf()
        # One statement, committed on its own, per task (the seed's UPSERT per task).
        await conn.execute(upsert, task["id"], DAY, *(figures[n] for n in names))
        run.read += read - began
        run.python += summed - read
        run.write += perf() - summed
        run.tasks += 1


async def time_seed_loop(db: TempDatabase) -> LoopRun:
    """The seed's scan over the same day, on one asyncpg connection (no ORM: the cheapest
    way the seed's loop could talk to PostgreSQL)."""
    run = LoopRun()
    conn = await asyncpg.connect(db.dsn)
    try:
        meter = PhaseMeter(db.name)
        meter.start()
        began = time.perf_counter()
        await _seed_loop(conn, run)
        run.seconds = time.perf_counter() - began
        run.cpu = meter.stop()
    finally:
        await conn.close()
    return run


# ---------------------------------------------------------------- 1. comparing the rows

SNAPSHOT = "bench_scan_rows"


def _day_literal() -> str:
    return f"DATE '{DAY.isoformat()}'"


async def _execute(db: TempDatabase, *statements: str) -> None:
    conn = await asyncpg.connect(db.dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def keep_snapshot(db: TempDatabase) -> None:
    """Keep the first scan's rows of DAY in a table of their own, for every later run to
    be compared with."""
    columns = ", ".join(("task_id", "stats_date", *_figure_names()))
    await _execute(
        db,
        f"DROP TABLE IF EXISTS {SNAPSHOT}",
        f"CREATE TABLE {SNAPSHOT} AS SELECT {columns} FROM task_daily_stats"
        f" WHERE stats_date = {_day_literal()}",
    )


async def clear_day(db: TempDatabase) -> None:
    """Delete DAY's rows, so that the next run writes every row into an empty day."""
    await _execute(
        db,
        f"DELETE FROM task_daily_stats WHERE stats_date = {_day_literal()}",
        "VACUUM ANALYZE task_daily_stats",
    )


@dataclass
class Comparison:
    rows: int
    snapshot: int
    only_here: int
    only_snapshot: int
    completions: int

    @property
    def identical(self) -> bool:
        return self.rows == self.snapshot and self.only_here == 0 == self.only_snapshot

    def text(self) -> str:
        verdict = "yes" if self.identical else "NO"
        return (
            f"{verdict}: {self.rows:,} rows against {self.snapshot:,}; {self.only_here} only "
            f"in one, {self.only_snapshot} only in the other; completion_count sums to "
            f"{self.completions:,}"
        )


async def compare_with_snapshot(db: TempDatabase) -> Comparison:
    """task_daily_stats of DAY against the first scan's rows, every figure, both ways."""
    columns = ", ".join(("task_id", "stats_date", *_figure_names()))
    here = f"SELECT {columns} FROM task_daily_stats WHERE stats_date = {_day_literal()}"
    there = f"SELECT {columns} FROM {SNAPSHOT}"
    conn = await asyncpg.connect(db.dsn)
    try:
        row = await conn.fetchrow(
            f"""
            SELECT (SELECT count(*) FROM ({here}) a) AS rows,
                   (SELECT count(*) FROM {SNAPSHOT}) AS snapshot,
                   (SELECT count(*) FROM ({here} EXCEPT ALL {there}) b) AS only_here,
                   (SELECT count(*) FROM ({there} EXCEPT ALL {here}) c) AS only_snapshot,
                   (SELECT coalesce(sum(completion_count), 0) FROM ({here}) d) AS completions
            """
        )
    finally:
        await conn.close()
    assert row is not None
    return Comparison(*(int(value) for value in row.values()))


async def add_callbacks(db: TempDatabase) -> int:
    """A callback_url on every tenth task; the day's tasks that have one."""
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute(
            "UPDATE tasks SET callback_url = $1 WHERE id % $2::int = 0",
            CALLBACK_URL,
            CALLBACK_EVERY,
        )
        count: int = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE callback_url IS NOT NULL AND id IN"
            " (SELECT task_id FROM task_completions WHERE completed_date = $1)",
            DAY,
        )
        return count
    finally:
        await conn.close()


async def outbox_size(db: TempDatabase) -> tuple[int, int]:
    """(messages, pending deliveries) in the outbox."""
    conn = await asyncpg.connect(db.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM webhook_messages) AS messages,"
            " (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["messages"]), int(row["pending"])


# ---------------------------------------------------------------- 1. the rounds


@dataclass
class ScanResults:
    version: str = ""
    load_seconds: float = 0.0
    ours: list[ScanRun] = field(default_factory=list)
    loops: list[LoopRun] = field(default_factory=list)
    checks: list[Comparison] = field(default_factory=list)  # every run after the first
    rescan: ScanRun | None = None
    with_callbacks: ScanRun | None = None
    callback_tasks: int = 0
    callbacks_check: Comparison | None = None
    outbox: tuple[int, int] = (0, 0)


async def _scan_round(db: TempDatabase, results: ScanResults, loop_first: bool) -> None:
    """(a) and (b) once each on an empty day, in the order given; each run's rows are
    compared with the first scan's."""
    for loop in (True, False) if loop_first else (False, True):
        await clear_day(db)
        if loop:
            results.loops.append(await time_seed_loop(db))
            log(f"seed's loop: {results.loops[-1].seconds:.1f} s")
        else:
            results.ours.append(await time_scan(db))
            log(f"scan: {results.ours[-1].seconds:.1f} s ({results.ours[-1].summary()})")
        if len(results.ours) == 1 and not loop:
            await keep_snapshot(db)
        else:
            results.checks.append(await compare_with_snapshot(db))
            log(f"rows identical to the first scan's: {results.checks[-1].text()}")


async def _rescan_and_callbacks(db: TempDatabase, results: ScanResults) -> None:
    results.rescan = await time_scan(db)
    log(f"rescan: {results.rescan.seconds:.1f} s ({results.rescan.summary()})")
    results.callback_tasks = await add_callbacks(db)
    await clear_day(db)
    results.with_callbacks = await time_scan(db)
    results.callbacks_check = await compare_with_snapshot(db)
    results.outbox = await outbox_size(db)
    log(f"scan with callbacks: {results.with_callbacks.seconds:.1f} s")


async def measure_scan(sizes: Sizes) -> ScanResults:
    """Load, then `rounds` rounds of (a) and (b), the order alternating from one round to
    the next (a first in the first round, whose rows all others are compared with); then
    a rescan of the last rows, and a scan with callbacks."""
    from tallyhub import migrate

    results = ScanResults()
    async with temp_database("taskstats") as db:
        results.version = await postgres_version(db.dsn)
        await asyncio.to_thread(migrate.upgrade, db.url)
        results.load_seconds = await bulk_load(db, sizes)
        log(f"loaded {sizes.completions:,} completions in {results.load_seconds:.1f} s")
        for n in range(sizes.rounds):
            await _scan_round(db, results, loop_first=n % 2 == 1)
        await _rescan_and_callbacks(db, results)
    return results


# ---------------------------------------------------------------- 1. the table


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _seconds(values: Sequence[float]) -> str:
    rounds = ", ".join(f"{v:.1f}" for v in values)
    return f"{_mean(values):.1f} s" + (f" (rounds: {rounds} s)" if len(values) > 1 else "")


def _checks(r: ScanResults, sizes: Sizes) -> dict[str, bool]:
    """What each run must have done: the scans wrote every task's row and fetched nothing;
    every run's rows equal the first scan's; the rescan wrote nothing; the callback scan
    put one callback per task with a callback_url in the outbox."""
    assert r.rescan is not None and r.with_callbacks is not None
    assert r.callbacks_check is not None
    return {
        "scans": all(
            run.written == run.tasks == sizes.tasks and run.requests == 0 for run in r.ours
        ),
        "identical": bool(r.checks) and all(check.identical for check in r.checks),
        "rescan": r.rescan.unchanged == r.rescan.tasks and r.rescan.callbacks == 0,
        "callbacks": r.with_callbacks.callbacks == r.callback_tasks == r.outbox[0] == r.outbox[1]
        and r.callbacks_check.identical,
    }


def _add_comparison(table: Table, r: ScanResults, checks: dict[str, bool]) -> None:
    ours = [run.seconds for run in r.ours]
    loops = [run.seconds for run in r.loops]
    table.add(
        "(a) scan(), set-based, no callback_url",
        _seconds(ours),
        f"≤ {GOAL_SCAN_S:.0f} s (every round)",
        max(ours) <= GOAL_SCAN_S,
    )
    table.add(
        "    outcome (each round)", r.ours[0].summary(), "every row, none fetched", checks["scans"]
    )
    table.add("    CPU (% of one core)", str(Cpu.combined([(x.cpu, x.seconds) for x in r.ours])))
    table.add("(b) the seed's loop, per task and per completion", _seconds(loops))
    table.add("    where its time goes (mean)", LoopRun.mean(r.loops).split())
    table.add(
        "    CPU (% of one core)",
        str(Cpu.combined([(x.cpu, x.seconds) for x in r.loops if x.cpu is not None])),
    )
    rounds = ", ".join(f"{b / a:.1f}" for a, b in zip(ours, loops, strict=False))
    ratio = _mean(loops) / _mean(ours) if ours else 0.0
    table.add("ratio b/a", f"{ratio:.1f} ×" + (f" (rounds: {rounds})" if len(ours) > 1 else ""))
    last = r.checks[-1]
    table.add(
        "identical task_daily_stats rows",
        f"{len(r.checks)} later runs against the first scan's; last: {last.text()}",
        "equal",
        checks["identical"],
    )


def _add_extras(table: Table, r: ScanResults, checks: dict[str, bool]) -> None:
    assert r.rescan is not None and r.with_callbacks is not None
    assert r.callbacks_check is not None
    table.add("rescan, nothing changed", f"{r.rescan.seconds:.1f} s")
    table.add("    outcome", r.rescan.summary(), "nothing written", checks["rescan"])
    table.add(
        f"scan with a callback_url on every {CALLBACK_EVERY}th task",
        f"{r.with_callbacks.seconds:.1f} s",
    )
    table.add(
        "    outcome",
        f"{r.with_callbacks.summary()}; outbox {r.outbox[0]:,} messages, {r.outbox[1]:,} "
        f"pending deliveries; rows identical to the first scan's: "
        f"{'yes' if r.callbacks_check.identical else 'NO'}",
        f"{r.callback_tasks:,} callbacks",
        checks["callbacks"],
    )


def scan_table(r: ScanResults, sizes: Sizes, load_before: str, load_after: str) -> str:
    table = Table(
        f"taskstats scan — PostgreSQL {r.version}, one day of {sizes.completions:,} "
        f"completions over {sizes.tasks:,} tasks by {sizes.promoters:,} promoters, "
        "figures present"
    )
    checks = _checks(r, sizes)
    _add_comparison(table, r, checks)
    _add_extras(table, r, checks)
    table.note(
        f"machine: {load_before} before, {load_after} after; the machine is shared with "
        "other work, so figures may be depressed"
    )
    table.note(
        f"data: loaded in {r.load_seconds:.0f} s with INSERT … SELECT over generate_series, "
        "rows in completion-time order, then VACUUM ANALYZE and CHECKPOINT; tasks drawn "
        "with random()² (a few with thousands of completions, the last ones tens), each "
        f"task's promoters from a window of {NEIGHBOURS}, {AGENTS} agent_nodes; every figure "
        "in verification_details and in the count columns (stats_source 'details')"
    )
    table.note(
        "(a) is `taskstats.service.scan()` as the job runs it (chunks of 200 tasks, one "
        "grouped statement each, rows upserted in one statement, the agents' day rebuilt), "
        "video client from the default settings; (b) reads the day's tasks, then per task "
        "its completions, builds Python sets and sums of the parsed verification_details, "
        "and upserts its row in a statement committed on its own, on one asyncpg "
        "connection (no ORM); (b) does not build the agents' day"
    )
    table.note(
        f"{sizes.rounds} round(s) of (a) and (b), the order alternating (a first in the "
        "first round); each run writes into an empty day (the rows deleted and the table "
        "vacuumed before it), and every run's rows are compared, every figure, with the "
        "first scan's. The rescan reads the last run's rows and writes none; the last scan "
        "starts from an empty day and puts one callback per task with a callback_url in "
        f"the outbox ({CALLBACK_URL}, never sent: no deliverer runs)"
    )
    return table.render()


# ---------------------------------------------------------------- 2. webhook deliveries


@dataclass
class Call:
    """One call the receiver got: its signature headers, and its body once read (None
    when the sender gave up before the receiver had read it)."""

    headers: dict[str, str]
    body: bytes | None = None


@dataclass
class Received:
    calls: list[Call] = field(default_factory=list)


def receiver_app(received: Received) -> Starlette:
    """The partner's receiver: records each call as it arrives and answers 204, after
    `delay_ms` (a query parameter of the endpoint's URL) when it is given."""

    async def hook(request: Request) -> Response:
        call = Call(
            {
                name: request.headers.get(name, "")
                for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
            }
        )
        received.calls.append(call)
        call.body = await request.body()
        delay_ms = int(request.query_params.get("delay_ms", "0"))
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return Response(status_code=204)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def callback_payload(n: int) -> dict[str, Any]:
    """A partner callback of the seed's shape (every platform), for message n."""
    return {
        "site_name": SITE_NAME,
        "event": "task.daily_stats",
        "stats": [
            {
                "project_id": "550e8400-e29b-41d4-a716-446655440000",
                "task_id": n,
                "duration": 30,
                "stats_date": DAY.isoformat(),
                "account_count": 15,
                "yt_account_count": 5,
                "yt_view_count": 1200 + n,
                "yt_like_count": 80,
                "tt_account_count": 6,
                "tt_view_count": 3500,
                "tt_like_count": 150,
                "dy_account_count": 4,
                "dy_view_count": 8000,
                "dy_like_count": 320,
                "dy_comment_count": 45,
                "dy_share_count": 28,
                "dy_collect_count": 62,
            }
        ],
    }


@dataclass(frozen=True)
class Receiver:
    """One endpoint of the receiver: its label, URL and how many messages a run sends."""

    label: str
    url: str
    messages: int


@dataclass
class DeliveryRun:
    receiver: Receiver
    concurrency: int
    enqueue_seconds: float
    seconds: float
    cpu: Cpu
    counts: dict[str, int]
    sessions: int = 0  # connections to the database that ended during the run
    stored: Stored | None = None
    exact: str = ""
    exact_ok: bool = False

    @property
    def rate(self) -> float:
        return self.counts.get("succeeded", 0) / self.seconds if self.seconds else 0.0


async def enqueue_messages(database: Any, box: Any, url: str, start: int, count: int) -> list[str]:
    """`count` messages to the endpoint of `url`, in one transaction; their ids."""
    from tallyhub.core.webhooks import enqueue, ensure_endpoint

    async def write(session: AsyncSession) -> list[str]:
        endpoint = await ensure_endpoint(session, box, url, None, description="bench receiver")
        ids = []
        for n in range(start, start + count):
            message = await enqueue(
                session,
                endpoints=[endpoint],
                event_type="task.daily_stats",
                payload=callback_payload(n),
                source="bench",
                source_key=str(n),
            )
            ids.append(message.id)
        return ids

    ids: list[str] = await database.run(write)
    return ids


@dataclass(frozen=True)
class Stored:
    """What the outbox recorded of a run's messages."""

    succeeded: int
    attempts: int
    failures: list[str]  # "<count> × <status or error>" of the attempts that failed


def check_received(
    received: Received, ids: list[str], secret: str, stored: Stored
) -> tuple[bool, str]:
    """Every message received exactly once with a valid signature, and every delivery
    recorded as succeeded."""
    from tallyhub.core.webhooks import InvalidSignature, verify

    seen = Counter(call.headers["webhook-id"] for call in received.calls)
    invalid = unread = 0
    for call in received.calls:
        if call.body is None:
            unread += 1
            continue
        try:
            verify(secret, call.headers, call.body)
        except InvalidSignature:
            invalid += 1
    once = set(seen) == set(ids) and all(n == 1 for n in seen.values())
    twice = sum(1 for n in seen.values() if n > 1)
    ok = once and invalid == 0 == unread and stored.succeeded == len(ids)
    text = (
        f"{'yes' if ok else 'NO'}: {len(received.calls):,} calls, {len(seen):,} distinct ids "
        f"of {len(ids):,} sent, {twice} received more than once, {invalid} bad signatures, "
        f"{unread} left unread; {stored.succeeded:,} deliveries succeeded"
    )
    return ok, text


async def stored_outcome(db: TempDatabase, ids: list[str]) -> Stored:
    """The deliveries succeeded and attempts recorded of these messages, and what the
    failed attempts (retried by the schedule) met."""
    conn = await asyncpg.connect(db.dsn)
    try:
        succeeded: int = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries"
            " WHERE message_id = ANY($1::text[]) AND status = 'succeeded'",
            ids,
        )
        rows = await conn.fetch(
            """
            SELECT coalesce(a.status_code::text, left(a.error, 120)) AS what,
                   count(*) AS n,
                   bool_or(a.status_code BETWEEN 200 AND 299) AS ok
            FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.message_id = ANY($1::text[])
            GROUP BY 1 ORDER BY 2 DESC
            """,
            ids,
        )
    finally:
        await conn.close()
    failures = [f"{row['n']:,} × {row['what']}" for row in rows if not row["ok"]]
    return Stored(succeeded, sum(int(row["n"]) for row in rows), failures)


async def ended_sessions(db: TempDatabase) -> int:
    """Sessions of this database that have ended so far (PostgreSQL counts them when they
    close): the pool's connection churn."""
    conn = await asyncpg.connect(db.dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return count
    finally:
        await conn.close()


async def endpoint_secret(database: Any, box: Any, url: str) -> str:
    from sqlalchemy import select

    from tallyhub.core.webhooks import WebhookEndpoint

    async def read(session: AsyncSession) -> str:
        endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.url == url))
        assert endpoint is not None
        secret: str = box.decrypt(endpoint.secret)
        return secret

    secret: str = await database.run(read, readonly=True)
    return secret


async def delivery_run(
    db: TempDatabase,
    database: Any,
    box: Any,
    target: tuple[Receiver, Received],
    concurrency: int,
    first: int,
) -> DeliveryRun:
    """Enqueue the receiver's messages, then time `deliver_due` sending them all."""
    from tallyhub.core.webhooks import deliver_due

    receiver, received = target
    began = time.perf_counter()
    ids = await enqueue_messages(database, box, receiver.url, first, receiver.messages)
    enqueue_seconds = time.perf_counter() - began
    received.calls.clear()  # the receiver is idle between runs
    sessions = await ended_sessions(db)
    meter = PhaseMeter(db.name)
    meter.start()
    began = time.perf_counter()
    counts = await deliver_due(database, box, concurrency=concurrency)
    seconds = time.perf_counter() - began
    cpu = meter.stop()
    await asyncio.sleep(0.5)  # closed connections' sessions are counted as they end
    # The two probes' own sessions (this one's ends after it reads) are not the run's.
    sessions = await ended_sessions(db) - sessions - 1
    run = DeliveryRun(receiver, concurrency, enqueue_seconds, seconds, cpu, counts, sessions)
    secret = await endpoint_secret(database, box, receiver.url)
    run.stored = await stored_outcome(db, ids)
    run.exact_ok, run.exact = check_received(received, ids, secret, run.stored)
    return run


async def measure_webhooks(sizes: Sizes) -> tuple[str, list[DeliveryRun]]:
    """A fresh database (the scan's outbox stays out of it); per receiver (answering at
    once, or after a delay like a remote partner) one run per concurrency level, each
    with its own messages."""
    from tallyhub import migrate
    from tallyhub.core.crypto import SecretBox, generate_key
    from tallyhub.core.db import Database
    from tallyhub.core.simulation import running

    received = Received()
    runs: list[DeliveryRun] = []
    async with temp_database("webhooks") as db:
        version = await postgres_version(db.dsn)
        await asyncio.to_thread(migrate.upgrade, db.url)
        database = Database(db.url)
        box = SecretBox([generate_key()])
        try:
            with running(receiver_app(received)) as base:
                receivers = [Receiver("answering at once", f"{base}/hook", sizes.messages)]
                if sizes.slow_messages and sizes.delay_ms:
                    receivers.append(
                        Receiver(
                            f"answering after {sizes.delay_ms} ms",
                            f"{base}/hook?delay_ms={sizes.delay_ms}",
                            sizes.slow_messages,
                        )
                    )
                for receiver in receivers:
                    for level in sizes.concurrency:
                        first = sum(r.receiver.messages for r in runs)
                        target = (receiver, received)
                        run = await delivery_run(db, database, box, target, level, first)
                        log(
                            f"webhooks, {receiver.label}, concurrency {level}: "
                            f"{run.rate:,.0f}/s; {run.exact}"
                        )
                        runs.append(run)
        finally:
            await database.dispose()
    return version, runs


def _add_run(table: Table, run: DeliveryRun, base: DeliveryRun) -> None:
    c, count = run.concurrency, run.receiver.messages
    table.add(
        f"  enqueue {count:,} messages, one transaction",
        f"{run.enqueue_seconds:.1f} s ({count / run.enqueue_seconds:,.0f} /s)",
    )
    table.add(
        f"  deliver_due(concurrency={c})", f"{run.rate:,.0f} deliveries/s ({run.seconds:.1f} s)"
    )
    if run is not base:
        ratio = run.rate / base.rate if base.rate else 0.0
        table.add(f"    ratio to concurrency={base.concurrency}", f"{ratio:.2f} ×")
    table.add("    CPU (% of one core)", str(run.cpu))
    table.add("    database connections opened and closed", f"{run.sessions:,}")
    table.add("    exactly once", run.exact, "every id once", run.exact_ok)
    if run.stored is not None:
        failed = "; failed and retried: " + ", ".join(run.stored.failures)
        table.add(
            "    attempts recorded",
            f"{run.stored.attempts:,} for {count:,} messages"
            + (failed if run.stored.failures else ""),
        )


def webhook_table(version: str, runs: list[DeliveryRun], load: str) -> str:
    table = Table(
        f"webhook deliveries — PostgreSQL {version}, one endpoint per receiver, each run its "
        "own messages"
    )
    base: DeliveryRun | None = None
    for run in runs:
        if base is None or base.receiver != run.receiver:
            base = run
            table.add(f"receiver {run.receiver.label}", f"{run.receiver.messages:,} per run")
        _add_run(table, run, base)
    table.note(f"machine: {load}; the machine is shared with other work")
    table.note(
        "each run enqueues its own messages (`core.webhooks.enqueue`, one endpoint, in one "
        "transaction), then times one `deliver_due(db, box, concurrency=c)` call with its "
        "defaults otherwise (claims of 100 with FOR UPDATE SKIP LOCKED, httpx, each attempt "
        "recorded in its own transaction, default pool of 10 + 20); deliveries/s counts "
        "the succeeded ones"
    )
    table.note(
        "the receiver (Starlette on uvicorn, answering 204, after a sleep for the delayed "
        "endpoint) runs in a thread of this process (`core.simulation.running`): its CPU is "
        "counted in 'this process'. Exactness from the receiver's webhook-id headers, each "
        "signature checked with `core.webhooks.verify`, and the deliveries' and attempts' "
        "rows. The backends' CPU reads low when pool connections close in the window (a "
        "backend that exits takes its ticks with it); 'connections opened and closed' counts "
        "the sessions of the database that ended during the run (pg_stat_database)"
    )
    return table.render()


# ---------------------------------------------------------------- entry point


async def bench() -> str:
    quiet_logs()
    sizes = Sizes.from_env()
    started = time.perf_counter()
    load_before = machine_load()
    scanned = await measure_scan(sizes)
    load_between = machine_load()
    version, runs = await measure_webhooks(sizes)
    load_after = machine_load()
    first = scan_table(scanned, sizes, load_before, load_between)
    second = webhook_table(version, runs, f"{load_between} before, {load_after} after")
    took = f"whole benchmark {time.perf_counter() - started:.0f} s"
    return f"{first}\n\n{second}\n- {took}"


def run() -> str:
    """Measure and return the tables (the entry point `python -m bench` uses)."""
    return run_fast(bench)


if __name__ == "__main__":
    print(run())
