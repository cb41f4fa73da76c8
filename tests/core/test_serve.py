"""`tallyhub serve --workers N`: every worker gets its own SO_REUSEPORT listening socket,
so a burst of keep-alive connections is spread over the workers instead of piling up on
whichever one woke first; and the settings that depend on the number of processes."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tallyhub.cli import _ReusePortListener
from tallyhub.clicks.config import ClickBatchSettings
from tallyhub.settings import Settings, serving_defaults


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_listener_unpickles_as_a_bound_socket_of_its_own() -> None:
    port = _free_port()
    recipe = _ReusePortListener(socket.AF_INET, ("127.0.0.1", port))
    assert recipe.fileno() == -1  # nothing listens in the supervisor
    first, second = pickle.loads(pickle.dumps(recipe)), pickle.loads(pickle.dumps(recipe))
    try:
        for sock in (first, second):
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert first.fileno() != second.fileno()
    finally:
        first.close()
        second.close()


def test_one_process_keeps_two_click_batches_of_32_in_flight() -> None:
    batching = ClickBatchSettings()
    assert (batching.concurrency, batching.max_batch) == (2, 32)
    assert ClickBatchSettings(concurrency=1).max_batch == 500
    assert ClickBatchSettings(concurrency=3, max_batch=100).max_batch == 100
    assert serving_defaults(Settings(), workers=1) == {}


def test_several_processes_get_one_click_writer_each_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TALLYHUB_CLICKS__BATCHING__CONCURRENCY", raising=False)
    monkeypatch.delenv("TALLYHUB_CLICKS__BATCHING__MAX_BATCH", raising=False)
    defaults = serving_defaults(Settings(), workers=2)
    assert defaults == {"TALLYHUB_CLICKS__BATCHING__CONCURRENCY": "1"}
    for key, value in defaults.items():
        monkeypatch.setenv(key, value)
    in_a_worker = Settings().clicks.batching  # what each process then reads
    assert (in_a_worker.concurrency, in_a_worker.max_batch) == (1, 500)
    # The operator's choice stands, however many processes.
    monkeypatch.setenv("TALLYHUB_CLICKS__BATCHING__CONCURRENCY", "2")
    assert serving_defaults(Settings(), workers=4) == {}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _established_on(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def _environ(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_text().split("\0")


def _sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_two_workers_share_a_burst_of_keep_alive_connections(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "TALLYHUB_VAR_DIR": str(tmp_path / "var"),
        "TALLYHUB_SCHEDULER": "off",
    }
    env.pop("TALLYHUB_CLICKS__BATCHING__CONCURRENCY", None)
    command = [str(Path(sys.executable).parent / "tallyhub"), "serve", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    server = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    clients: list[httpx.AsyncClient] = []
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as probe:
            while True:
                try:
                    ready = await probe.get(f"http://127.0.0.1:{port}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.returncode is None, "the server exited at start"
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # both workers listening

        # 64 connections opened at once, each kept open after its request.
        clients = [
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=1)
            )
            for _ in range(64)
        ]
        answers = await asyncio.gather(*(c.get("/healthz") for c in clients))
        assert all(a.status_code == 200 for a in answers)

        workers = _children(server.pid)
        for pid in workers:  # several processes: one click writer each (serving_defaults)
            assert "TALLYHUB_CLICKS__BATCHING__CONCURRENCY=1" in _environ(pid)
        established = _established_on(port)
        held = Counter({pid: len(_sockets_of(pid) & established) for pid in workers})
        assert sum(held.values()) == 64
        busy = [n for n in held.values() if n > 0]
        assert len(busy) == 2, held
        # Spread by the kernel's hash: an even split give or take; 16 or fewer on one side
        # would happen about once in 30,000 runs.
        assert min(busy) > 16, held
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
        server.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(server.wait(), timeout=30)
        except TimeoutError:
            server.kill()
            await server.wait()
