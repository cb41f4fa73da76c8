"""A `tallyhub serve` (re)started while its database does not answer: it never exits; with
the campaign snapshot of an earlier run in its var/, it redirects and spools the clicks of
the campaigns it knew at once, says 503 on /readyz, and counts them once the database is
back. Real processes; the database is reached through a TCP proxy that the test stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tallyhub.clicks.models import Campaign
from tallyhub.clicks.service import ClickSpool, SpoolTarget, snapshot_path, spool_directory
from tallyhub.core.auth import Role
from tallyhub.core.db import Database
from tests.clicks.helpers import TARGET, click, proxied
from tests.conftest import TestDatabase
from tests.factories import make_campaign, make_user

postgresql_only = pytest.mark.parametrize("server_db", ["postgresql"], indirect=True)
WAIT = 60.0  # seconds any one step may take before the test gives up
CLEAN_STOP = (0, 130)  # how `serve` ends on SIGINT (130: it says it was interrupted)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    process: asyncio.subprocess.Process
    base: str
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]


@asynccontextmanager
async def serving(url: str, var: Path, log: Path) -> AsyncIterator[Served]:
    """`tallyhub serve` in a process of its own, its output in `log`; SIGINT at the end."""
    port = _free_port()
    env = {
        **os.environ,
        "TALLYHUB_DATABASE_URL": url,
        "TALLYHUB_VAR_DIR": str(var),
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "TALLYHUB_LOG_JSON": "true",
        "TALLYHUB_CLICKS__DEDUP_WINDOW_MS": "0",
        "TALLYHUB_CLICKS__SPOOL__REPLAY_SECONDS": "0.5",
    }
    command = [str(Path(sys.executable).parent / "tallyhub"), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    out = await asyncio.to_thread(open, log, "ab")
    try:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        out.close()  # the server has its own copy
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        yield served
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def until(what: str, check: Any, served: Served | None = None) -> Any:
    """Poll `check()` (async) until it gives something true; fail after WAIT seconds or
    if the server exited."""
    deadline = time.monotonic() + WAIT
    while True:
        with suppress(httpx.TransportError):
            found = await check()
            if found:
                return found
        if served is not None:
            assert served.process.returncode is None, f"the server exited: {served.lines()}"
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


async def _status(client: httpx.AsyncClient, path: str, code: int) -> bool:
    return (await client.get(path)).status_code == code


async def _clicked(url: str, cid: int, expected: int) -> bool:
    db = Database(url)
    try:
        async with db.transaction(readonly=True) as session:
            found = await session.scalar(select(Campaign.clicked_count).where(Campaign.id == cid))
    finally:
        await db.dispose()
    return found == expected


async def _a_campaign_known_to_an_earlier_run(
    through: TestDatabase, var: Path, tmp: Path, harness_factory: Any
) -> int:
    """A campaign made, then clicked through a real `serve` that reached the database:
    that run leaves its schema note and campaign snapshot in var/."""
    async with harness_factory(through, var_dir=var) as h:
        admin = await make_user(h, "admin", Role.admin)
        cid = int((await make_campaign(h, admin))["id"])
    async with (
        serving(through.url, var, tmp / "first.log") as served,
        httpx.AsyncClient(base_url=served.base) as client,
    ):
        await until("ready", lambda: _status(client, "/readyz", 200), served)
        clicked = await click(client, cid=cid, uid="U1")
        assert clicked.status_code == 302, clicked.text
    assert served.process.returncode in CLEAN_STOP
    assert (var / "database.json").exists()
    snapshot = json.loads(snapshot_path(var).read_text())
    assert snapshot["database_id"] and str(cid) in snapshot["campaigns"]
    return cid


@postgresql_only
async def test_a_restarted_server_redirects_from_its_snapshot_until_the_database_is_back(
    server_db: TestDatabase, harness_factory: Any, tmp_path: Path
) -> None:
    proxy, through = await proxied(server_db, _free_port())
    var = tmp_path / "var"
    spool = ClickSpool(spool_directory(var), target=SpoolTarget(None, ""))  # to count
    try:
        cid = await _a_campaign_known_to_an_earlier_run(through, var, tmp_path, harness_factory)
        await proxy.stop()  # the database is down from here on
        async with (
            serving(through.url, var, tmp_path / "second.log") as served,
            httpx.AsyncClient(base_url=served.base) as client,
        ):
            await until("listening", lambda: _status(client, "/healthz", 200), served)
            line = served.logged("serve.database_unreachable")[0]
            assert line["serving_first"] is True
            clicked = await click(client, cid=cid, uid="U2")
            assert clicked.status_code == 302, clicked.text
            assert clicked.headers["location"] == TARGET
            assert spool.stats().events == 1
            unknown = await client.get("/__track", params={"cid": cid + 1, "to": TARGET})
            assert unknown.status_code == 503  # never known here: it cannot be checked
            assert (await client.get("/readyz")).status_code == 503

            await proxy.start()  # the database is back
            await until("ready", lambda: _status(client, "/readyz", 200), served)
            await until("counted", lambda: _clicked(through.url, cid, 2), served)
            assert spool.stats().events == 0
        assert served.process.returncode in CLEAN_STOP
    finally:
        await proxy.stop()


@postgresql_only
async def test_a_server_that_never_saw_its_database_waits_for_it_instead_of_exiting(
    server_db: TestDatabase, tmp_path: Path
) -> None:
    port = _free_port()  # nothing listens here yet: the database does not answer
    url = make_url(server_db.url).set(host="127.0.0.1", port=port)
    var = tmp_path / "var"
    async with (
        serving(url.render_as_string(hide_password=False), var, tmp_path / "s.log") as served,
        httpx.AsyncClient(base_url=served.base) as client,
    ):
        waiting = await until("two attempts", lambda: _tried_twice(served), served)
        assert "waiting for the database" in waiting[0]["reason"]
        with pytest.raises(httpx.ConnectError):  # it does not listen before migrating
            await client.get("/healthz")

        proxy, _ = await proxied(server_db, port)  # the database answers
        try:
            await until("ready", lambda: _status(client, "/readyz", 200), served)
        finally:
            await proxy.stop()
    assert served.process.returncode in CLEAN_STOP
    assert (var / "database.json").exists()


async def _tried_twice(served: Served) -> list[dict[str, Any]] | None:
    found = served.logged("serve.database_unreachable")
    return found if len(found) >= 2 else None
