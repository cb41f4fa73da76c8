"""The benchmarks' shared kit: a throwaway PostgreSQL database, the real server started as a
subprocess, a keep-alive HTTP/1.1 load generator, percentiles and the printed table.

The load generator speaks raw HTTP/1.1 over asyncio protocols (no client library) so that
on a small machine the generator costs little of the CPU the server needs. Every client
finishes the request it has in flight before stopping, so the 200 answers it counts are
exactly the requests the server acknowledged: the figure to compare with the counters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import structlog

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # benchmarks only ever send traffic to this machine
_STARTED = time.perf_counter()


# ---------------------------------------------------------------- small things


def run_fast(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a benchmark's coroutine on uvloop (installed with uvicorn[standard]): the load
    generator needs its speed."""
    import uvloop

    return uvloop.run(main())


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the tables."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds * 1000:,.0f} ms"


def machine_load() -> str:
    """The `uptime` load averages and core count: other work on the machine depresses
    the figures, so they are printed with them."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


class CpuMeter:
    """CPU seconds used during a phase by the server, by every `postgres` process (all
    databases: other work on the machine included) and by this process (the load
    generator), read from /proc; as a percentage of one core over the phase."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._began = 0.0
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @staticmethod
    def _ticks(pid: int | str) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> tuple[float, float, float]:
        """(server and its worker processes, every postgres process, this process)."""
        server = self._ticks(self.server_pid)
        postgres = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            name = stat[stat.find("(") + 1 : stat.rfind(")")]
            parent = int(stat.rpartition(")")[2].split()[1])
            if name == "postgres":
                postgres += self._ticks(entry.name)
            elif parent == self.server_pid:
                server += self._ticks(entry.name)
        return (server, postgres, time.process_time())

    def start(self) -> None:
        self._began = time.perf_counter()
        self._start = self._sample()

    def stop(self) -> CpuUse:
        elapsed = time.perf_counter() - self._began
        now = self._sample()
        server, postgres, generator = (
            100 * (b - a) / elapsed for a, b in zip(self._start, now, strict=True)
        )
        return CpuUse(server, postgres, generator)


def _per_event_us(percent_of_a_core: float, rate: float) -> float:
    return percent_of_a_core / 100 / rate * 1e6 if rate else 0.0


@dataclass(frozen=True)
class CpuUse:
    """CPU use over a phase, each part as a percentage of one core."""

    server: float
    postgres: float
    generator: float

    def __str__(self) -> str:
        return (
            f"server {self.server:.0f}%, postgres (all databases) {self.postgres:.0f}%, "
            f"load generator {self.generator:.0f}%"
        )

    def server_us(self, rate: float) -> float:
        """The server's CPU per event (µs) at `rate` events a second."""
        return _per_event_us(self.server, rate)

    def postgres_us(self, rate: float) -> float:
        return _per_event_us(self.postgres, rate)

    def per_event(self, rate: float) -> str:
        return f"server {self.server_us(rate):.0f} µs, postgres {self.postgres_us(rate):.0f} µs"


async def measured_cpu(server: Server, warmup: float, seconds: float, name: str) -> CpuUse:
    """The CPU use of a load run's measured window (`seconds` after `warmup`), with the
    server sampled by py-spy meanwhile when BENCH_PROFILE_DIR asks for it. Start it as a
    task next to the load."""
    meter = CpuMeter(server.pid)
    await asyncio.sleep(warmup)
    meter.start()
    profiler = server.profile(seconds, name)
    await asyncio.sleep(seconds)
    cpu = meter.stop()
    if profiler is not None:
        await asyncio.to_thread(profiler.wait)
    return cpu


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text to {'name{labels}': value}."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


# ---------------------------------------------------------------- the database


def server_dsn() -> str:
    """The PostgreSQL server to create benchmark databases on (asyncpg DSN)."""
    return os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class TempDatabase:
    name: str
    dsn: str  # for asyncpg
    url: str  # for SQLAlchemy and the server (postgresql+asyncpg://…)


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def temp_database(prefix: str) -> AsyncIterator[TempDatabase]:
    """A uniquely named empty database, dropped at the end (set BENCH_KEEP_DB=1 to keep
    it). Only the database created here is ever dropped."""
    name = f"tallyhub_bench_{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(server_dsn(), name)
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    log(f"created database {name}")
    try:
        yield TempDatabase(name, dsn, url)
    finally:
        if os.environ.get("BENCH_KEEP_DB"):
            log(f"kept database {name} (BENCH_KEEP_DB)")
        else:
            admin = await asyncpg.connect(server_dsn())
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            log(f"dropped database {name}")


