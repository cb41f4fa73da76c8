"""Clicks benchmark on PostgreSQL (issue 3): `/__track` through the real server with 1 and
2 uvicorn workers, 64 keep-alive connections, over 1,000 users × 20 campaigns × a few tags:

  (a) a bare 302 route in the same server that records nothing (`/__bare302`),
  (b) `/__track` with group commit (the BatchWriter),
  (c) `/__track` with one transaction per request (the seed's design; batching off),

then the ratios b/a and b/c, and afterwards whether the database holds exactly the
accepted clicks (302 answers − deduplicated). `python -m bench.clicks` prints one table.

The request stream is deterministic so that the expected count is known exactly: the
20,000 (user, campaign) pairs are visited in one fixed shuffled order, over and over (as
the seed's Locust users pick a random user and campaign, but a pair repeats only every
20,000 requests, far outside the dedup window), with a random tag set each; and every 20th
request on a connection repeats that connection's previous request at once: a double
click, which the dedup window must absorb (a keep-alive connection stays with one worker
process). The first pass meets every member, (campaign, user) pair and tag for the first
time; later passes are the steady state of a live system.

Overrides: BENCH_SECONDS (per run, default 30), BENCH_WARMUP (3), BENCH_CLIENTS (64),
BENCH_CLICK_WORKERS ("1,2"), BENCH_POSTGRES_URL, BENCH_KEEP_DB=1, BENCH_PROFILE_DIR.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx

from bench.harness import (
    HOST,
    CpuUse,
    LoadResult,
    Server,
    Table,
    TempDatabase,
    env_float,
    env_int,
    log,
    machine_load,
    measured_cpu,
    ms,
    parse_metrics,
    postgres_version,
    run_fast,
    run_load,
    temp_database,
)
from tallyhub.core.crypto import generate_key

GOAL_CLICKS_PER_S = 5000
STRETCH_CLICKS_PER_S = 7000
GOAL_P99_S = 0.050
STRETCH_B_OVER_A = 0.25  # the stretch goal, 7,000/s, as a ratio to a bare 302
GOAL_B_OVER_C = 5.0

USERS = 1000
CAMPAIGNS = 20
TAGS = ("A", "B", "C", "A,B", "B,C", "")  # the seed's Locust scenario
DOUBLE_CLICK_EVERY = 20
DEDUP_WINDOW_MS = 1000  # the default; a pair repeats only after 20,000 requests
TARGET = "https://example.com/landing"


@dataclass(frozen=True)
class Sizes:
    seconds: float
    warmup: float
    clients: int
    workers: tuple[int, ...]

    @classmethod
    def from_env(cls) -> Sizes:
        import os

        workers = tuple(int(w) for w in os.environ.get("BENCH_CLICK_WORKERS", "1,2").split(","))
        return cls(
            seconds=env_float("BENCH_SECONDS", 30),
            warmup=env_float("BENCH_WARMUP", 3),
            clients=env_int("BENCH_CLIENTS", 64),
            workers=workers,
        )


@dataclass
class Run:
    label: str
    load: LoadResult
    cpu: CpuUse
    writer: str = ""
    double_clicks: int = 0
    exact: str = ""
    exact_ok: bool | None = None
    spooled: int = 0

    @property
    def redirects(self) -> int:
        """302 answers in the measured window."""
        return self.load.statuses[302]

    @property
    def rate(self) -> float:
        return self.redirects / self.load.window

    def latencies(self) -> str:
        return f"{ms(self.load.pct(50))} / {ms(self.load.pct(95))} / {ms(self.load.pct(99))}"

    def failures(self) -> int:
        others = sum(n for status, n in self.load.all_statuses.items() if status != 302)
        return others + self.load.errors


def server_env(db: TempDatabase, secret: str, var_dir: Path, *, batching: bool) -> dict[str, str]:
    return {
        "TALLYHUB_DATABASE_URL": db.url,
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_ENV": "production",
        "TALLYHUB_SECRET_KEY": secret,
        # production requires it (third-party tokens); none are stored in this benchmark
        "TALLYHUB_ENCRYPTION_KEYS": generate_key(),
        "TALLYHUB_VAR_DIR": str(var_dir),
        "TALLYHUB_CLICKS__BARE_ROUTE": "true",
        "TALLYHUB_CLICKS__DEDUP_WINDOW_MS": str(DEDUP_WINDOW_MS),
        "TALLYHUB_CLICKS__BATCHING__ENABLED": "true" if batching else "false",
        # Measure the write paths themselves: a slow commit waits instead of being
        # diverted to the spool (anything spooled anyway is replayed and reported).
        "TALLYHUB_CLICKS__COMMIT_TIMEOUT_MS": "60000",
    }


async def _create_admin(db: TempDatabase, password: str) -> None:
    from tallyhub.core.auth import Role, create_user
    from tallyhub.core.db import Database

    database = Database(db.url)
    try:
        await database.run(lambda s: create_user(s, "bench-admin", password, Role.admin))
    finally:
        await database.dispose()


async def make_campaigns(server: Server, password: str, label: str) -> list[int]:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        token = await client.post(
            "/api/auth/token", data={"username": "bench-admin", "password": password}
        )
        token.raise_for_status()
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        ids = []
        for n in range(CAMPAIGNS):
            response = await client.post(
                "/api/clicks/campaigns",
                json={"name": f"{label} {n}", "allowed_hosts": ["example.com"]},
                headers=auth,
            )
            response.raise_for_status()
            ids.append(int(response.json()["id"]))
        return ids


async def scrape(server: Server) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


def _writer(before: dict[str, float], after: dict[str, float], workers: int) -> str:
    def delta(name: str) -> float:
        key = f'{name}{{writer="clicks"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    count = delta("batch_size_count")
    if not count:
        return "no batches seen"
    retries = sum(
        v - before.get(k, 0.0) for k, v in after.items() if k.startswith("db_retries_total")
    )
    dedup = after.get("track_dedup_total", 0.0) - before.get("track_dedup_total", 0.0)
    text = (
        f"{count:,.0f} transactions, mean {delta('batch_size_sum') / count:.1f} clicks and "
        f"{delta('batch_commit_seconds_sum') / count * 1000:.1f} ms each, {retries:.0f} "
        f"retries, {dedup:,.0f} deduplicated"
    )
    return text + (" (one worker's metrics)" if workers > 1 else "")


async def click_run(
    server: Server,
    sizes: Sizes,
    label: str,
    path: str,
    campaigns: list[int],
    workers: int,
    *,
    headers: Callable[[random.Random], bytes] | None = None,
    seed: str | None = None,
) -> Run:
    """One load run. `headers` gives each request's own header lines (a User-Agent, a
    Referer); `seed` (default: the label) makes two runs send the same stream."""
    rng = random.Random(seed or label)
    pairs = list(range(USERS * CAMPAIGNS))
    rng.shuffle(pairs)
    sequence = 0
    previous: dict[int, bytes] = {}
    calls: dict[int, int] = {}
    doubles = 0
    host_header = f"Host: {HOST}:{server.port}\r\n\r\n".encode()
    to = quote(TARGET, safe="")

    def request(pair: int) -> bytes:
        cid = campaigns[pair % CAMPAIGNS]
        uid = pair // CAMPAIGNS
        tag = quote(rng.choice(TAGS), safe="")
        query = f"cid={cid}&uid=U{uid:04d}&type=image_click&to={to}&tag={tag}"
        extra = headers(rng) if headers is not None else b""
        return f"GET {path}?{query} HTTP/1.1\r\n".encode() + extra + host_header

    # Built before the run for up to 8,000 clicks/s, so that the load generator spends its
    # CPU on sending rather than formatting; beyond that, built as they are sent.
    expected = int((sizes.warmup + sizes.seconds) * 8000)
    stream = [request(pairs[n % len(pairs)]) for n in range(expected)]

    def next_request(client: int) -> tuple[bytes, str]:
        nonlocal sequence, doubles
        calls[client] = calls.get(client, 0) + 1
        if client in previous and calls[client] % DOUBLE_CLICK_EVERY == 0:
            doubles += 1
            return previous[client], "double"
        in_stream = sequence < len(stream)
        data = stream[sequence] if in_stream else request(pairs[sequence % len(pairs)])
        sequence += 1
        previous[client] = data
        return data, "click"

    watching = asyncio.create_task(
        measured_cpu(server, sizes.warmup, sizes.seconds, f"clicks-{label}")
    )
    before = await scrape(server)
    result = await run_load(
        server.port, next_request, clients=sizes.clients, seconds=sizes.seconds, warmup=sizes.warmup
    )
    after = await scrape(server)
    run = Run(label, result, await watching, double_clicks=doubles)
    if path == "/__track":
        run.writer = _writer(before, after, workers)
    return run


async def replay_leftovers(db: TempDatabase, var_dir: Path) -> int:
    """Clicks the server spooled (writer saturated) are replayed before counting."""
    from tallyhub.clicks.service import replay_spool, spool_directory
    from tallyhub.core.db import Database

    database = Database(db.url)
    try:
        counts = await replay_spool(database, spool_directory(var_dir))
    finally:
        await database.dispose()
    return counts["events"]


async def check_exact(db: TempDatabase, campaigns: list[int], run: Run) -> None:
    """Every counter of the run's campaigns against the clicks it should have recorded."""
    conn = await asyncpg.connect(db.dsn)
    try:
        row = await conn.fetchrow(
            """
            SELECT
              (SELECT coalesce(sum(clicked_count), 0) FROM campaigns WHERE id = ANY($1::int[]))
                AS counter,
              (SELECT count(*) FROM component_interaction_logs WHERE campaign_id = ANY($1::int[]))
                AS logs,
              (SELECT coalesce(sum(total_clicks), 0) FROM click_summaries
                WHERE campaign_id = ANY($1::int[])) AS summaries,
              (SELECT coalesce(sum(clicks), 0) FROM campaign_daily_stats
                WHERE campaign_id = ANY($1::int[])) AS days
            """,
            campaigns,
        )
    finally:
        await conn.close()
    assert row is not None
    answered = run.load.all_statuses[302]
    expected = answered - run.double_clicks
    figures = {name: int(row[name]) for name in ("counter", "logs", "summaries", "days")}
    run.exact_ok = set(figures.values()) == {expected} and run.failures() == 0
    detail = ", ".join(f"{name} {value:,}" for name, value in figures.items())
    run.exact = (
        f"{'yes' if run.exact_ok else 'NO'}: {answered:,} redirects − "
        f"{run.double_clicks:,} double clicks = {expected:,}; {detail}"
    )
    if run.spooled:
        run.exact += f" ({run.spooled:,} via the spool)"


