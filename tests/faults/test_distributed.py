"""Several machines' worth of processes on one PostgreSQL and one Redis: two `serve`, one
`beat`, two `worker`. Each job slot runs once, at the time beat fired it for; a click
spooled on either API host is counted; a worker killed mid-run has its run taken over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from tests.conftest import REDIS_URL, unavailable
from tests.faults.processes import (
    Acked,
    PrivateCluster,
    Serve,
    SlowProxy,
    click_load,
    private_cluster,
    sign_in,
    wait_until,
)
from tests.faults.test_outages import FAST_REPLAY, _all_counted_once, _campaign

pytestmark = pytest.mark.faults

HOST_URL = "https://shop.example.com/"


@pytest.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unavailable(f"Redis unreachable at {REDIS_URL}: {error!r}")
    async with private_cluster() as started:
        yield started


@dataclass
class Celery:
    """A `tallyhub worker` or `tallyhub beat` process."""

    process: asyncio.subprocess.Process
    log: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _environment(database_url: str, var: Path, queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYHUB_")}
    return env | {
        "TALLYHUB_ENV": "test",
        "TALLYHUB_DATABASE_URL": database_url,
        "TALLYHUB_SECRET_KEY": "fault-tests-secret-key-not-for-production-0123456789",
        "TALLYHUB_VAR_DIR": str(var),
        "TALLYHUB_SCHEDULER": "celery",
        "TALLYHUB_REDIS_URL": REDIS_URL,
        "TALLYHUB_JOB_QUEUE": queue,
        "TALLYHUB_JOB_LEASE_SECONDS": "3",
        # Beat's start-up catches up only the interval jobs' slots, not a daily job whose
        # slot was in the hour before (a prune caught up at 05:10 Asia/Shanghai held worker
        # 1's one slot, through the 1 s proxy, past the test's minute).
        "TALLYHUB_JOB_GRACE_SECONDS": "20",
    }


async def _celery(args: list[str], env: dict[str, str], var: Path) -> Celery:
    await asyncio.to_thread(var.mkdir, parents=True, exist_ok=True)
    log = var / f"{args[0]}.log"
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tallyhub"),
        *args,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Celery(process, log)


async def _runs(cluster: PrivateCluster, job: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT scheduled_for, trigger, status, attempt FROM job_runs "
                "WHERE job_name = $1 ORDER BY scheduled_for, attempt",
                job,
            )
        )
    finally:
        await conn.close()


async def _known_campaign(server: Serve, campaign_id: int, acked: Acked) -> None:
    """Clicks until this server redirects: with a 1 ms budget, its first click of a
    campaign it has not read yet is refused (503) while the read goes on behind it."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        attempt = 0

        async def redirects() -> bool:
            nonlocal attempt
            attempt += 1
            uid = f"warm-{server.port}-{attempt}"
            params = {"cid": campaign_id, "uid": uid, "type": "button_url", "to": HOST_URL}
            response = await client.get("/__track", params=params)
            if response.status_code == 302:
                acked.clicks.append(uid)
            return response.status_code == 302

        await wait_until(redirects, f"{server.base_url} redirecting campaign {campaign_id}", 20)