async def postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version.split()[0]
    finally:
        await conn.close()


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`uvicorn tallyhub.app:create_app --factory` (uvloop, httptools, one worker unless
    told otherwise) as a subprocess on a free port of 127.0.0.1, with the given TALLYHUB_
    environment."""

    def __init__(self, label: str, env: Mapping[str, str], workers: int = 1) -> None:
        self.label = label
        self.workers = workers
        self.env = dict(env)
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in stop())
            prefix=f"bench-server-{label}-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> Server:
        # `tallyhub serve`, as deployed: uvicorn (uvloop and httptools, its defaults when
        # installed) and, with several workers, one SO_REUSEPORT socket per worker.
        command = [
            str(Path(sys.executable).parent / "tallyhub"),
            "serve",
            "--no-migrate",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        env = {**os.environ, **self.env}
        self.process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"server {self.label} exited at start:\n{self.log_tail()}")
            try:
                conn = await connect(HOST, self.port)
            except OSError:
                conn = None
            if conn is not None:
                status, _ = await conn.request(build_request("GET", "/readyz", self.port))
                conn.close()
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {self.label} not ready in 60 s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)
        log(f"server {self.label} ready on port {self.port} (pid {self.pid})")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM (uvicorn drains: the lifespan stops the writers), SIGKILL after 30 s.
        The server's log is deleted unless it holds an error, then its path is printed."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._finish_log()

    def _finish_log(self) -> None:
        if self._log.closed:
            return
        self._log.close()
        path = Path(self._log.name)
        text = path.read_text(errors="replace")
        errors = text.count("Traceback") + text.count('"level": "error"')
        clean = (0, None, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after draining
        if errors or (self.process is not None and self.process.returncode not in clean):
            log(f"server {self.label} logged {errors} error(s); its log is kept at {path}")
        else:
            path.unlink()

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def profile(self, seconds: float, name: str) -> subprocess.Popen[bytes] | None:
        """With BENCH_PROFILE_DIR set and py-spy installed, sample the server for `seconds`
        into <dir>/<name>.txt (collapsed stacks, one line per stack with its count)."""
        directory = os.environ.get("BENCH_PROFILE_DIR")
        pyspy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if not directory or not pyspy:
            return None
        Path(directory).mkdir(parents=True, exist_ok=True)
        out = Path(directory) / f"{name}.txt"
        log(f"profiling server {self.label} for {seconds:.0f} s into {out}")
        return subprocess.Popen(
            [pyspy, "record", "--pid", str(self.pid), "--duration", str(int(seconds)),
             "--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip


# ---------------------------------------------------------------- raw HTTP/1.1 client

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time. Understands responses
    with a Content-Length (all the app sends); that is all a benchmark needs."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end])
        match = _CONTENT_LENGTH.search(head)
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request, return (status, body)."""
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, host, port)
    sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return protocol


def build_request(
    method: str,
    path: str,
    port: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# ---------------------------------------------------------------- load


@dataclass
class LoadResult:
    """What a load run saw. `window`, `latencies` and `statuses` cover the measured window
    (after warm-up); `ok_by_key` and `all_statuses` cover every answer, warm-up included."""

    clients: int
    window: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    all_statuses: Counter[int] = field(default_factory=Counter)
    ok_by_key: Counter[str] = field(default_factory=Counter)
    errors: int = 0  # connection errors (no HTTP answer), all phases
    error_samples: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.window if self.window else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)


RequestMaker = Callable[[int], tuple[bytes, str]]


async def run_load(
    port: int,
    next_request: RequestMaker,
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    """`clients` connections each send `next_request(client_index)` back to back for
    `warmup + seconds`; answers that complete inside the last `seconds` are measured.
    A client stops only after its in-flight request has been answered."""
    result = LoadResult(clients=clients, window=seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    bodies: list[bytes] = []

    async def client(index: int) -> None:
        conn: HttpConnection | None = None
        perf = time.perf_counter
        clock = loop.time
        while clock() < stop_at:
            if conn is None or conn.closed:
                conn = await connect(HOST, port)
            data, key = next_request(index)
            began = perf()
            try:
                status, body = await conn.request(data)
            except ConnectionError as error:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(repr(error))
                conn = None
                continue
            elapsed = perf() - began
            result.all_statuses[status] += 1
            if status == 200:
                result.ok_by_key[key] += 1
            elif len(bodies) < 5:
                bodies.append(body[:300])
            now = clock()
            if measure_from <= now <= stop_at:
                result.latencies.append(elapsed)
                result.statuses[status] += 1
        if conn is not None:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    result.error_samples.extend(f"HTTP body: {b.decode(errors='replace')}" for b in bodies)
    return result


async def sequential_latencies(port: int, request: bytes, count: int, warmup: int) -> list[float]:
    """One connection, `count` requests one after the other; raises on a non-200."""
    conn = await connect(HOST, port)
    latencies: list[float] = []
    try:
        for i in range(warmup + count):
            began = time.perf_counter()
            status, body = await conn.request(request)
            elapsed = time.perf_counter() - began
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
            if i >= warmup:
                latencies.append(elapsed)
    finally:
        conn.close()
    return latencies


# ---------------------------------------------------------------- the table


@dataclass
class _Row:
    measure: str
    value: str
    goal: str
    verdict: str


class Table:
    """A Markdown table (measure | figure | goal | verdict) with notes under it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[_Row] = []
        self.notes: list[str] = []

    def add(self, measure: str, value: str, goal: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "**missed**")
        self.rows.append(_Row(measure, value, goal, verdict))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        header = ("measure", "figure", "goal", "verdict")
        cells = [header, *((r.measure, r.value, r.goal, r.verdict) for r in self.rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]

        def line(row: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", line(header)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out.extend(line(row) for row in cells[1:])
        if self.notes:
            out.append("")
            out.extend(f"- {note}" for note in self.notes)
        return "\n".join(out)


def quiet_logs() -> None:
    """The services' info lines stay off stdout, which carries only the tables; their
    warnings and errors still reach stderr."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
