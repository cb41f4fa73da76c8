"""Leads benchmark on PostgreSQL (issue 2): incoming/s through HTTP batched vs one
transaction per request, the group list vs the seed's realtime JOIN/COUNT query, and
recalibration of 1M logs. `python -m bench.leads` prints one table.

Sizes can be overridden for a quick run, e.g.
`BENCH_SECONDS=5 BENCH_GROUPS=1000 BENCH_LOGS=100000 python -m bench.leads`:
BENCH_SECONDS / BENCH_WARMUP (per incoming run), BENCH_CLIENTS, BENCH_GROUPS,
BENCH_ACCOUNTS_PER_GROUP, BENCH_LOGS, BENCH_DAYS, BENCH_HTTP_GROUPS, BENCH_HTTP_ACCOUNTS,
BENCH_HTTP_CONTACTS, BENCH_LIST_REQUESTS, BENCH_REALTIME_RUNS, BENCH_WORKERS (uvicorn
workers, default 1); BENCH_POSTGRES_URL (server),
BENCH_KEEP_DB=1, BENCH_PROFILE_DIR (py-spy the server during each incoming run).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    HOST,
    CpuUse,
    LoadResult,
    Server,
    Table,
    TempDatabase,
    build_request,
    env_float,
    env_int,
    log,
    machine_load,
    measured_cpu,
    ms,
    parse_metrics,
    percentile,
    postgres_version,
    run_fast,
    run_load,
    sequential_latencies,
    temp_database,
)
from tallyhub.core.crypto import generate_key

GOAL_INCOMING_PER_S = 3000
GOAL_LIST_P95_S = 0.020
GOAL_LIST_RATIO = 100


@dataclass(frozen=True)
class Sizes:
    groups: int
    accounts_per_group: int
    logs: int
    days: int
    seconds: float
    warmup: float
    clients: int
    http_groups: int
    http_accounts: int
    http_contacts: int
    list_requests: int
    realtime_runs: int
    workers: int

    @classmethod
    def from_env(cls) -> Sizes:
        return cls(
            groups=env_int("BENCH_GROUPS", 10_000),
            accounts_per_group=env_int("BENCH_ACCOUNTS_PER_GROUP", 5),
            logs=env_int("BENCH_LOGS", 1_000_000),
            days=env_int("BENCH_DAYS", 30),
            seconds=env_float("BENCH_SECONDS", 30),
            warmup=env_float("BENCH_WARMUP", 3),
            clients=env_int("BENCH_CLIENTS", 64),
            http_groups=env_int("BENCH_HTTP_GROUPS", 4),
            http_accounts=env_int("BENCH_HTTP_ACCOUNTS", 8),
            http_contacts=env_int("BENCH_HTTP_CONTACTS", 50_000),
            list_requests=env_int("BENCH_LIST_REQUESTS", 300),
            realtime_runs=env_int("BENCH_REALTIME_RUNS", 5),
            workers=env_int("BENCH_WORKERS", 1),
        )


# ---------------------------------------------------------------- bulk load

# Consistent by construction: logs first (is_duplicate = not the first sighting of the
# contact in its group, business_date from the group's own zone and reset time, the
# answers total_after/today_after as running counts), then every counter, the contact
# pools and the daily rows derived from the logs with INSERT … SELECT … GROUP BY.

_GROUPS_SQL = """
INSERT INTO lead_groups (activation_code, remark, description, is_active, dedup_scope,
                         reset_time, timezone, account_limit, owner_id, created_at)
SELECT md5('bench-group-' || i),
       'Team ' || lpad(i::text, 6, '0') || ' · '
           || (ARRAY['Tokyo','Osaka','Shanghai','Bangkok','Taipei','Seoul','Berlin','Manila'])
              [1 + i % 8],
       'bulk-loaded benchmark group', true, 'current',
       (ARRAY['00:00','06:00','04:30'])[1 + i % 3],
       (ARRAY['Asia/Shanghai','Asia/Tokyo','Asia/Bangkok','Europe/Berlin'])[1 + i % 4],
       NULL, $1,
       (now() AT TIME ZONE 'UTC') - ($2 - i) * interval '7 minutes'
