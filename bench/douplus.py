"""DOU+ benchmark on PostgreSQL (issue 13): two tables. `python -m bench.douplus` prints them.

1. A full sync (orders in mode "full", their figures, the videos rollup: `sync_now`) of
   20 accounts × 2,000 orders from the simulator, served over real HTTP in this process,
   (a) as configured (page and account concurrency from `DouplusSettings`) against (b) one
   page at a time, one account at a time, every run on its own fresh database; every run
   must store exactly what `/__sim/totals` says.
2. The order list (`GET /api/douplus/orders`, the real server, sorted newest first) at
   100,000 orders with 10 windows each (1,000,000 `douplus_order_stats` rows): one
   account's first, middle and last page, the whole list's first and last, and the first
   page sorted by cost, each against the seed's query on the same data: the page joined to
   the window row whose `stat_time` is the correlated `MAX(stat_time)` of its order.

Overrides: BENCH_DOUPLUS_ACCOUNTS (20), BENCH_DOUPLUS_ORDERS (2,000 per account),
BENCH_DOUPLUS_ROUNDS (2 runs of each sync variant, in ABBA order),
BENCH_DOUPLUS_LIST_ORDERS (100,000), BENCH_DOUPLUS_LIST_ACCOUNTS (20), BENCH_DOUPLUS_WINDOWS
(10), BENCH_LIST_REQUESTS (100 per page, after 20 warm-up), BENCH_SEED_RUNS (50 per page at
most) and BENCH_SEED_SECONDS (6 per page at most, at least 3 runs); BENCH_POSTGRES_URL,
BENCH_KEEP_DB=1.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bench.harness import (
    HOST,
    CpuMeter,
    CpuUse,
    Server,
    Table,
    TempDatabase,
    build_request,
    env_float,
    env_int,
    log,
    machine_load,
    ms,
    percentile,
    postgres_version,
    quiet_logs,
    run_fast,
    sequential_latencies,
    server_dsn,
    temp_database,
)

GOAL_LIST_P95_S = 0.030
PAGE_SIZE = 50  # the API's default page
MIN_SEED_RUNS = 3
SLOW_STATEMENT_S = 0.1
# The simulated world: its seed, and a frozen clock, so both sync variants (and every run
# of the benchmark) read the same orders with the same figures.
SIM_SEED = 13
SIM_START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
SIM_APP = ("bench-app", "bench-secret")
# Our client's own rate limit, raised out of the way: what is measured is the sync, not
# the real API's allowance (the configured 10 requests a second).
BENCH_RATE = 100_000.0
SUMMED = (
    "stat_cost",
    "total_play",
    "custom_like",
    "dy_share",
    "dy_comment",
    "dp_target_convert_cnt",
)
FIGURES = (*SUMMED, "custom_convert_cost", "play_duration_5s_rank")


@dataclass(frozen=True)
class Sizes:
    accounts: int
    orders: int
    rounds: int
    list_orders: int
    list_accounts: int
    windows: int
    list_requests: int
    seed_runs: int
    seed_seconds: float

    @classmethod
    def from_env(cls) -> Sizes:
        return cls(
            accounts=env_int("BENCH_DOUPLUS_ACCOUNTS", 20),
            orders=env_int("BENCH_DOUPLUS_ORDERS", 2000),
            rounds=env_int("BENCH_DOUPLUS_ROUNDS", 2),
            list_orders=env_int("BENCH_DOUPLUS_LIST_ORDERS", 100_000),
            list_accounts=env_int("BENCH_DOUPLUS_LIST_ACCOUNTS", 20),
            windows=env_int("BENCH_DOUPLUS_WINDOWS", 10),
            list_requests=env_int("BENCH_LIST_REQUESTS", 100),
            seed_runs=env_int("BENCH_SEED_RUNS", 50),
            seed_seconds=env_float("BENCH_SEED_SECONDS", 6),
        )


# ---------------------------------------------------------------- 1. the full sync


class SlowStatements:
    """The statements of a sync that took SLOW_STATEMENT_S or longer at the driver: where a
    run that reads slower than its twin spent the difference."""

    def __init__(self, engine: Any) -> None:
        self.seen: list[tuple[float, str]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        if elapsed >= SLOW_STATEMENT_S:
            self.seen.append((elapsed, " ".join(statement.split())[:60]))

    def summary(self) -> str:
        if not self.seen:
            return "none"
        by_head: dict[str, list[float]] = {}
        for elapsed, head in self.seen:
            by_head.setdefault(head, []).append(elapsed)
        head, times = max(by_head.items(), key=lambda item: sum(item[1]))
        total = sum(elapsed for elapsed, _ in self.seen)
        return (
            f"{len(self.seen)} taking {total:.1f} s, most of it {len(times)} × `{head}…` "
            f"({sum(times):.1f} s)"
        )


@dataclass
class SyncRun:
    label: str
    page_concurrency: int
    account_concurrency: int
    seconds: float = 0.0
    orders: int = 0
    client_requests: int = 0
    sim_requests: dict[str, Any] = field(default_factory=dict)
    cpu: CpuUse | None = None
    slow: str = ""
    exact: str = ""
    exact_ok: bool = False

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0

    def requests(self) -> str:
        by_path = self.sim_requests.get("by_path", {})
        lists = sum(n for path, n in by_path.items() if path.endswith("/order/list/"))
        reports = sum(n for path, n in by_path.items() if path.endswith("/order/report/"))
        others = self.sim_requests.get("total", 0) - lists - reports
        return (
            f"{self.sim_requests.get('total', 0):,} answered by the simulator ({lists:,} list, "
            f"{reports:,} report, {others:,} other); {self.client_requests:,} sent by the client"
        )


@dataclass
class Variant:
    """One way of syncing, run `rounds` times, each on its own fresh database."""

    label: str
    page_concurrency: int
    account_concurrency: int
    runs: list[SyncRun] = field(default_factory=list)

    def new_run(self) -> SyncRun:
        run = SyncRun(self.label, self.page_concurrency, self.account_concurrency)
        self.runs.append(run)
        return run

    @property
    def seconds(self) -> float:
        return statistics.mean(run.seconds for run in self.runs)

    @property
    def rate(self) -> float:
        return statistics.mean(run.orders for run in self.runs) / self.seconds

    def each(self, what: Callable[[SyncRun], str]) -> str:
        """`what` of every run; said once when every run gives the same."""
        texts = [what(run) for run in self.runs]
        if len(set(texts)) == 1:
            return texts[0] + (" (every run)" if len(texts) > 1 else "")
        return "; ".join(f"run {n}: {text}" for n, text in enumerate(texts, 1))


def sync_settings(page_concurrency: int | None, account_concurrency: int | None) -> Any:
    """The configured DOU+ settings with the rate limit raised; the concurrencies replaced
    when given (None keeps the configured value)."""
    from tallyhub.douplus.config import DouplusSettings

    base = DouplusSettings(app_id=SIM_APP[0], app_secret=SIM_APP[1])
    upstream = base.upstream.model_copy(
        update={
            "rate_per_second": BENCH_RATE,
            "rate_burst": int(BENCH_RATE),
            "page_concurrency": page_concurrency or base.upstream.page_concurrency,
        }
    )
    return base.model_copy(
        update={
            "upstream": upstream,
            "account_concurrency": account_concurrency or base.account_concurrency,
        }
    )


async def connect_accounts(database: Any, box: Any, sim_url: str) -> dict[str, int]:
    """An owner (a users row) and every simulated account connected to it with the tokens
    `/__sim/accounts` gives; account id by aweme_sec_uid."""
    from tallyhub.core.auth import Principal, Role, create_user
    from tallyhub.douplus import service
    from tallyhub.douplus.client import Tokens

    async with httpx.AsyncClient(base_url=sim_url) as control:
        views = (await control.get("/__sim/accounts")).raise_for_status().json()
    user = await database.run(
        lambda s: create_user(s, "bench-owner", secrets.token_urlsafe(12), Role.admin)
    )
    owner = Principal(user.id, user.username, user.role)

    async def save(session: AsyncSession) -> dict[str, int]:
        ids: dict[str, int] = {}
        for view in views:
            tokens = Tokens(view["access_token"], view["expires_in"], view["refresh_token"], None)
            account, _ = await service.save_account(
                session, owner, box, view["aweme_sec_uid"], view["nickname"], tokens
            )
            ids[view["aweme_sec_uid"]] = account.id
        return ids

    ids: dict[str, int] = await database.run(save)
    return ids


_STORED_SQL = """
SELECT a.id,
       (SELECT count(*) FROM douplus_order o WHERE o.account_id = a.id) AS order_count,
       {orders},
       {days},
       {videos}
