"""The DOU+ command line, as an operator runs it: `tallyhub simulate douplus` serves the
simulator, `tallyhub sync douplus` syncs every connected account from it with a progress
bar, and what it stored is the simulator's truth."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role, User
from tallyhub.core.columns import utcnow
from tallyhub.core.runtime import Runtime
from tallyhub.douplus import service
from tallyhub.douplus.client import Tokens
from tests.conftest import make_settings

TALLYHUB = str(Path(sys.executable).parent / "tallyhub")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def simulator_process() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [TALLYHUB, "simulate", "douplus", "--port", str(port), "--seed", "11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{url}/__sim/accounts", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "TALLYHUB_VAR_DIR": str(tmp_path),
        "TALLYHUB_DOUPLUS__BASE_URL": url,
        "TALLYHUB_DOUPLUS__APP_SECRET": "sim-secret",
        "TALLYHUB_DOUPLUS__APP_ID": "sim-app",
        "NO_COLOR": "1",
    }


async def _connect(tmp_path: Path, accounts: list[dict[str, Any]]) -> list[tuple[int, str]]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/cli.db", tmp_path)
    runtime = Runtime.build(settings)
    try:

        async def add(session: AsyncSession) -> list[tuple[int, str]]:
            user = User(username="ops", password_hash="-", role=Role.admin, is_active=True)
            session.add(user)
            await session.flush()
            who = Principal(user.id, user.username, user.role)
            connected = []
            for a in accounts:
                tokens = Tokens(a["access_token"], a["expires_in"], a["refresh_token"], None)
                saved, _ = await service.save_account(
                    session, who, runtime.secret_box(), a["aweme_sec_uid"], None, tokens
                )
                connected.append((saved.id, a["aweme_sec_uid"]))
            return connected

        return await runtime.db.run(add)
    finally:
        await runtime.stop()


async def _figures(tmp_path: Path, connected: list[tuple[int, str]]) -> list[tuple[int, Decimal]]:
    runtime = Runtime.build(make_settings(f"sqlite+aiosqlite:///{tmp_path}/cli.db", tmp_path))
    admin = Principal(1, "ops", Role.admin)

    async def read(session: AsyncSession) -> list[tuple[int, Decimal]]:
        figures = []
        for account_id, _ in connected:
            stats = await service.account_stats(
                session, admin, account_id, "all", "Asia/Shanghai", utcnow()
            )
            figures.append((stats.order_count, stats.stat_cost))
        return figures

    try:
        return await runtime.db.run(read, readonly=True)
    finally:
        await runtime.stop()


def test_sync_douplus_from_the_command_line(simulator_process: str, tmp_path: Path) -> None:
    env = _env(tmp_path, simulator_process)
    subprocess.run([TALLYHUB, "db", "upgrade"], env=env, check=True, capture_output=True)
    accounts = httpx.get(f"{simulator_process}/__sim/accounts").json()
    connected = asyncio.run(_connect(tmp_path, accounts))

    done = subprocess.run(
        [TALLYHUB, "sync", "douplus", "--mode", "full"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(connected)}/{len(connected)}" in done.stdout, "the progress bar's count"
    assert "'ok': 3" in done.stdout and "'failed': 0" in done.stdout

    truths = [
        httpx.get(f"{simulator_process}/__sim/totals", params={"aweme_sec_uid": uid}).json()
        for _, uid in connected
    ]
    assert asyncio.run(_figures(tmp_path, connected)) == [
        (truth["order_count"], Decimal(truth["stat_cost"])) for truth in truths
    ]

    refused = subprocess.run(
        [TALLYHUB, "sync", "douplus", "--mode", "weekly"], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "full, incremental" in refused.stdout + refused.stderr