FROM generate_series(1, $2) AS i
"""

_ACCOUNTS_SQL = """
INSERT INTO line_accounts (group_id, line_id, display_name, platform_type, online_status,
                           last_online_time, created_at, deletion_mark)
SELECT g.id, 'acc-' || g.id || '-' || k, 'Account ' || k,
       CASE WHEN k % 3 = 0 THEN 'line_business' ELSE 'line' END,
       CASE WHEN (g.id + k) % 4 = 0 THEN 'offline' ELSE 'online' END,
       CASE WHEN (g.id + k) % 4 = 0 THEN NULL ELSE g.created_at END,
       g.created_at, 0
FROM lead_groups g CROSS JOIN generate_series(1, $1) AS k
ORDER BY g.id, k
"""

_LOGS_SQL = """
INSERT INTO incoming_logs (event_id, group_id, line_account_id, incoming_line_id,
                           is_duplicate, incoming_time, business_date, received_at,
                           total_after, today_after)
WITH picked AS (
    SELECT i,
           $1::int + floor(random() * $2::int)::int AS account_id,
           floor(random() * $3::int)::int AS contact,
           (now() AT TIME ZONE 'UTC') - random() * ($4::int * interval '1 day') AS ts
    FROM generate_series(1, $5::int) AS i
), placed AS (
    SELECT p.i, p.ts, a.id AS account_id, a.group_id,
           'U' || a.group_id || '-' || p.contact AS line_id,
           (((p.ts AT TIME ZONE 'UTC') AT TIME ZONE g.timezone)
               - g.reset_time::interval)::date AS day
    FROM picked p
    JOIN line_accounts a ON a.id = p.account_id
    JOIN lead_groups g ON g.id = a.group_id
)
SELECT 'bulk-' || i, group_id, account_id, line_id,
       row_number() OVER (PARTITION BY group_id, line_id ORDER BY ts, i) > 1,
       ts, day, ts,
       row_number() OVER (PARTITION BY account_id ORDER BY ts, i),
       row_number() OVER (PARTITION BY account_id, day ORDER BY ts, i)
FROM placed
ORDER BY ts, i
"""

_DERIVED_SQL = [
    """
INSERT INTO group_stats (group_id, total_accounts, online_accounts, line_accounts,
                         line_business_accounts, total_incoming, duplicate_incoming)
SELECT g.id, coalesce(a.total, 0), coalesce(a.online, 0), coalesce(a.line, 0),
       coalesce(a.business, 0), coalesce(l.total, 0), coalesce(l.dup, 0)
FROM lead_groups g
LEFT JOIN (SELECT group_id, count(*) AS total,
                  count(*) FILTER (WHERE online_status = 'online') AS online,
                  count(*) FILTER (WHERE platform_type = 'line') AS line,
                  count(*) FILTER (WHERE platform_type = 'line_business') AS business
           FROM line_accounts WHERE deleted_at IS NULL GROUP BY group_id) a ON a.group_id = g.id
LEFT JOIN (SELECT group_id, count(*) AS total, count(*) FILTER (WHERE is_duplicate) AS dup
           FROM incoming_logs GROUP BY group_id) l ON l.group_id = g.id
""",
    """
INSERT INTO line_account_stats (line_account_id, group_id, total_incoming, duplicate_incoming)
SELECT a.id, a.group_id, coalesce(l.total, 0), coalesce(l.dup, 0)
FROM line_accounts a
LEFT JOIN (SELECT line_account_id, count(*) AS total,
                  count(*) FILTER (WHERE is_duplicate) AS dup
           FROM incoming_logs GROUP BY line_account_id) l ON l.line_account_id = a.id
""",
    """
INSERT INTO group_daily_stats (group_id, business_date, incoming, duplicate_incoming)
SELECT group_id, business_date, count(*), count(*) FILTER (WHERE is_duplicate)
FROM incoming_logs GROUP BY group_id, business_date
""",
    """
INSERT INTO line_account_daily_stats (line_account_id, business_date, group_id, incoming,
                                      duplicate_incoming)
SELECT line_account_id, business_date, min(group_id), count(*),
       count(*) FILTER (WHERE is_duplicate)
FROM incoming_logs GROUP BY line_account_id, business_date
""",
    """