FROM douyin_account a WHERE a.id = ANY($1::int[])
"""
# What each stored place calls the summed figures, in SUMMED's order.
_VIDEO_NAMES = ("total_cost", "total_play", "total_like", "total_share", "total_comment",
                "total_convert")  # fmt: skip


def _sums(table: str, names: Sequence[str], alias: str, where: str) -> str:
    return ",\n       ".join(
        f"(SELECT coalesce(sum({name}), 0) FROM {table} WHERE {where}) AS {alias}_{figure}"
        for name, figure in zip(names, SUMMED, strict=True)
    )


def stored_sql() -> str:
    return _STORED_SQL.format(
        orders=_sums("douplus_order", SUMMED, "orders", "account_id = a.id"),
        days=_sums("douplus_account_daily", SUMMED, "days", "account_id = a.id"),
        videos=_sums(
            "douplus_video_stats_agg", _VIDEO_NAMES, "videos", "account_id = a.id AND is_latest"
        ),
    )


def _account_differences(row: Any, truth: dict[str, Any]) -> list[str]:
    """How an account's stored orders, days and latest video rows differ from the truth."""
    wrong = [] if row["order_count"] == truth["order_count"] else ["order_count"]
    for figure in SUMMED:
        expected = Decimal(str(truth[figure]))
        for place in ("orders", "days", "videos"):
            if Decimal(str(row[f"{place}_{figure}"])) != expected:
                wrong.append(f"{place}.{figure}")
    return wrong


