"""DOU+ on Celery: a sync asked for over the API is queued on the orders queue (seed
appendix C), a real worker on the Redis broker takes it and the orders arrive."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from tallyhub.core.auth import Role
from tallyhub.core.jobs.celery_runner import celery_app
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.douplus import jobs
from tests.conftest import TestDatabase, make_settings
from tests.douplus.helpers import douplus_overrides, expected, simulated, stored
from tests.factories import bearer, user_token


def test_the_sync_jobs_go_to_the_seeds_queues() -> None:
    assert jobs.sync_orders_incremental.queue == jobs.sync_orders_full.queue == "douplus.orders"
    assert jobs.sync_stats.queue == jobs.aggregate_videos.queue == "douplus.stats"
    assert jobs.sync_requested.queue == "douplus.orders"


async def test_a_real_worker_runs_the_sync_asked_for(
    harness_factory: Any,
    server_db: TestDatabase,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This test's own queue, so that no other run's worker or leftover message meets it.
    queue = f"douplus.orders-test-{uuid.uuid4().hex[:8]}"
    with simulated(accounts=1, orders=120) as sim:
        overrides = {**douplus_overrides(sim), "redis_url": redis_url, "scheduler": "celery"}
        async with harness_factory(server_db, **overrides) as h:
            # (after the app's start, which registers every domain's jobs as declared)
            spec = dataclasses.replace(REGISTRY[jobs.sync_requested.name], queue=queue)
            monkeypatch.setitem(REGISTRY, spec.name, spec)
            admin = bearer(await user_token(h.runtime, "admin", Role.admin))
            (uid,) = sim.sec_uids
            view = sim.world.account_views()[0]
            connected = await h.client.post(
                "/api/douplus/accounts",
                json={
                    "aweme_sec_uid": uid,
                    "access_token": view["access_token"],
                    "refresh_token": view["refresh_token"],
                    "expires_in": view["expires_in"],
                },
                headers=admin,
            )
            account_id = connected.json()["id"]
            started = await h.client.post("/api/douplus/sync", json={"mode": "full"}, headers=admin)
            run_id = started.json()["run_id"]
            queued = (await h.client.get(f"/api/jobs/runs/{run_id}", headers=admin)).json()
            assert queued["status"] == "queued", "nothing runs it before a worker takes it"

            worker_settings = make_settings(server_db.url, tmp_path, **overrides)
            app = celery_app(worker_settings)
            try:
                with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
                    run = await _ended(h, admin, run_id)
            finally:
                redis.Redis.from_url(redis_url).delete(queue)
            assert run["status"] == "succeeded", run
            assert await stored(h, account_id) == expected(sim.totals(uid))


async def _ended(h: Any, headers: dict[str, str], run_id: int) -> dict[str, Any]:
    for _ in range(600):
        run = (await h.client.get(f"/api/jobs/runs/{run_id}", headers=headers)).json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {run}")