INSERT INTO contacts (group_id, line_id, first_event_id, first_seen_at)
SELECT group_id, incoming_line_id, event_id, incoming_time
FROM incoming_logs WHERE NOT is_duplicate ORDER BY group_id, incoming_line_id
""",
    """
INSERT INTO global_contacts (line_id, first_event_id, first_group_id, first_seen_at)
SELECT DISTINCT ON (incoming_line_id) incoming_line_id, event_id, group_id, incoming_time
FROM incoming_logs ORDER BY incoming_line_id, incoming_time, id
""",
]


async def bulk_load(db: TempDatabase, sizes: Sizes, owner_id: int) -> float:
    """Load groups, accounts and logs with INSERT … SELECT inside PostgreSQL, derive every
    counter from the logs, then VACUUM ANALYZE. Returns the seconds it took."""
    began = time.perf_counter()
    conn = await asyncpg.connect(db.dsn)
    try:
        # A bulk load of a throwaway database: no fsync wait per statement, no per-row FK
        # triggers (the rows reference each other correctly by construction).
        await conn.execute(
            "SET synchronous_commit = off; SET session_replication_role = replica;"
            " SET work_mem = '256MB'; SET maintenance_work_mem = '256MB'"
        )
        await conn.fetchval("SELECT setseed(0.20261122)")
        await conn.execute(_GROUPS_SQL, owner_id, sizes.groups)
        await conn.execute(_ACCOUNTS_SQL, sizes.accounts_per_group)
        low, high, count = await conn.fetchrow(
            "SELECT min(id), max(id), count(*) FROM line_accounts"
        )
        assert high - low + 1 == count, "account ids must be contiguous in a fresh database"
        log(f"loaded {sizes.groups:,} groups, {count:,} accounts; loading {sizes.logs:,} logs")
        contacts_per_group = max(1, round(2.5 * sizes.logs / max(1, sizes.groups)))
        await conn.execute(_LOGS_SQL, low, count, contacts_per_group, sizes.days, sizes.logs)
        log("logs loaded; deriving counters, daily rows and contact pools")
        for statement in _DERIVED_SQL:
            await conn.execute(statement)
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - began


# ---------------------------------------------------------------- the seed's realtime query

# One page of 50 groups computed from the raw tables at read time, as the seed's
# "实时计算方案" does (LEFT JOIN accounts, LEFT JOIN logs, COUNT, GROUP BY), with DISTINCT
# on the account counts so that the join's fan-out does not inflate them, "today" from each
# group's zone and reset time, and the page's total. Same fields as the API's list.
REALTIME_PAGE_SQL = """
SELECT g.id, g.activation_code, g.remark, g.description, g.is_active, g.dedup_scope,
       g.reset_time, g.timezone, g.account_limit, g.owner_id, g.created_at, g.last_login_at,
       COUNT(DISTINCT la.id) AS total_accounts,
       COUNT(DISTINCT la.id) FILTER (WHERE la.online_status = 'online') AS online_accounts,
       COUNT(DISTINCT la.id) FILTER (WHERE la.platform_type = 'line') AS line_accounts,
       COUNT(DISTINCT la.id) FILTER (WHERE la.platform_type = 'line_business')
           AS line_business_accounts,
       COUNT(il.id) AS total_incoming,
       COUNT(il.id) FILTER (WHERE il.is_duplicate) AS duplicate_incoming,
       COUNT(il.id) FILTER (
           WHERE il.business_date = ((now() AT TIME ZONE g.timezone)
                                     - g.reset_time::interval)::date
       ) AS today_incoming
FROM lead_groups g
LEFT JOIN line_accounts la ON la.group_id = g.id AND la.deleted_at IS NULL
LEFT JOIN incoming_logs il ON il.line_account_id = la.id
WHERE g.deleted_at IS NULL
GROUP BY g.id
ORDER BY g.created_at DESC, g.id DESC
LIMIT 50
"""
REALTIME_TOTAL_SQL = "SELECT count(*) FROM lead_groups WHERE deleted_at IS NULL"
FIGURES = (
    "total_accounts",
    "online_accounts",
    "line_accounts",
    "line_business_accounts",
    "total_incoming",
    "duplicate_incoming",
    "today_incoming",
)


async def realtime_page(db: TempDatabase, runs: int) -> tuple[list[float], list[dict[str, Any]]]:
    """Times of `runs` executions (after one unmeasured run), and the last page's rows."""
    conn = await asyncpg.connect(db.dsn)
    try:
        rows: list[asyncpg.Record] = []
        times: list[float] = []
        for i in range(runs + 1):
            began = time.perf_counter()
            rows = await conn.fetch(REALTIME_PAGE_SQL)
            await conn.fetchval(REALTIME_TOTAL_SQL)
            if i:
                times.append(time.perf_counter() - began)
        return times, [dict(r) for r in rows]
    finally:
        await conn.close()