async def check_exact(db: TempDatabase, sim_url: str, ids: dict[str, int]) -> tuple[str, bool]:
    """Every account's order count and summed figures, as stored on its orders, its days
    and its videos' latest rollup rows, against `/__sim/totals`."""
    async with httpx.AsyncClient(base_url=sim_url) as control:
        truths = {
            uid: (await control.get("/__sim/totals", params={"aweme_sec_uid": uid}))
            .raise_for_status()
            .json()
            for uid in ids
        }
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = {r["id"]: r for r in await conn.fetch(stored_sql(), list(ids.values()))}
    finally:
        await conn.close()
    bad = {uid: _account_differences(rows[i], truths[uid]) for uid, i in ids.items()}
    bad = {uid: wrong for uid, wrong in bad.items() if wrong}
    orders = sum(t["order_count"] for t in truths.values())
    cost = sum(Decimal(t["stat_cost"]) for t in truths.values())
    plays = sum(int(t["total_play"]) for t in truths.values())
    if bad:
        first = next(iter(bad.items()))
        return f"NO: {len(bad)} of {len(ids)} accounts differ, e.g. {first[0]}: {first[1]}", False
    return (
        f"yes: {orders:,} orders, ¥{cost:,} spent, {plays:,} plays; orders, account days and "
        f"latest video rows equal /__sim/totals for all {len(ids)} accounts",
        True,
    )


async def _sim_requests(sim_url: str, method: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim_url) as control:
        response = await control.request(method, "/__sim/requests")
        counts: dict[str, Any] = response.raise_for_status().json()
        return counts


async def timed_sync(database: Any, box: Any, sim: Any, run: SyncRun, ids: list[int]) -> None:
    """`sync_now(ctx, "full", ids, None)` with the run's concurrencies, timed, with the CPU
    this process (the sync and the simulator's thread) and PostgreSQL used meanwhile."""
    import os

    from tallyhub.douplus import service
    from tallyhub.douplus.client import DouplusClient
    from tallyhub.douplus.service import SyncContext

    settings = sync_settings(run.page_concurrency, run.account_concurrency)
    await _sim_requests(sim.url, "DELETE")
    slow = SlowStatements(database.engine)
    meter = CpuMeter(os.getpid())
    async with DouplusClient(settings, base_url=sim.url) as client:
        ctx = SyncContext(database, box, client, settings, clock=sim.clock.now)
        meter.start()
        began = time.perf_counter()
        counts = await service.sync_now(ctx, "full", ids, None)
        run.seconds = time.perf_counter() - began
        run.cpu = meter.stop()
        run.client_requests = client.requests_made
    run.slow = slow.summary()
    run.sim_requests = await _sim_requests(sim.url, "GET")
    if counts["ok"] != len(ids):
        raise RuntimeError(f"sync {run.label}: not every account synced: {counts}")
    run.orders = sum(o["fetched"] for o in counts["by_account"].values())