async def _spooled(server: Serve) -> float:
    """How many clicks this server wrote to its spool (its own metric)."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        text = (await client.get("/metrics")).text
    values = [
        line.split()[-1] for line in text.splitlines() if line.startswith("track_spooled_total")
    ]
    return float(values[0]) if values else 0.0


@contextlib.asynccontextmanager
async def _stopping(*processes: Celery | Serve) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)


async def test_two_servers_a_beat_and_two_workers_share_the_work_exactly(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    queue = f"tallyhub-faults-{uuid.uuid4().hex[:8]}"
    # Each API host answers a click it could not commit within 1 ms from its spool.
    spooling = FAST_REPLAY | {"TALLYHUB_CLICKS__COMMIT_TIMEOUT_MS": "1"}
    servers = [
        Serve(
            cluster.url,
            tmp_path / name,
            spooling | _environment(cluster.url, tmp_path / name, queue),
        )
        for name in ("api-a", "api-b")
    ]
    env = _environment(cluster.url, tmp_path / "beat", queue)
    beat = await _celery(["beat"], env, tmp_path / "beat")
    workers = [
        await _celery(
            ["worker", "--hostname", f"{name}@%h", "-Q", queue, "--concurrency", "1"],
            _environment(cluster.url, tmp_path / name, queue),
            tmp_path / name,
        )
        for name in ("w1", "w2")
    ]
    async with _stopping(beat, *workers, *servers):
        for server in servers:
            await server.start()
        campaign_id = await _campaign(servers[0].base_url, warm=False)
        acked = Acked()
        for server in servers:
            await _known_campaign(server, campaign_id, acked)
        loads = [
            asyncio.create_task(
                click_load(s.base_url, campaign_id, acked, clients=3, prefix=f"{n}-")
            )
            for n, s in enumerate(servers)
        ]
        await asyncio.sleep(3.0)
        acked.stop.set()
        await asyncio.gather(*loads)
        assert acked.refused == {}, acked.refused
        for server in servers:  # each host answered clicks from its own spool
            assert await _spooled(server) > 0, server.base_url
        await _all_counted_once(cluster, campaign_id, acked)

        # The spool replay job every 10 s: beat's slots, each run once, at its slot.
        async def two_slots_ran() -> bool:
            runs = await _runs(cluster, "clicks.replay_spool")
            return len([r for r in runs if r["status"] == "succeeded"]) >= 2

        await wait_until(two_slots_ran, "two slots of clicks.replay_spool run", 40)
        runs = await _runs(cluster, "clicks.replay_spool")
        slots = [r["scheduled_for"] for r in runs]
        assert len(slots) == len(set(slots)), runs
        for run in runs:  # the slot beat fired for: a multiple of 10 s, run once
            assert run["scheduled_for"].replace(tzinfo=UTC).timestamp() % 10 == 0, run
            assert (run["status"], run["attempt"]) in {("succeeded", 1), ("running", 1)}, run


async def test_a_killed_workers_run_is_taken_over(cluster: PrivateCluster, tmp_path: Path) -> None:
    """Worker 1 reaches the database through a proxy that holds every answer 1 s, so a run
    by hand is still running when it is killed; worker 2 runs it again once its 3 s lease
    has lapsed (core.recover_runs, every 30 s).

    Beat starts only after the kill: through that proxy, worker 1's one slot cannot keep
    up with beat's interval jobs (the spool replay every 10 s, the breakdown fold every
    60 s, the recovery every 30 s), and the run by hand would wait behind them."""
    queue = f"tallyhub-faults-{uuid.uuid4().hex[:8]}"
    api = Serve(cluster.url, tmp_path / "api", _environment(cluster.url, tmp_path / "api", queue))
    async with SlowProxy(cluster.port) as proxy:
        proxy.delay = 1.0
        slow_url = cluster.url.replace(f":{cluster.port}/", f":{proxy.port}/")
        first = await _celery(
            ["worker", "--hostname", "w1@%h", "-Q", queue, "--concurrency", "1"],
            _environment(slow_url, tmp_path / "w1", queue),
            tmp_path / "w1",
        )
        async with _stopping(first, api):
            await api.start()
            auth = await sign_in(api.base_url)
            async with httpx.AsyncClient(base_url=api.base_url) as client:
                response = await client.post("/api/jobs/leads.recalibrate/run", headers=auth)
                assert response.status_code == 202, response.text
                run_id = response.json()["id"]

            async def status() -> str:
                async with httpx.AsyncClient(base_url=api.base_url) as client:
                    answer = await client.get(f"/api/jobs/runs/{run_id}", headers=auth)
                    return str(answer.json()["status"])

            async def running() -> bool:
                return await status() == "running"

            await wait_until(running, "the run by hand started on worker 1", 90)
            first.kill()
            beat = await _celery(
                ["beat"], _environment(cluster.url, tmp_path / "beat", queue), tmp_path / "beat"
            )
            second = await _celery(
                ["worker", "--hostname", "w2@%h", "-Q", queue, "--concurrency", "1"],
                _environment(cluster.url, tmp_path / "w2", queue),
                tmp_path / "w2",
            )
            async with _stopping(beat, second):

                async def taken_over() -> bool:
                    return await status() == "succeeded"

                await wait_until(taken_over, "the killed run taken over by worker 2", 60)
                # Only the run by hand: between 19:00 and 20:00 UTC beat's start-up also
                # catches up the job's 03:00 (Asia/Shanghai) slot, a scheduled run of its own.
                runs = await _runs(cluster, "leads.recalibrate")
                (run,) = [r for r in runs if r["trigger"] == "manual"]
                assert run["attempt"] == 2, run