# ---------------------------------------------------------------- recalibration


async def time_recalibration(db: TempDatabase) -> tuple[float, int, int, int]:
    """Seconds, drift count, groups and accounts checked of one `recalibrate()` run."""
    from tallyhub.core.db import Database
    from tallyhub.leads.config import LeadsSettings
    from tallyhub.leads.service import recalibrate

    database = Database(db.url)
    try:
        began = time.perf_counter()
        run = await recalibrate(database, LeadsSettings().recalibration_chunk)
        elapsed = time.perf_counter() - began
    finally:
        await database.dispose()
    return elapsed, run.drift_count, run.checked["groups"], run.checked["accounts"]


# ---------------------------------------------------------------- through the server


def server_env(db: TempDatabase, secret: str, *, batching: bool) -> dict[str, str]:
    return {
        "TALLYHUB_DATABASE_URL": db.url,
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_ENV": "production",
        "TALLYHUB_SECRET_KEY": secret,
        # production requires it (third-party tokens); none are stored in this benchmark
        "TALLYHUB_ENCRYPTION_KEYS": generate_key(),
        "TALLYHUB_LEADS__BATCHING__ENABLED": "true" if batching else "false",
    }


async def admin_token(server: Server, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def measure_group_list(
    server: Server, token: str, sizes: Sizes, search: str | None = None
) -> tuple[list[float], dict[str, Any]]:
    """Sequential GETs of page 1 (50 groups): their latencies, and one answer's body."""
    path = "/api/leads/groups?page=1&page_size=50" + (f"&search={search}" if search else "")
    request = build_request("GET", path, server.port, {"Authorization": f"Bearer {token}"})
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
    count = sizes.list_requests if search is None else max(50, sizes.list_requests // 3)
    latencies = await sequential_latencies(server.port, request, count, warmup=20)
    return latencies, body


@dataclass
class HttpGroup:
    id: int
    code: str
    accounts: list[str]


async def make_http_groups(server: Server, token: str, sizes: Sizes, label: str) -> list[HttpGroup]:
    """Groups and accounts for an incoming run, made through the admin and client APIs;
    half the groups dedup globally, zones and reset times differ."""
    zones = [("Asia/Tokyo", "06:00"), ("Asia/Shanghai", "00:00"), ("Europe/Berlin", "04:30")]
    groups: list[HttpGroup] = []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        for g in range(sizes.http_groups):
            zone, reset = zones[g % len(zones)]
            response = await client.post(
                "/api/leads/groups",
                json={
                    "remark": f"bench {label} {g}",
                    "dedup_scope": "global" if g % 2 else "current",
                    "timezone": zone,
                    "reset_time": reset,
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()
            created = response.json()
            accounts = [f"{label}-g{g}-acc{k}" for k in range(sizes.http_accounts)]
            response = await client.put(
                "/api/client/accounts",
                json={
                    "accounts": [
                        {
                            "line_id": line_id,
                            "platform_type": "line_business" if k % 3 == 0 else "line",
                            "online_status": "online",
                        }
                        for k, line_id in enumerate(accounts)
                    ]
                },
                headers={"X-Activation-Code": created["activation_code"]},
            )
            response.raise_for_status()
            groups.append(HttpGroup(created["id"], created["activation_code"], accounts))
    return groups


async def incoming_run(
    server: Server, groups: list[HttpGroup], sizes: Sizes, label: str
) -> IncomingOutcome:
    """`sizes.clients` keep-alive clients POST /api/client/incoming back to back; client i
    reports for group i mod G, on a random account, a random contact, a unique event id."""
    rng = random.Random(f"{label}-incoming")
    heads = [
        build_request(
            "POST", "/api/client/incoming", server.port, {"X-Activation-Code": g.code}
        ).removesuffix(b"\r\n\r\n")
        for g in groups
    ]
    sequence = 0

    def next_request(client: int) -> tuple[bytes, str]:
        nonlocal sequence
        sequence += 1
        group = groups[client % len(groups)]
        body = (
            f'{{"account_line_id":"{rng.choice(group.accounts)}",'
            f'"incoming_line_id":"{label}-C{rng.randrange(sizes.http_contacts)}",'
            f'"event_id":"{label}-{sequence}"}}'
        ).encode()
        head = heads[client % len(groups)]
        return (
            head
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body,
            str(group.id),
        )

    watching = asyncio.create_task(
        measured_cpu(server, sizes.warmup, sizes.seconds, f"incoming-{label}")
    )
    before = await scrape(server)
    result = await run_load(
        server.port,
        next_request,
        clients=sizes.clients,
        seconds=sizes.seconds,
        warmup=sizes.warmup,
    )
    after = await scrape(server)
    return IncomingOutcome(result, await watching, _batches(before, after))


@dataclass
class IncomingOutcome:
    load: LoadResult
    cpu: CpuUse  # CPU use in the measured window
    batches: str  # the writer's own metrics over the run


async def scrape(server: Server) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


def _batches(before: dict[str, float], after: dict[str, float]) -> str:
    def delta(name: str) -> float:
        key = f'{name}{{writer="leads.incoming"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    count = delta("batch_size_count")
    if not count:
        return "no batches recorded"
    retries = sum(
        v - before.get(k, 0.0) for k, v in after.items() if k.startswith("db_retries_total")
    )
    return (
        f"{count:,.0f} transactions, mean {delta('batch_size_sum') / count:.1f} events and "
        f"{delta('batch_commit_seconds_sum') / count * 1000:.1f} ms each, {retries:.0f} retries"
    )


async def check_exact(db: TempDatabase, groups: list[HttpGroup], result: LoadResult) -> str:
    """Every counter of the run's groups against the number of 200 answers it got."""
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT s.group_id, s.total_incoming,
                   (SELECT count(*) FROM incoming_logs l WHERE l.group_id = s.group_id) AS logs,
                   (SELECT coalesce(sum(total_incoming), 0) FROM line_account_stats a
                     WHERE a.group_id = s.group_id) AS accounts,
                   (SELECT coalesce(sum(incoming), 0) FROM group_daily_stats d
                     WHERE d.group_id = s.group_id) AS days
            FROM group_stats s WHERE s.group_id = ANY($1::int[])
            """,
            [g.id for g in groups],
        )
    finally:
        await conn.close()
    answered = sum(result.ok_by_key[str(g.id)] for g in groups)
    counted = sum(r["total_incoming"] for r in rows)
    bad = [
        f"group {r['group_id']}: 200s={result.ok_by_key[str(r['group_id'])]} "
        f"stats={r['total_incoming']} logs={r['logs']} accounts={r['accounts']} days={r['days']}"
        for r in rows
        if len({result.ok_by_key[str(r["group_id"])], r["total_incoming"], r["logs"],
                r["accounts"], r["days"]}) != 1
    ]  # fmt: skip
    if bad or len(rows) != len(groups):
        return "NO: " + "; ".join(bad)
    return f"yes: {counted:,} counted = {answered:,} answered 200"


# ---------------------------------------------------------------- the run


async def _create_admin(db: TempDatabase, password: str) -> int:
    from tallyhub.core.auth import Role, create_user
    from tallyhub.core.db import Database

    database = Database(db.url)
    try:
        user = await database.run(lambda s: create_user(s, "bench-admin", password, Role.admin))
        return user.id
    finally:
        await database.dispose()


def _compare_pages(api: dict[str, Any], realtime: list[dict[str, Any]]) -> str:
    """Whether the API's page (stats rows) and the realtime query show the same figures."""
    by_id = {row["id"]: row for row in realtime}
    items = api["items"]
    if [i["id"] for i in items] != [r["id"] for r in realtime]:
        return "NO: the pages list different groups"
    diffs = [
        f"group {i['id']} {f}: api {i[f]} vs realtime {by_id[i['id']][f]}"
        for i in items
        for f in FIGURES
        if i[f] != by_id[i["id"]][f]
    ]
    return "yes" if not diffs else "NO: " + "; ".join(diffs[:3])


def _latency_triple(result: LoadResult) -> str:
    return f"{ms(result.pct(50))} / {ms(result.pct(95))} / {ms(result.pct(99))}"


def _non_2xx(result: LoadResult) -> str:
    text = f"{result.non_2xx:,} of {result.completed:,}"
    if result.errors:
        text += f", {result.errors} connection errors"
    return text


def _all_answered_2xx(result: LoadResult) -> bool:
    return result.non_2xx == 0 and result.errors == 0


async def bench() -> str:
    from tallyhub import migrate

    sizes = Sizes.from_env()
    load_before = machine_load()
    started = time.perf_counter()
    secret = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(12)
    async with temp_database("leads") as db:
        version = await postgres_version(db.dsn)
        await asyncio.to_thread(migrate.upgrade, db.url)
        admin_id = await _create_admin(db, password)
        log(f"loading {sizes.groups:,} groups and {sizes.logs:,} logs")
        load_seconds = await bulk_load(db, sizes, admin_id)
        log(f"bulk load done in {load_seconds:.1f} s")

        log(f"realtime JOIN/COUNT page, {sizes.realtime_runs} runs")
        realtime_times, realtime_rows = await realtime_page(db, sizes.realtime_runs)

        log("recalibration")
        recal_seconds, drift, groups_checked, accounts_checked = await time_recalibration(db)
        log(f"recalibration {recal_seconds:.1f} s, drift {drift}")

        batched_server = Server(
            "batched", server_env(db, secret, batching=True), workers=sizes.workers
        )
        async with batched_server as server:
            token = await admin_token(server, "bench-admin", password)
            log(f"group list, {sizes.list_requests} sequential requests")
            list_times, list_body = await measure_group_list(server, token, sizes)
            search_times, search_body = await measure_group_list(server, token, sizes, "osaka")
            same_figures = _compare_pages(list_body, realtime_rows)
            total_groups = list_body["total"]

            log("reference: GET /healthz with the same clients")
            ceiling = await run_load(
                server.port,
                lambda _: (build_request("GET", "/healthz", server.port), "healthz"),
                clients=sizes.clients,
                seconds=min(5.0, sizes.seconds),
                warmup=1.0,
            )

            batched_groups = await make_http_groups(server, token, sizes, "batched")
            log(f"incoming, batched: {sizes.clients} clients, {sizes.seconds:.0f} s")
            batched_run = await incoming_run(server, batched_groups, sizes, "batched")
            batched = batched_run.load
            batched_exact = await check_exact(db, batched_groups, batched)
            log(f"batched: {batched.rate:,.0f}/s, exact: {batched_exact}")

        single_server = Server(
            "single", server_env(db, secret, batching=False), workers=sizes.workers
        )
        async with single_server as server:
            token = await admin_token(server, "bench-admin", password)
            single_groups = await make_http_groups(server, token, sizes, "single")
            log(f"incoming, one transaction per request: {sizes.clients} clients")
            single_run = await incoming_run(server, single_groups, sizes, "single")
            single = single_run.load
            single_exact = await check_exact(db, single_groups, single)
            log(f"single: {single.rate:,.0f}/s, exact: {single_exact}")

    list_p50, list_p95 = percentile(list_times, 50), percentile(list_times, 95)
    realtime_p50 = percentile(realtime_times, 50)
    list_ratio = realtime_p50 / list_p50
    ratio_vs_p95 = realtime_p50 / list_p95
    load_after = machine_load()

    table = Table(
        f"leads — PostgreSQL {version}, {sizes.groups:,} groups × "
        f"{sizes.accounts_per_group} accounts, {sizes.logs:,} incoming logs"
    )
    table.add(
        f"incoming/s, batched ({sizes.clients} clients, HTTP)",
        f"{batched.rate:,.0f} /s",
        f"≥ {GOAL_INCOMING_PER_S:,} /s",
        batched.rate >= GOAL_INCOMING_PER_S,
    )
    table.add("  latency p50 / p95 / p99, batched", _latency_triple(batched))
    table.add("  non-2xx, batched", _non_2xx(batched), "0", _all_answered_2xx(batched))
    table.add("  writer, batched", batched_run.batches)
    table.add("  CPU (% of one core), batched", str(batched_run.cpu))
    table.add(
        f"incoming/s, one transaction per request ({sizes.clients} clients)",
        f"{single.rate:,.0f} /s",
    )
    table.add("  latency p50 / p95 / p99, one transaction per request", _latency_triple(single))
    table.add(
        "  non-2xx, one transaction per request", _non_2xx(single), "0", _all_answered_2xx(single)
    )
    table.add("  writer, one transaction per request", single_run.batches)
    table.add("  CPU (% of one core), one transaction per request", str(single_run.cpu))
    table.add("ratio batched / one transaction per request", f"{batched.rate / single.rate:.1f} ×")
    table.add(
        "  reference: GET /healthz/s, same server and clients (HTTP ceiling)",
        f"{ceiling.rate:,.0f} /s",
    )
    table.add(
        "exact: counters = 200 answers, batched",
        batched_exact,
        "equal",
        batched_exact.startswith("yes"),
    )
    table.add(
        "exact: counters = 200 answers, one transaction per request",
        single_exact,
        "equal",
        single_exact.startswith("yes"),
    )
    table.add(
        f"group list p50 / p95 (page 1 of {total_groups:,}, 50 rows, HTTP, sequential)",
        f"{ms(list_p50)} / {ms(list_p95)}",
        f"p95 ≤ {GOAL_LIST_P95_S * 1000:.0f} ms",
        list_p95 <= GOAL_LIST_P95_S,
    )
    table.add(
        f"group list with search p50 / p95 ({search_body['total']:,} matches)",
        f"{ms(percentile(search_times, 50))} / {ms(percentile(search_times, 95))}",
        f"p95 ≤ {GOAL_LIST_P95_S * 1000:.0f} ms",
        percentile(search_times, 95) <= GOAL_LIST_P95_S,
    )
    table.add(
        "seed's realtime JOIN/COUNT page p50 / p95 (SQL only, no HTTP)",
        f"{ms(realtime_p50)} / {ms(percentile(realtime_times, 95))}",
    )
    table.add(
        "ratio realtime / group list (p50 / p50)",
        f"{list_ratio:,.0f} ×",
        f"≥ {GOAL_LIST_RATIO} ×",
        list_ratio >= GOAL_LIST_RATIO,
    )
    table.add("  ratio realtime p50 / group list p95", f"{ratio_vs_p95:,.0f} ×")
    table.add("  same figures on the page (stats rows vs realtime)", same_figures, "yes",
              same_figures == "yes")  # fmt: skip
    table.add(
        f"recalibration of {sizes.logs:,} logs ({groups_checked:,} groups, "
        f"{accounts_checked:,} accounts)",
        f"{recal_seconds:,.1f} s",
    )
    table.add("  recalibration drift", f"{drift}", "0", drift == 0)
    table.note(
        f"machine: {load_before} before, {load_after} after; shared with other work, so "
        "figures may be depressed"
    )
    table.note(
        f"server: `tallyhub serve` (uvicorn), {sizes.workers} worker(s), uvloop + httptools, "
        "TALLYHUB_ENV=production, scheduler off, default pool"
        + (" (writer metrics are one worker's)" if sizes.workers > 1 else "")
        + f"; load generator in the same machine ({sizes.clients} raw "
        f"keep-alive HTTP/1.1 connections); {sizes.warmup:.0f} s warm-up + "
        f"{sizes.seconds:.0f} s measured per incoming run"
    )
    table.note(
        f"incoming: {sizes.http_groups} new groups per run (half with global dedup) × "
        f"{sizes.http_accounts} accounts, contacts drawn from {sizes.http_contacts:,}, "
        "unique event ids; one-transaction-per-request is the same server with "
        "TALLYHUB_LEADS__BATCHING__ENABLED=false"
    )
    table.note(
        f"group list: {sizes.list_requests} sequential GETs as admin after 20 warm-up; "
        f"realtime: {sizes.realtime_runs} runs of the page query + count after 1 warm-up; "
        f"bulk load {load_seconds:.0f} s; whole benchmark {time.perf_counter() - started:.0f} s"
    )
    return table.render()


def run() -> str:
    """Measure and return the table (the entry point `python -m bench` uses)."""
    return run_fast(bench)


if __name__ == "__main__":
    print(run())