async def sync_variant(sim: Any, run: SyncRun) -> None:
    """One variant on its own fresh, migrated database."""
    from tallyhub import migrate
    from tallyhub.core.crypto import SecretBox, generate_key
    from tallyhub.core.db import Database

    async with temp_database(f"douplus_sync_{run.label}") as db:
        await asyncio.to_thread(migrate.upgrade, db.url)
        database = Database(db.url)
        try:
            box = SecretBox([generate_key()])
            ids = await connect_accounts(database, box, sim.url)
            log(f"sync {run.label}: {len(ids)} accounts connected; full sync")
            await timed_sync(database, box, sim, run, list(ids.values()))
            run.exact, run.exact_ok = await check_exact(db, sim.url, ids)
        finally:
            await database.dispose()
    log(f"sync {run.label}: {run.seconds:.1f} s, {run.rate:,.0f} orders/s; exact {run.exact_ok}")


@dataclass
class Sim:
    url: str
    clock: Any


async def measure_sync(sizes: Sizes) -> tuple[Variant, Variant]:
    """Both variants against one simulator, `rounds` times in ABBA order (a, b, b, a, …),
    so neither always runs first or on a machine the other has just warmed."""
    from tallyhub.core.simulation import SimClock, running
    from tallyhub.douplus import simulator

    clock = SimClock(SIM_START)
    app = simulator.create_app(
        seed=SIM_SEED,
        accounts=sizes.accounts,
        orders_per_account=sizes.orders,
        clock=clock,
        app_id=SIM_APP[0],
        app_secret=SIM_APP[1],
    )
    configured = sync_settings(None, None)
    a = Variant("configured", configured.upstream.page_concurrency, configured.account_concurrency)
    b = Variant("sequential", 1, 1)
    with running(app) as url:
        for round_number in range(sizes.rounds):
            for variant in (a, b) if round_number % 2 == 0 else (b, a):
                await sync_variant(Sim(url, clock), variant.new_run())
    return a, b


def sync_table(sizes: Sizes, version: str, variants: tuple[Variant, Variant]) -> Table:
    table = Table(
        f"douplus sync — PostgreSQL {version}, full sync of {sizes.accounts} accounts × "
        f"{sizes.orders:,} orders from the simulator over HTTP"
    )
    for letter, variant in zip("ab", variants, strict=True):
        runs = ", ".join(f"{run.seconds:.1f} s" for run in variant.runs)
        table.add(
            f"({letter}) {variant.label}: page_concurrency {variant.page_concurrency}, "
            f"account_concurrency {variant.account_concurrency}",
            f"{variant.seconds:.1f} s (mean of {len(variant.runs)}: {runs})",
        )
        table.add("    orders/s", f"{variant.rate:,.0f} /s")
        table.add("    requests", variant.each(SyncRun.requests))
        table.add(
            "    CPU, % of one core: this process (sync + simulator thread) / postgres (all)",
            variant.each(lambda run: _sync_cpu(run.cpu)),
        )
        table.add(f"    statements ≥ {SLOW_STATEMENT_S * 1000:.0f} ms", variant.each(_slow))
        exact = all(run.exact_ok for run in variant.runs)
        table.add("    stored = /__sim/totals", variant.each(_exact), "equal", exact)
    configured, sequential = variants
    table.add("ratio b/a (mean seconds)", f"{sequential.seconds / configured.seconds:.2f} ×")
    return table


def _slow(run: SyncRun) -> str:
    return run.slow


def _exact(run: SyncRun) -> str:
    return run.exact


def _sync_cpu(cpu: CpuUse | None) -> str:
    return "" if cpu is None else f"{cpu.server:.0f}% / {cpu.postgres:.0f}%"


async def autovacuum_setting() -> str:
    """The server's `autovacuum`: when off, tables filled by the sync are never analyzed
    during the run, and its lookups are planned without statistics."""
    conn = await asyncpg.connect(server_dsn())
    try:
        setting: str = await conn.fetchval("SHOW autovacuum")
        return setting
    finally:
        await conn.close()


def sync_notes(table: Table, autovacuum: str) -> None:
    table.note(
        f"the client's rate limit raised to {BENCH_RATE:,.0f} requests/s (rate_per_second and "
        "rate_burst) for both variants: the real API's allowance (configured: 10/s) is not "
        "what is measured; at 10/s the request count alone would set the time"
    )
    table.note(
        "one simulator (seed "
        f"{SIM_SEED}, clock frozen at {SIM_START:%Y-%m-%d %H:%M} UTC) served both variants "
        "with `tallyhub.core.simulation.running()`: a uvicorn thread of this process, so the "
        "simulator's CPU shares this process's GIL with the sync"
    )
    table.note(
        'a full sync is `sync_now(ctx, "full", account_ids, None)`: each account\'s order '
        "list walked to its end (100 a page), the report for its unsettled orders (100 ids "
        "a call, one at a time in either variant), then the videos rollup; every run on "
        "its own fresh database migrated with alembic; rounds in ABBA order"
    )
    table.note(
        f"PostgreSQL autovacuum is {autovacuum} on this server: nothing analyzes the sync's "
        "tables while they fill, as on any server whose autovacuum has not yet come round"
    )


