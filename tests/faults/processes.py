"""Real processes for the fault tests: a private PostgreSQL cluster (its own data directory
and port, started and stopped by the test; never the shared server), `tallyhub serve`
processes, a TCP proxy that can slow the database down, and load that records what was
acknowledged. Everything listens on loopback only, and every loop is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tallyhub import migrate
from tallyhub.core.auth import Role, create_user
from tallyhub.core.db import Database
from tests.conftest import unavailable
from tests.factories import PASSWORD

HOST = "127.0.0.1"
SECRET = "fault-tests-secret-key-not-for-production-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60.0
) -> None:
    """Poll `check` every 0.2 s until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {seconds:.0f} s")
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in versions:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        unavailable(f"PostgreSQL's {name} not found (package postgresql)")
    return str(found)


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: the cluster runs as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PrivateCluster:
    """A PostgreSQL cluster of the test's own: `start()`, `stop()` (immediate, like a crash
    or a pulled plug), `start()` again; `url` for TallyHub, `dsn` for asyncpg."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tallyhub-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/tallyhub"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/tallyhub"

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            _as_postgres(list(command)), capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise AssertionError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{HOST}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 60\nshared_buffers = 32MB\n"
            )

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    async def create_database(self) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@{HOST}:{self.port}/postgres")
        try:
            await conn.execute("CREATE DATABASE tallyhub")
        finally:
            await conn.close()

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def private_cluster() -> AsyncIterator[PrivateCluster]:
    """A migrated private cluster with the admin user `admin` (password PASSWORD)."""
    if shutil.which("runuser") is None and os.geteuid() == 0:
        unavailable("runuser not found: cannot start PostgreSQL as its own user")
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        await cluster.create_database()
        await asyncio.to_thread(migrate.upgrade, cluster.url)
        db = Database(cluster.url)
        try:
            await db.run(lambda s: create_user(s, "admin", PASSWORD, Role.admin))
        finally:
            await db.dispose()
        yield cluster
    finally:
        cluster.remove()


# ---------------------------------------------------------------- tallyhub serve


@dataclass
class Serve:
    """A real `tallyhub serve` process (one worker) on its own port and var directory."""

    database_url: str
    var_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYHUB_")}
        return env | {
            "TALLYHUB_ENV": "test",
            "TALLYHUB_DATABASE_URL": self.database_url,
            "TALLYHUB_SECRET_KEY": SECRET,
            "TALLYHUB_VAR_DIR": str(self.var_dir),
            "TALLYHUB_SCHEDULER": "embedded",
            **self.extra_env,
        }

    async def start(self, *, ready: str = "/healthz") -> None:
        command = [str(Path(sys.executable).parent / "tallyhub"), "serve", "--no-migrate"]
        command += ["--host", HOST, "--port", str(self.port)]
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            *command,
            env=self.environment(),
            stdout=(self.var_dir / "serve.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as probe:

            async def answers() -> bool:
                assert self.process is not None and self.process.returncode is None, (
                    "serve exited at start: " + self.log()[-2000:]
                )
                with contextlib.suppress(httpx.TransportError):
                    return (await probe.get(ready)).status_code == 200
                return False

            await wait_until(answers, f"serve on {self.port} answering {ready}")

    def log(self) -> str:
        path = self.var_dir / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """kill -9: no shutdown, no drain; what was not committed or spooled is gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def sign_in(base_url: str, username: str = "admin") -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


# ---------------------------------------------------------------- load


@dataclass
class Acked:
    """What the load was told was done: ids of clicks answered 302 and of leads answered
    200, and how many requests got no answer (those may or may not count)."""

    clicks: list[str] = field(default_factory=list)
    leads: list[str] = field(default_factory=list)
    unanswered: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set: the load ends


# One request of a load: (client, client number, sequence) → (the event's id, the answer).
Attempt = Callable[[httpx.AsyncClient, int, int], Awaitable[tuple[str, httpx.Response]]]


async def _keep_sending(
    client: httpx.AsyncClient, n: int, attempt: Attempt, ok: int, into: list[str], acked: Acked
) -> None:
    """Client n sends `attempt` after `attempt` (a new id each) until the load stops;
    the ids answered `ok` go `into` the acknowledged list."""
    sequence = 0
    while not acked.stop.is_set():
        sequence += 1
        try:
            event_id, response = await attempt(client, n, sequence)
        except httpx.TransportError:
            acked.unanswered += 1
            await asyncio.sleep(0.05)
            continue
        if response.status_code == ok:
            into.append(event_id)
        else:
            acked.refused[response.status_code] = acked.refused.get(response.status_code, 0) + 1


async def click_load(
    base_url: str,
    campaign_id: int,
    acked: Acked,
    *,
    clients: int = 6,
    answer_within: float = 10.0,
    prefix: str = "u",
) -> None:
    """`clients` keep-alive clients click, each with a new user id every time (so no click
    is a double click), until `acked.stop` is set."""

    async def click(client: httpx.AsyncClient, n: int, sequence: int) -> tuple[str, Any]:
        uid = f"{prefix}{n}x{sequence}"
        params = {"cid": campaign_id, "uid": uid, "type": "button_url"}
        params["to"] = "https://shop.example.com/"
        return uid, await client.get("/__track", params=params)

    async def one_client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=answer_within) as client:
            await _keep_sending(client, n, click, 302, acked.clicks, acked)

    await asyncio.gather(*(one_client(n) for n in range(clients)))


async def lead_load(
    base_url: str, code: str, account: str, acked: Acked, *, clients: int = 4, prefix: str = "e"
) -> None:
    """`clients` desktop clients report leads with unique event ids until `acked.stop`."""

    async def report(client: httpx.AsyncClient, n: int, sequence: int) -> tuple[str, Any]:
        event_id = f"{prefix}{n}x{sequence}"
        body = {
            "account_line_id": account,
            "incoming_line_id": f"C{n}x{sequence % 500}",
            "event_id": event_id,
        }
        return event_id, await client.post("/api/client/incoming", json=body)

    async def one_client(n: int) -> None:
        headers = {"X-Activation-Code": code}
        async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=headers) as client:
            await _keep_sending(client, n, report, 200, acked.leads, acked)

    await asyncio.gather(*(one_client(n) for n in range(clients)))


# ---------------------------------------------------------------- a slow database


class SlowProxy:
    """A TCP proxy to the database whose every forwarded chunk can be held back by
    `delay` seconds: a database that answers, slowly."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._connection, HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.target_port)
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
            self._tasks.discard(pump)
        for w in (writer, upstream_writer):
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()
