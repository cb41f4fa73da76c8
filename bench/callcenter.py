"""Call-center benchmark on PostgreSQL (issue 15): two tables. `python -m bench.callcenter`
prints them. The vendor simulator runs in its own process (`tallyhub simulate callcenter`),
so that drawing and serving its pages does not share a CPU loop with the client measured.

1. A synced past day's grades read from the cache (`GET /api/stats/grade-stats?date=`
   through the real server) against the live computation the seed's v1 did on every read:
   walk the vendor's call records of the day and count the grades (`POST
   /api/stats/grade-stats/refresh` through the same server), the simulator's pages slowed to
   50 ms each, a day of 30,000 records.
2. The sync of a 200,000-record day (pages of 1,000: 200 pages of 50 ms each) into
   PostgreSQL with the pages fetched 8 at a time (the default) against one at a time, each
   run checked against the simulator's truth (`GET /__sim/truth?date=`).

The client's own rate limit (20 requests a second by default) is raised out of the way in
both: what is measured is the walk, not the vendor's allowance.

Overrides: BENCH_CALLCENTER_READ_RECORDS (30,000 records in table 1's day),
BENCH_CALLCENTER_READS (1,000 cached reads after 50 warm-up), BENCH_CALLCENTER_LIVE_RUNS
(30 live computations after one warm-up), BENCH_CALLCENTER_SYNC_RECORDS (200,000),
BENCH_CALLCENTER_ROUNDS (2 runs of each sync variant, in ABBA order),
BENCH_CALLCENTER_PAGE_MS (50); BENCH_POSTGRES_URL, BENCH_KEEP_DB=1.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    HOST,
    ROOT,
    CpuMeter,
    CpuUse,
    Server,
    Table,
    TempDatabase,
    build_request,
    connect,
    env_int,
    free_port,
    log,
    machine_load,
    ms,
    percentile,
    postgres_version,
    quiet_logs,
    run_fast,
    sequential_latencies,
    temp_database,
)

GOAL_READ_P95_S = 0.010
GOAL_SYNC_S = 10.0
PAGE_SIZE = 1000  # records a page (the vendor's most, the configured default)
CONCURRENT = 8  # pages at once (the configured default)
SIM_SEED = 15
API_KEY = "sim-callcenter-key"  # what `tallyhub simulate callcenter` accepts
BENCH_RATE = 100_000.0  # requests a second: the client's rate limit, out of the way
DAYS_BACK = 2  # the day measured: two days before the simulator's today (complete)
READ_WARMUP = 50


@dataclass(frozen=True)
class Sizes:
    read_records: int
    reads: int
    live_runs: int
    sync_records: int
    rounds: int
    page_ms: int

    @classmethod
    def from_env(cls) -> Sizes:
        return cls(
            read_records=env_int("BENCH_CALLCENTER_READ_RECORDS", 30_000),
            reads=env_int("BENCH_CALLCENTER_READS", 1000),
            live_runs=env_int("BENCH_CALLCENTER_LIVE_RUNS", 30),
            sync_records=env_int("BENCH_CALLCENTER_SYNC_RECORDS", 200_000),
            rounds=env_int("BENCH_CALLCENTER_ROUNDS", 2),
            page_ms=env_int("BENCH_CALLCENTER_PAGE_MS", 50),
        )


def latencies_text(values: list[float]) -> str:
    return " / ".join(ms(percentile(values, q)) for q in (50, 95, 99))


# ---------------------------------------------------------------- the vendor simulator


class Simulator:
    """`tallyhub simulate callcenter --records-per-day N` as a subprocess on a free port of
    127.0.0.1, its pages slowed to `page_ms` each."""

    def __init__(self, records_per_day: int, page_ms: int) -> None:
        self.records_per_day = records_per_day
        self.page_ms = page_ms
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in __aexit__)
            prefix="bench-callcenter-sim-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> Simulator:
        command = [
            str(Path(sys.executable).parent / "tallyhub"),
            "simulate",
            "callcenter",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--seed",
            str(SIM_SEED),
            "--records-per-day",
            str(self.records_per_day),
        ]
        self.process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        await self._wait_ready()
        await self.control("POST", "/__sim/pages/slow", {"ms": self.page_ms})
        log(f"simulator ready on port {self.port} (pid {self.pid}), {self.records_per_day:,} a day")
        return self

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.url) as client:
            while not await self._answers(client):
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"simulator exited at start:\n{self._tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"simulator not ready in 60 s:\n{self._tail()}")
                await asyncio.sleep(0.1)

    @staticmethod
    async def _answers(client: httpx.AsyncClient) -> bool:
        """Whether the simulator answers yet (a refused connection: not listening yet)."""
        try:
            response = await client.get("/__sim/world")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    async def __aexit__(self, *_: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._finish_log()

    def _finish_log(self) -> None:
        """The simulator's log is deleted unless it exited badly, then its path is printed."""
        self._log.close()
        path = Path(self._log.name)
        if self.process is not None and self.process.returncode not in (0, -signal.SIGTERM):
            log(f"simulator exited with {self.process.returncode}; its log is kept at {path}")
        else:
            path.unlink()

    def _tail(self) -> str:
        self._log.flush()
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-40:])

    async def control(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as client:
            response = await client.request(method, path, json=body, params=params or None)
            return response.raise_for_status().json()

    async def past_day(self) -> date:
        """A complete day: DAYS_BACK before the simulator's today (China time)."""
        world = await self.control("GET", "/__sim/world")
        return date.fromisoformat(world["today"]) - timedelta(days=DAYS_BACK)

    async def truth(self, day: date) -> dict[str, Any]:
        found: dict[str, Any] = await self.control("GET", "/__sim/truth", date=day.isoformat())
        return found

    async def pages_served(self) -> int:
        counts = await self.control("GET", "/__sim/requests")
        by_path: dict[str, int] = counts.get("by_path", {})
        return sum(n for path, n in by_path.items() if path.endswith("/call-records"))


def grades_of(truth: dict[str, Any]) -> tuple[int, int, int]:
    grades = truth["grades"]
    return int(truth["total_records"]), int(grades.get("9", 0)), int(grades.get("1", 0))


# ---------------------------------------------------------------- 1. cached read vs live


@dataclass
class ReadResult:
    records: int = 0
    cached: list[float] = field(default_factory=list)
    live: list[float] = field(default_factory=list)
    cached_answer: dict[str, Any] = field(default_factory=dict)
    live_answer: dict[str, Any] = field(default_factory=dict)
    truth: tuple[int, int, int] = (0, 0, 0)
    pages_per_live: float = 0.0
    cached_cpu: float = 0.0  # the server's CPU seconds per request
    live_cpu: float = 0.0

    @property
    def ratio(self) -> float:
        cached = percentile(self.cached, 95)
        return percentile(self.live, 95) / cached if cached else 0.0

    def agrees(self, answer: dict[str, Any]) -> bool:
        shown = (answer["total_records"], answer["grade_9"], answer["grade_1"])
        return shown == self.truth

    def exact(self) -> tuple[str, bool]:
        cached, live = self.cached_answer, self.live_answer
        ok = self.agrees(cached) and self.agrees(live) and cached["from_cache"]
        ok = ok and not live["from_cache"]
        total, g9, g1 = self.truth
        return (
            f"{'yes' if ok else 'NO'}: truth {total:,} records, grade 9 {g9:,}, grade 1 {g1:,}; "
            f"cached answer {cached['total_records']:,} / {cached['grade_9']:,} / "
            f"{cached['grade_1']:,} (from_cache {cached['from_cache']}), live answer "
            f"{live['total_records']:,} / {live['grade_9']:,} / {live['grade_1']:,} "
            f"(from_cache {live['from_cache']})",
            ok,
        )


def server_env(db: TempDatabase, sim: Simulator) -> dict[str, str]:
    from tallyhub.core.crypto import generate_key

    return {
        "TALLYHUB_DATABASE_URL": db.url,
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_ENV": "production",
        "TALLYHUB_SECRET_KEY": secrets.token_urlsafe(32),
        "TALLYHUB_ENCRYPTION_KEYS": generate_key(),
        "TALLYHUB_CALLCENTER__BASE_URL": sim.url,
        "TALLYHUB_CALLCENTER__API_KEY": API_KEY,
        "TALLYHUB_CALLCENTER__RECORD_PAGE_SIZE": str(PAGE_SIZE),
        "TALLYHUB_CALLCENTER__UPSTREAM__RATE_PER_SECOND": str(BENCH_RATE),
        "TALLYHUB_CALLCENTER__UPSTREAM__RATE_BURST": str(int(BENCH_RATE)),
        "TALLYHUB_CALLCENTER__UPSTREAM__PAGE_CONCURRENCY": str(CONCURRENT),
    }


async def create_admin(db: TempDatabase, password: str) -> None:
    from tallyhub.core.auth import Role, create_user
    from tallyhub.core.db import Database

    database = Database(db.url)
    try:
        await database.run(lambda s: create_user(s, "bench-admin", password, Role.admin))
    finally:
        await database.dispose()


async def bearer(server: Server, password: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{server.port}") as client:
        response = await client.post(
            "/api/auth/token", data={"username": "bench-admin", "password": password}
        )
        token = response.raise_for_status().json()["access_token"]
        return {"Authorization": f"Bearer {token}"}


async def answer_of(server: Server, request: bytes) -> dict[str, Any]:
    """One request's `data` (the grade figures) over a fresh connection."""
    conn = await connect(HOST, server.port)
    try:
        status, body = await conn.request(request)
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    data: dict[str, Any] = json.loads(body)["data"]
    return data


async def with_server_cpu(
    server: Server, request: bytes, count: int, warmup: int
) -> tuple[list[float], float]:
    """`sequential_latencies`, and the server's CPU seconds per measured request (warm-up
    included in the CPU, which a warm-up of 1 in 30 or 50 in 1,000 hardly moves)."""
    meter = CpuMeter(server.pid)
    began = time.perf_counter()
    meter.start()
    latencies = await sequential_latencies(server.port, request, count, warmup)
    cpu = meter.stop()
    return latencies, cpu.server / 100 * (time.perf_counter() - began) / (count + warmup)


async def measure_reads(server: Server, sim: Simulator, password: str, sizes: Sizes) -> ReadResult:
    """Sync the day once (the first live computation, unmeasured), then the live computations
    one after the other, then the cached reads, on one keep-alive connection each."""
    auth = await bearer(server, password)
    day = await sim.past_day()
    result = ReadResult(records=sizes.read_records)
    result.truth = grades_of(await sim.truth(day))
    body = json.dumps({"date": day.isoformat()}).encode()
    refresh = build_request("POST", "/api/stats/grade-stats/refresh", server.port, auth, body)
    read = build_request("GET", f"/api/stats/grade-stats?date={day}", server.port, auth)
    log(f"read: {day}, {sizes.live_runs} live computations through the server")
    before = await sim.pages_served()
    result.live, result.live_cpu = await with_server_cpu(server, refresh, sizes.live_runs, 1)
    result.pages_per_live = (await sim.pages_served() - before) / (sizes.live_runs + 1)
    result.live_answer = await answer_of(server, refresh)
    log(f"read: {sizes.reads} cached reads through the server")
    result.cached, result.cached_cpu = await with_server_cpu(server, read, sizes.reads, READ_WARMUP)
    result.cached_answer = await answer_of(server, read)
    log(f"read: cached p95 {ms(percentile(result.cached, 95))}, live p95 "
        f"{ms(percentile(result.live, 95))}")  # fmt: skip
    return result


async def read_bench(sizes: Sizes) -> tuple[ReadResult, str]:
    from tallyhub import migrate

    password = secrets.token_urlsafe(12)
    async with temp_database("callcenter_read") as db:
        version = await postgres_version(db.dsn)
        await asyncio.to_thread(migrate.upgrade, db.url)
        await create_admin(db, password)
        simulator = Simulator(sizes.read_records, sizes.page_ms)
        async with simulator as sim, Server("callcenter", server_env(db, sim)) as server:
            result = await measure_reads(server, sim, password, sizes)
    return result, version


# ---------------------------------------------------------------- 2. sync, concurrent vs not


@dataclass
class SyncRun:
    seconds: float
    cpu: CpuUse
    pages: int
    stored: tuple[int, int, int]
    upstream_total: int


@dataclass
class Variant:
    label: str
    concurrency: int
    runs: list[SyncRun] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.mean(run.seconds for run in self.runs)

    def each_seconds(self) -> str:
        return ", ".join(f"{run.seconds:.2f}" for run in self.runs)

    def cpu(self) -> str:
        """Mean CPU seconds a sync of the client and of the simulator. PostgreSQL's is left
        out: summed over every backend of a shared server, a backend of other work that
        exits during the run takes its ticks with it, and the figure can come out negative."""
        sim = statistics.mean(run.cpu.server / 100 * run.seconds for run in self.runs)
        client = statistics.mean(run.cpu.generator / 100 * run.seconds for run in self.runs)
        return f"client (this process) {client:.2f} s, simulator {sim:.2f} s"


def sync_settings(sim: Simulator, concurrency: int) -> Any:
    """The configured call-center settings, pointed at the simulator, with the rate limit
    raised and the given page concurrency."""
    from tallyhub.callcenter.config import CallcenterSettings

    base = CallcenterSettings(base_url=sim.url, api_key=API_KEY, record_page_size=PAGE_SIZE)
    upstream = base.upstream.model_copy(
        update={
            "rate_per_second": BENCH_RATE,
            "rate_burst": int(BENCH_RATE),
            "page_concurrency": concurrency,
        }
    )
    return base.model_copy(update={"upstream": upstream})


async def timed_sync(database: Any, sim: Simulator, concurrency: int, day: date) -> SyncRun:
    """`sync_records` of the day (walk, count, replace the day's rows in one transaction),
    timed, with the CPU the client, the simulator and PostgreSQL used meanwhile."""
    from tallyhub.callcenter import service
    from tallyhub.callcenter.client import CallcenterClient
    from tallyhub.core.daywindow import zone

    before = await sim.pages_served()
    meter = CpuMeter(sim.pid)
    async with CallcenterClient(sync_settings(sim, concurrency)) as client:
        ctx = service.SyncContext(database, client)
        meter.start()
        began = time.perf_counter()
        row = await service.sync_records(ctx, day, "bench", zone("Asia/Shanghai"))
        seconds = time.perf_counter() - began
        cpu = meter.stop()
    stored = (row.total_records, row.grade_9, row.grade_1)
    pages = await sim.pages_served() - before
    return SyncRun(seconds, cpu, pages, stored, row.upstream_total)


async def sync_bench(sizes: Sizes) -> tuple[list[Variant], tuple[int, int, int], date]:
    from tallyhub import migrate
    from tallyhub.core.db import Database

    concurrent = Variant(f"pages {CONCURRENT} at a time (the default)", CONCURRENT)
    sequential = Variant("pages one at a time", 1)
    rounds = max(1, sizes.rounds)
    order = [concurrent, sequential, sequential, concurrent] * (rounds // 2)
    order += [concurrent, sequential] * (rounds % 2)
    async with temp_database("callcenter_sync") as db:
        await asyncio.to_thread(migrate.upgrade, db.url)
        database = Database(db.url)
        try:
            async with Simulator(sizes.sync_records, sizes.page_ms) as sim:
                day = await sim.past_day()
                truth = grades_of(await sim.truth(day))  # draws the day before any timing
                for variant in order:
                    run = await timed_sync(database, sim, variant.concurrency, day)
                    variant.runs.append(run)
                    log(f"sync {variant.label}: {run.seconds:.2f} s, {run.pages} pages, "
                        f"stored {run.stored}, truth {truth}")  # fmt: skip
        finally:
            await database.dispose()
    return [concurrent, sequential], truth, day


def sync_exact(variants: list[Variant], truth: tuple[int, int, int]) -> tuple[str, bool]:
    runs = [run for variant in variants for run in variant.runs]
    ok = all(run.stored == truth and run.upstream_total == truth[0] for run in runs)
    total, g9, g1 = truth
    stored = sorted({run.stored for run in runs})
    return (
        f"{'yes' if ok else 'NO'}: /__sim/truth {total:,} records, grade 9 {g9:,}, grade 1 "
        f"{g1:,}; stored (total_records, grade_9, grade_1) in every run: "
        + "; ".join(f"{s[0]:,}, {s[1]:,}, {s[2]:,}" for s in stored),
        ok,
    )


# ---------------------------------------------------------------- the tables


def read_table(result: ReadResult, version: str, sizes: Sizes) -> Table:
    table = Table(
        f"callcenter 1 — PostgreSQL {version}, grade-stats of a synced day of "
        f"{result.records:,} records, vendor pages {sizes.page_ms} ms each"
    )
    cached_p95 = percentile(result.cached, 95)
    table.add(
        f"(a) cached read, GET /api/stats/grade-stats ({len(result.cached):,} reads): "
        "p50 / p95 / p99",
        latencies_text(result.cached),
        f"p95 ≤ {GOAL_READ_P95_S * 1000:.0f} ms",
        cached_p95 <= GOAL_READ_P95_S,
    )
    table.add("    server CPU per cached read", ms(result.cached_cpu))
    table.add(
        f"(b) live computation, POST /api/stats/grade-stats/refresh ({len(result.live)} runs): "
        "p50 / p95 / p99",
        latencies_text(result.live),
    )
    table.add("    server CPU per live computation", ms(result.live_cpu))
    table.add("    vendor pages per live computation", f"{result.pages_per_live:.1f}")
    table.add("ratio b/a (p95)", f"{result.ratio:,.0f} ×")
    text, ok = result.exact()
    table.add("answers equal the vendor's truth", text, "equal", ok)
    return table


def sync_table(
    variants: list[Variant], truth: tuple[int, int, int], day: date, sizes: Sizes
) -> Table:
    concurrent, sequential = variants
    pages = -(-sizes.sync_records // PAGE_SIZE)
    table = Table(
        f"callcenter 2 — sync of a {sizes.sync_records:,}-record day into PostgreSQL "
        f"({pages} pages of {PAGE_SIZE:,}, {sizes.page_ms} ms each)"
    )
    table.add(
        f"(c) {concurrent.label}",
        f"{concurrent.seconds:.2f} s ({concurrent.each_seconds()})",
        f"≤ {GOAL_SYNC_S:.0f} s",
        concurrent.seconds <= GOAL_SYNC_S,
    )
    table.add("    CPU per sync", concurrent.cpu())
    table.add(
        f"(d) {sequential.label}", f"{sequential.seconds:.2f} s ({sequential.each_seconds()})"
    )
    table.add("    CPU per sync", sequential.cpu())
    ratio = sequential.seconds / concurrent.seconds if concurrent.seconds else 0.0
    table.add("ratio d/c", f"{ratio:.1f} ×")
    served = sorted({run.pages for v in variants for run in v.runs})
    table.add("vendor pages served per sync", ", ".join(str(n) for n in served))
    text, ok = sync_exact(variants, truth)
    table.add(f"stored row equals the vendor's truth ({day})", text, "equal", ok)
    return table


async def bench() -> str:
    quiet_logs()
    sizes = Sizes.from_env()
    load_before = machine_load()
    started = time.perf_counter()
    read, version = await read_bench(sizes)
    variants, truth, day = await sync_bench(sizes)
    load_after = machine_load()
    first = read_table(read, version, sizes)
    first.note(
        "server: `tallyhub serve` (one worker), TALLYHUB_ENV=production, scheduler off; "
        f"requests one after the other on one keep-alive connection from this process "
        f"({READ_WARMUP} unmeasured reads and one unmeasured live computation first); the "
        "live computation is what the seed's v1 did on every read (walk every page of the "
        f"day's call records, count the grades), pages of {PAGE_SIZE:,} fetched "
        f"{CONCURRENT} at a time, plus storing the day's row, agents and hours (a few ms)"
    )
    second = sync_table(variants, truth, day, sizes)
    second.note(
        f"`service.sync_records` called in this process (uvloop) with a `CallcenterClient`; "
        f"{sizes.rounds} runs of each variant in ABBA order into one database (every run "
        "after the first replaces the day's rows); the figure is their mean, each run in "
        "parentheses"
    )
    for table in (first, second):
        table.note(
            "vendor: `tallyhub simulate callcenter --records-per-day N` in its own process "
            f'(not a thread of this one), `POST /__sim/pages/slow {{"ms": {sizes.page_ms}}}`; '
            f"the client's rate limit raised to {BENCH_RATE:,.0f} requests/s "
            "(TALLYHUB_CALLCENTER__UPSTREAM__RATE_PER_SECOND and RATE_BURST; the default is "
            "20/s with a burst of 20, which alone would hold 200 pages to ~9 s)"
        )
        table.note(
            f"machine: {load_before} before, {load_after} after; the machine is shared with "
            f"other work, so figures may be depressed; whole benchmark "
            f"{time.perf_counter() - started:.0f} s"
        )
    return first.render() + "\n\n" + second.render()


def run() -> str:
    """Measure and return the tables (the entry point `python -m bench` uses)."""
    return run_fast(bench)


if __name__ == "__main__":
    print(run())