# ---------------------------------------------------------------- 2. the order list

# Bulk load, consistent by construction: per-order parameters drawn once, every window row
# computed from them (cumulative figures growing to the last window), and each order's
# current figures copied from its last window row, as the sync keeps them.

_PARAMS_SQL = """
CREATE TEMP TABLE bench_params AS
SELECT i,
       (1851000000000000 + i)::text AS order_id,
       $1::int + (i - 1) % $2::int AS account_id,
       $3::timestamp - interval '6 hours' - random() * interval '60 days' AS created,
       (50 + floor(random() * 451))::int * 100 AS budget_fen,
       0.2 + random() * 0.8 AS spent,
       0.3 + random() * 1.2 AS play_per_fen,
       0.01 + random() * 0.05 AS like_rate,
       0.001 + random() * 0.007 AS share_rate,
       0.0005 + random() * 0.0035 AS comment_rate,
       CASE WHEN random() < 0.3 THEN 0 ELSE 0.0002 + random() * 0.0028 END AS convert_rate,
       round((0.15 + random() * 0.5)::numeric, 4) AS rank,
       floor(random() * $4::int)::int AS video
FROM generate_series(1, $5::int) AS i
"""

_WINDOWS_SQL = """
INSERT INTO douplus_order_stats (order_id, item_id, account_id, stat_time, stat_cost,
    total_play, custom_like, dy_share, dy_comment, dp_target_convert_cnt,
    custom_convert_cost, play_duration_5s_rank)
SELECT order_id, item_id, account_id, stat_time, cost_fen / 100.0, plays,
       floor(plays * like_rate), floor(plays * share_rate), floor(plays * comment_rate),
       converts,
       CASE WHEN converts > 0 THEN round(cost_fen / 100.0 / converts, 2) ELSE 0 END,
       rank
FROM (
    SELECT w.*, floor(w.cost_fen * w.play_per_fen)::bigint AS plays,
           floor(floor(w.cost_fen * w.play_per_fen) * w.convert_rate)::bigint AS converts
    FROM (
        SELECT p.*, (7500000000000000000 + p.account_id * 10000 + p.video)::text AS item_id,
               date_bin('5 minutes', p.created, timestamp '2000-01-01')
                   + k * interval '30 minutes' AS stat_time,
               floor(p.budget_fen * p.spent * k / $1::int)::bigint AS cost_fen
        FROM bench_params p CROSS JOIN generate_series(1, $1::int) AS k
    ) w
) f
ORDER BY stat_time, order_id
"""

_ORDERS_SQL = """
INSERT INTO douplus_order (order_id, account_id, item_id, task_id, status, budget, title,
    order_create_time, create_date, sync_version, last_sync_time, stats_settled,
    agg_pending, stat_time, stat_cost, total_play, custom_like, dy_share, dy_comment,
    dp_target_convert_cnt, custom_convert_cost, play_duration_5s_rank)
SELECT p.order_id, p.account_id, s.item_id, (2851000000000000 + p.i)::text,
       CASE p.i % 20 WHEN 0 THEN 'DELIVERING' WHEN 1 THEN 'UNDELIVERIED' ELSE 'DELIVERIED' END,
       p.budget_fen / 100.0, 'bench video ' || p.video || ' of account ' || p.account_id,
       p.created, ((p.created AT TIME ZONE 'UTC') AT TIME ZONE 'Asia/Shanghai')::date,
       1, $1::timestamp, p.i % 20 <> 0, false, s.stat_time, s.stat_cost, s.total_play,
       s.custom_like, s.dy_share, s.dy_comment, s.dp_target_convert_cnt,
       s.custom_convert_cost, s.play_duration_5s_rank
FROM bench_params p
JOIN douplus_order_stats s ON s.order_id = p.order_id
 AND s.stat_time = date_bin('5 minutes', p.created, timestamp '2000-01-01')
                   + $2::int * interval '30 minutes'
ORDER BY p.created, p.i
"""

_ACCOUNTS_SQL = """
INSERT INTO douyin_account (aweme_sec_uid, nickname, access_token, refresh_token, expires_at,
    status, owner_id, order_count, created_at, updated_at)
SELECT 'MS4wLjABAAAA-bench-' || k, 'bench account ' || k, 'not a token', 'not a token',
       $2::timestamp + interval '1 day', 'active', $1, 0, $2::timestamp, $2::timestamp
FROM generate_series(1, $3::int) AS k
"""