async def measure(
    db: TempDatabase, secret: str, password: str, sizes: Sizes, workers: int
) -> tuple[Run, Run, Run]:
    runs: list[Run] = []
    for label, path, batching in (
        ("bare", "/__bare302", True),
        ("batched", "/__track", True),
        ("single", "/__track", False),
    ):
        var_dir = Path(tempfile.mkdtemp(prefix=f"bench-clicks-{label}-"))
        tag = f"{label}-w{workers}"
        server = Server(tag, server_env(db, secret, var_dir, batching=batching), workers=workers)
        async with server:
            campaigns = await make_campaigns(server, password, tag)
            log(f"{tag}: {sizes.clients} clients on {path}, {sizes.seconds:.0f} s")
            run = await click_run(server, sizes, tag, path, campaigns, workers)
        # The server has stopped: its writer drained and its spool closed.
        if path == "/__track":
            run.spooled = await replay_leftovers(db, var_dir)
            await check_exact(db, campaigns, run)
        shutil.rmtree(var_dir, ignore_errors=True)
        log(f"{tag}: {run.rate:,.0f}/s p99 {ms(run.load.pct(99))} {run.exact}")
        runs.append(run)
    bare, batched, single = runs
    return bare, batched, single


async def bench() -> str:
    from tallyhub import migrate

    sizes = Sizes.from_env()
    load_before = machine_load()
    started = time.perf_counter()
    secret = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(12)
    results: dict[int, tuple[Run, Run, Run]] = {}
    async with temp_database("clicks") as db:
        version = await postgres_version(db.dsn)
        await asyncio.to_thread(migrate.upgrade, db.url)
        await _create_admin(db, password)
        for workers in sizes.workers:
            results[workers] = await measure(db, secret, password, sizes, workers)
    load_after = machine_load()

    table = Table(
        f"clicks — PostgreSQL {version}, /__track over {USERS:,} users × {CAMPAIGNS} campaigns "
        f"× {len(TAGS)} tag sets, {sizes.clients} connections"
    )
    for workers, (bare, batched, single) in results.items():
        w = f"{workers} worker{'s' if workers > 1 else ''}"
        table.add(f"(a) bare 302, {w}", f"{bare.rate:,.0f} /s")
        table.add("    latency p50 / p95 / p99", bare.latencies())
        table.add(
            f"(b) /__track batched, {w}",
            f"{batched.rate:,.0f} /s",
            f"≥ {GOAL_CLICKS_PER_S:,} /s (stretch {STRETCH_CLICKS_PER_S:,})",
            batched.rate >= GOAL_CLICKS_PER_S,
        )
        table.add(
            "    latency p50 / p95 / p99",
            batched.latencies(),
            f"p99 ≤ {GOAL_P99_S * 1000:.0f} ms",
            batched.load.pct(99) <= GOAL_P99_S,
        )
        table.add("    writer", batched.writer)
        table.add("    CPU (% of one core)", str(batched.cpu))
        table.add("    CPU per click", batched.cpu.per_event(batched.rate))
        table.add(f"(c) /__track one transaction per request, {w}", f"{single.rate:,.0f} /s")
        table.add("    latency p50 / p95 / p99", single.latencies())
        table.add("    CPU (% of one core)", str(single.cpu))
        b_over_a = batched.rate / bare.rate if bare.rate else 0.0
        b_over_c = batched.rate / single.rate if single.rate else 0.0
        table.add(
            f"ratio b/a, {w}",
            f"{b_over_a:.2f}",
            f"≥ {STRETCH_B_OVER_A} (stretch)",
            b_over_a >= STRETCH_B_OVER_A,
        )
        table.add(
            f"ratio b/c, {w}", f"{b_over_c:.1f} ×", f"≥ {GOAL_B_OVER_C:.0f} ×",
            b_over_c >= GOAL_B_OVER_C,
        )  # fmt: skip
        for run in (batched, single):
            name = "batched" if run is batched else "one transaction per request"
            table.add(f"exact, {name}, {w}", run.exact, "equal", run.exact_ok)
    table.note(
        f"machine: {load_before} before, {load_after} after; the machine is shared with "
        "other work, so figures may be depressed"
    )
    table.note(
        "server: `tallyhub serve` (uvicorn, uvloop + httptools; one SO_REUSEPORT socket per "
        f"worker), TALLYHUB_ENV=production, scheduler off, "
        f"default pool; load generator: this process, {sizes.clients} raw keep-alive HTTP/1.1 "
        f"connections on the same machine; {sizes.warmup:.0f} s warm-up + "
        f"{sizes.seconds:.0f} s measured per run; rates count 302 answers in the window"
    )
    table.note(
        f"every {DOUBLE_CLICK_EVERY}th request repeats the previous one on its connection "
        f"(a double click; dedup window {DEDUP_WINDOW_MS} ms); (c) is the same server with "
        f"TALLYHUB_CLICKS__BATCHING__ENABLED=false; whole benchmark "
        f"{time.perf_counter() - started:.0f} s"
    )
    return table.render()


def run() -> str:
    """Measure and return the table (the entry point `python -m bench` uses)."""
    return run_fast(bench)


if __name__ == "__main__":
    print(run())