async def bulk_load(db: TempDatabase, sizes: Sizes, owner_id: int) -> float:
    """Accounts, orders and their windows with INSERT … SELECT inside PostgreSQL, then
    VACUUM ANALYZE; the seconds it took."""
    began = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute(
            "SET synchronous_commit = off; SET work_mem = '256MB';"
            " SET maintenance_work_mem = '256MB'"
        )
        await conn.fetchval("SELECT setseed(0.20261206)")
        await conn.execute(_ACCOUNTS_SQL, owner_id, now, sizes.list_accounts)
        low = await conn.fetchval("SELECT min(id) FROM douyin_account")
        videos = max(1, sizes.list_orders // sizes.list_accounts // 3)
        await conn.execute(_PARAMS_SQL, low, sizes.list_accounts, now, videos, sizes.list_orders)
        log(f"loading {sizes.list_orders * sizes.windows:,} window rows")
        await conn.execute(_WINDOWS_SQL, sizes.windows)
        log(f"loading {sizes.list_orders:,} orders with their last window's figures")
        await conn.execute(_ORDERS_SQL, now, sizes.windows)
        await conn.execute(
            "UPDATE douyin_account a SET order_count ="
            " (SELECT count(*) FROM douplus_order o WHERE o.account_id = a.id)"
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - began


# The seed's "典型查询" on the same page: each order of the page joined to its window row
# whose stat_time is the correlated MAX(stat_time) of that order, plus the page's total.
_SEED_SELECT = """
SELECT o.order_id, o.account_id, o.item_id, o.task_id, o.title, o.status, o.budget,
       o.order_create_time, o.sync_version, o.last_sync_time, s.stat_time,
       s.stat_cost, s.total_play, s.custom_like, s.dy_share, s.dy_comment,
       s.dp_target_convert_cnt, s.custom_convert_cost, s.play_duration_5s_rank
FROM douplus_order o
JOIN douplus_order_stats s ON s.order_id = o.order_id
 AND s.stat_time = (SELECT MAX(s2.stat_time) FROM douplus_order_stats s2
                    WHERE s2.order_id = s.order_id)
"""
_SEED_ORDER = {
    "-order_create_time": "o.order_create_time DESC, o.id DESC",
    "-stat_cost": "s.stat_cost DESC, o.id DESC",
}


@dataclass(frozen=True)
class ListCase:
    """One page of the list: its scope (one account or all), sort and page number."""

    label: str
    account_id: int | None
    sort: str
    page: int

    def path(self) -> str:
        scope = "" if self.account_id is None else f"account_id={self.account_id}&"
        return f"/api/douplus/orders?{scope}page={self.page}&page_size={PAGE_SIZE}&sort={self.sort}"

    def seed_sql(self) -> tuple[str, str, list[Any]]:
        """The seed's page query, its count query, and their arguments."""
        where = "" if self.account_id is None else "WHERE o.account_id = $3"
        page = f"{_SEED_SELECT}{where}\nORDER BY {_SEED_ORDER[self.sort]}\nLIMIT $1 OFFSET $2"
        count = "SELECT count(*) FROM douplus_order o " + where.replace("$3", "$1")
        offset = (self.page - 1) * PAGE_SIZE
        scope = [] if self.account_id is None else [self.account_id]
        return page, count, [PAGE_SIZE, offset, *scope]


@dataclass
class CaseResult:
    case: ListCase
    api: list[float] = field(default_factory=list)
    seed: list[float] = field(default_factory=list)
    same: str = ""

    def triple(self, values: list[float]) -> str:
        return " / ".join(ms(percentile(values, q)) for q in (50, 95, 99))

    def ratio(self) -> str:
        p50 = percentile(self.seed, 50) / percentile(self.api, 50)
        p95 = percentile(self.seed, 95) / percentile(self.api, 95)
        return f"p50 {p50:,.1f} ×, p95 {p95:,.1f} ×"


def list_cases(account_id: int, per_account: int, total: int) -> list[ListCase]:
    """The brief's pages (one account: first, middle, last), then the whole list (an admin
    without account_id: first and last) and the first page sorted by cost, both scopes."""
    newest = "-order_create_time"
    pages = max(1, math.ceil(per_account / PAGE_SIZE))
    one = f"account {account_id} ({per_account:,} orders)"
    cases = [
        ListCase(f"{one}, {where} page ({page:,} of {pages:,})", account_id, newest, page)
        for where, page in (("first", 1), ("middle", (pages + 1) // 2), ("last", pages))
    ]
    every = max(1, math.ceil(total / PAGE_SIZE))
    cases += [
        ListCase(f"all ({total:,} orders), first page", None, newest, 1),
        ListCase(
            f"all ({total:,} orders), last page ({every:,} of {every:,})", None, newest, every
        ),
        ListCase(f"{one}, first page", account_id, "-stat_cost", 1),
        ListCase(f"all ({total:,} orders), first page", None, "-stat_cost", 1),
    ]
    return cases


def _figures_equal(item: dict[str, Any], row: Any) -> bool:
    return all(Decimal(str(item[f])) == Decimal(str(row[f])) for f in FIGURES)


def same_page(body: dict[str, Any], rows: Sequence[Any], total: int) -> str:
    """Whether the API's page (current figures on the order rows) and the seed's (the
    MAX(stat_time) window rows) list the same orders with the same figures."""
    items = body["items"]
    if [i["order_id"] for i in items] != [r["order_id"] for r in rows]:
        return "NO: the pages list different orders"
    if body["total"] != total:
        return f"NO: total {body['total']} vs {total}"
    wrong = [i["order_id"] for i, r in zip(items, rows, strict=True) if not _figures_equal(i, r)]
    return "yes" if not wrong else f"NO: figures differ for {len(wrong)} orders"


async def api_pages(
    server: Server, token: str, cases: list[CaseResult], sizes: Sizes
) -> dict[ListCase, dict[str, Any]]:
    """Each case's page through the server: sequential latencies, and one answer's body."""
    bodies: dict[ListCase, dict[str, Any]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        for result in cases:
            path = result.case.path()
            response = await client.get(path, headers=headers)
            bodies[result.case] = response.raise_for_status().json()
            request = build_request("GET", path, server.port, headers)
            result.api = await sequential_latencies(
                server.port, request, sizes.list_requests, warmup=20
            )
            log(f"API {result.case.label} {result.case.sort}: p95 {ms(percentile(result.api, 95))}")
    return bodies


def _more_seed_runs(times: list[float], sizes: Sizes) -> bool:
    if len(times) >= sizes.seed_runs:
        return False
    return len(times) < MIN_SEED_RUNS or sum(times) < sizes.seed_seconds


async def seed_page(conn: asyncpg.Connection, result: CaseResult, sizes: Sizes) -> tuple[Any, int]:
    """The seed's query for the case, one unmeasured run first, then up to `seed_runs`
    runs within `seed_seconds` (at least MIN_SEED_RUNS); the last page's rows and total."""
    page_sql, count_sql, args = result.case.seed_sql()
    rows = await conn.fetch(page_sql, *args)
    total: int = await conn.fetchval(count_sql, *args[2:])
    while _more_seed_runs(result.seed, sizes):
        began = time.perf_counter()
        rows = await conn.fetch(page_sql, *args)
        total = await conn.fetchval(count_sql, *args[2:])
        result.seed.append(time.perf_counter() - began)
    log(f"seed {result.case.label} {result.case.sort}: p95 {ms(percentile(result.seed, 95))}")
    return rows, total


async def _admin_token(server: Server, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        token: str = response.raise_for_status().json()["access_token"]
        return token


async def _create_admin(db: TempDatabase, password: str) -> int:
    from tallyhub.core.auth import Role, create_user
    from tallyhub.core.db import Database

    database = Database(db.url)
    try:
        user = await database.run(lambda s: create_user(s, "bench-admin", password, Role.admin))
        return user.id
    finally:
        await database.dispose()


def server_env(db: TempDatabase) -> dict[str, str]:
    from tallyhub.core.crypto import generate_key

    return {
        "TALLYHUB_DATABASE_URL": db.url,
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_ENV": "production",
        "TALLYHUB_SECRET_KEY": secrets.token_urlsafe(32),
        "TALLYHUB_ENCRYPTION_KEYS": generate_key(),
    }


@dataclass
class ListOutcome:
    results: list[CaseResult]
    load_seconds: float


async def measure_list(db: TempDatabase, sizes: Sizes) -> ListOutcome:
    from tallyhub import migrate

    password = secrets.token_urlsafe(12)
    await asyncio.to_thread(migrate.upgrade, db.url)
    admin_id = await _create_admin(db, password)
    load_seconds = await bulk_load(db, sizes, admin_id)
    log(f"bulk load done in {load_seconds:.1f} s")
    conn = await asyncpg.connect(db.dsn)
    try:
        account_id = await conn.fetchval("SELECT min(id) FROM douyin_account")
        per_account = await conn.fetchval(
            "SELECT count(*) FROM douplus_order WHERE account_id = $1", account_id
        )
        results = [CaseResult(c) for c in list_cases(account_id, per_account, sizes.list_orders)]
        async with Server("douplus-list", server_env(db)) as server:
            token = await _admin_token(server, "bench-admin", password)
            bodies = await api_pages(server, token, results, sizes)
        for result in results:  # the server has stopped: PostgreSQL serves the seed alone
            rows, total = await seed_page(conn, result, sizes)
            result.same = same_page(bodies[result.case], rows, total)
    finally:
        await conn.close()
    return ListOutcome(results, load_seconds)


def list_table(sizes: Sizes, version: str, outcome: ListOutcome) -> Table:
    table = Table(
        f"douplus order list — PostgreSQL {version}, {sizes.list_orders:,} orders × "
        f"{sizes.windows} windows ({sizes.list_orders * sizes.windows:,} douplus_order_stats "
        f"rows), {sizes.list_accounts} accounts, {PAGE_SIZE} a page"
    )
    goal = f"p95 ≤ {GOAL_LIST_P95_S * 1000:.0f} ms"
    for result in outcome.results:
        case = result.case
        table.add(
            f"API sort={case.sort}, {case.label}: p50 / p95 / p99",
            result.triple(result.api),
            goal,
            percentile(result.api, 95) <= GOAL_LIST_P95_S,
        )
        table.add(
            f"    seed MAX(stat_time), same page ({len(result.seed)} runs)",
            result.triple(result.seed),
        )
        table.add("    ratio seed / API", result.ratio())
        table.add("    same orders, total and figures", result.same, "yes", result.same == "yes")
    return table


def list_notes(table: Table, sizes: Sizes, outcome: ListOutcome) -> None:
    table.note(
        "API: `GET /api/douplus/orders` through `tallyhub serve` (uvicorn, 1 worker, "
        "TALLYHUB_ENV=production, scheduler off) as an admin, over HTTP/1.1 keep-alive, "
        f"{sizes.list_requests} sequential requests per page after 20 warm-up; its time "
        "includes the page's count (`total`), the JSON and HTTP"
    )
    table.note(
        "seed: its 典型查询 on the same data, the page joined to the window row whose "
        "stat_time = (SELECT MAX(stat_time) FROM douplus_order_stats s2 WHERE s2.order_id = "
        "s.order_id), plus the page's count; SQL only (asyncpg, prepared), no HTTP or JSON, "
        f"run after the server stopped; up to {sizes.seed_runs} runs or "
        f"{sizes.seed_seconds:.0f} s per page (at least {MIN_SEED_RUNS}) after 1 unmeasured run"
    )
    table.note(
        "data: loaded set-based inside PostgreSQL (INSERT … SELECT generate_series, "
        f"setseed), every order with {sizes.windows} windows 30 minutes apart, its current "
        "figures on its douplus_order row copied from its newest window (as the sync keeps "
        f"them), orders spread over 60 days, then VACUUM ANALYZE; bulk load "
        f"{outcome.load_seconds:.0f} s. The -stat_cost rows go beyond the brief's sort: "
        "there the seed must find every order's newest window before it can sort"
    )


# ---------------------------------------------------------------- the run


async def bench() -> str:
    quiet_logs()
    sizes = Sizes.from_env()
    load_before = machine_load()
    started = time.perf_counter()
    log(f"sync: {sizes.accounts} accounts × {sizes.orders:,} orders")
    variants = await measure_sync(sizes)
    load_between = machine_load()
    async with temp_database("douplus_list") as db:
        version = await postgres_version(db.dsn)
        outcome = await measure_list(db, sizes)
    load_after = machine_load()

    first = sync_table(sizes, version, variants)
    first.note(f"machine: {load_before} before, {load_between} after; shared with other work")
    sync_notes(first, await autovacuum_setting())
    second = list_table(sizes, version, outcome)
    second.note(f"machine: {load_between} before, {load_after} after; shared with other work")
    list_notes(second, sizes, outcome)
    second.note(f"whole benchmark (both tables) {time.perf_counter() - started:.0f} s")
    return first.render() + "\n\n" + second.render()


def run() -> str:
    """Measure and return the tables (the entry point `python -m bench` uses)."""
    return run_fast(bench)


if __name__ == "__main__":
    print(run())
