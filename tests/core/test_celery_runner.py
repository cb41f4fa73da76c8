"""The Celery runner: a real worker on the Redis broker runs a registered job, and the
run is recorded in job_runs through the same slot claim as the embedded runner."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.beat import Service
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from tallyhub.core.auth import Role
from tallyhub.core.db import Database
from tallyhub.core.jobs.celery_runner import TASK, celery_app, send_queued_run
from tallyhub.core.jobs.registry import REGISTRY, JobSpec, job
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tallyhub.core.runtime import Runtime
from tests.conftest import Harness, TestDatabase, make_settings, unavailable
from tests.factories import bearer, user_token

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def counted_job() -> Iterator[list[str]]:
    calls: list[str] = []

    @job("test.celery_counted", every_seconds=3600)
    async def counted(runtime: Runtime) -> dict[str, Any]:
        calls.append(runtime.settings.database_url)
        return {"calls": len(calls)}

    REGISTRY.add(counted)

    yield calls
    REGISTRY.pop("test.celery_counted", None)


def _redis_or_unavailable() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unavailable(f"Redis unreachable at {REDIS_URL}: {error!r}")


async def test_worker_runs_a_job_once_per_slot(
    test_db: TestDatabase, tmp_path: Path, counted_job: list[str]
) -> None:
    _redis_or_unavailable()
    settings = make_settings(test_db.url, tmp_path, redis_url=REDIS_URL, scheduler="celery")
    app = celery_app(settings)
    queue = f"tallyhub-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    assert "test.celery_counted" in app.conf.beat_schedule

    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
        # Two deliveries of the same scheduled slot (two beats, say): one run.
        app.send_task(TASK, args=["test.celery_counted"], queue=queue)
        app.send_task(TASK, args=["test.celery_counted"], queue=queue)
        db = Database(test_db.url)
        try:
            runs: list[JobRun] = []
            for _ in range(100):
                async with db.transaction(readonly=True) as session:
                    runs = list(
                        await session.scalars(
                            select(JobRun).where(JobRun.job_name == "test.celery_counted")
                        )
                    )
                if runs and all(r.status != "running" for r in runs) and len(counted_job) >= 1:
                    await asyncio.sleep(0.3)  # give a second (wrong) run the chance to show
                    async with db.transaction(readonly=True) as session:
                        runs = list(
                            await session.scalars(
                                select(JobRun).where(JobRun.job_name == "test.celery_counted")
                            )
                        )
                    break
                await asyncio.sleep(0.1)
        finally:
            await db.dispose()

    assert len(runs) == 1
    assert runs[0].status == "succeeded"
    assert runs[0].trigger == "schedule"
    assert runs[0].counts == {"calls": 1}
    assert counted_job == [test_db.url]


def test_celery_needs_a_broker(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite:///x.db", tmp_path, scheduler="celery")
    with pytest.raises(RuntimeError, match="TALLYHUB_REDIS_URL"):
        celery_app(settings)


# ---------------------------------------------------------------- beat's slots, by hand


def only_these_jobs(monkeypatch: pytest.MonkeyPatch, *specs: JobSpec) -> None:
    """The registry holds `specs` only, for this test (beat schedules what it holds)."""
    for name in list(REGISTRY):
        monkeypatch.delitem(REGISTRY, name)
    for spec in specs:
        monkeypatch.setitem(REGISTRY, spec.name, spec)


class Clock:
    """Beat's time, moved by hand (Celery asks `app.now()`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def beat_of(app: Celery, clock: Clock) -> Iterator[Any]:
    """Beat's scheduler as `celery beat` builds it from the app's settings (its class and
    file), on the hand-moved clock; it sends to the real broker."""
    app.now = clock  # type: ignore[method-assign]
    scheduler = Service(
        app,
        scheduler_cls=app.conf.beat_scheduler,
        schedule_filename=app.conf.beat_schedule_filename,
    ).get_scheduler()
    try:
        yield scheduler
    finally:
        scheduler.close()


def tick_at(scheduler: Any, clock: Clock, at: datetime) -> float:
    """Move beat's clock to `at` and let it send all that is due; the seconds it would
    then sleep."""
    clock.now = at
    while (delay := scheduler.tick()) == 0:
        pass
    return float(delay)


async def rows_when(url: str, done: Callable[[list[JobRun]], bool]) -> list[JobRun]:
    """The job runs once `done` holds for them (the worker works meanwhile)."""
    db = Database(url)
    deadline = time.monotonic() + 60
    try:
        while True:
            async with db.transaction(readonly=True) as session:
                rows = list(await session.scalars(select(JobRun).order_by(JobRun.id)))
            if done(rows) or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()


def finished(*names: str) -> Callable[[list[JobRun]], bool]:
    def check(rows: list[JobRun]) -> bool:
        ended = {r.job_name for r in rows if r.status not in ("queued", "running")}
        return set(names) <= ended

    return check


@pytest.fixture
def queue(redis_url: str) -> Iterator[str]:
    name = f"tallyhub-test-{uuid.uuid4().hex[:8]}"
    yield name
    redis.Redis.from_url(redis_url).delete(name)


async def test_beat_fires_on_the_slot_the_job_list_shows_and_the_worker_records_it(
    harness: Harness,
    tmp_path: Path,
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @job("test.rare", every_seconds=10**9)  # its next slot is years away: no race with it
    async def rare(runtime: Runtime) -> dict[str, Any]:
        return {"ran": 1}

    only_these_jobs(monkeypatch, rare)
    viewer = await user_token(harness.runtime, "viewer", Role.viewer)
    listed = await harness.client.get("/api/jobs", headers=bearer(viewer))
    (shown,) = listed.json()["items"]
    next_run_at = datetime.fromisoformat(shown["next_run_at"])

    settings = make_settings(harness.db.url, tmp_path, redis_url=redis_url, job_queue=queue)
    app = celery_app(settings)
    # Beat started at some moment between two slots, not on one.
    clock = Clock(next_run_at - timedelta(seconds=22.5))
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
        with beat_of(app, clock) as beat:
            asleep = tick_at(beat, clock, clock.now)
            early = tick_at(beat, clock, next_run_at - timedelta(milliseconds=10))
            tick_at(beat, clock, next_run_at + timedelta(milliseconds=50))
        rows = await rows_when(harness.db.url, finished("test.rare"))
    assert 22.5 <= asleep <= 22.6, "beat sleeps until the slot the job list shows"
    assert early < 0.1
    assert [(r.scheduled_for, r.trigger, r.status, r.counts) for r in rows] == [
        (next_run_at, "schedule", "succeeded", {"ran": 1})
    ]


async def test_beat_started_mid_interval_sends_each_slot_of_the_interval(
    test_db: TestDatabase,
    tmp_path: Path,
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @job("test.half_minute", every_seconds=30)
    async def half_minute(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {}

    only_these_jobs(monkeypatch, half_minute)
    settings = make_settings(
        test_db.url, tmp_path, redis_url=redis_url, job_queue=queue, job_grace_seconds=0
    )
    app = celery_app(settings)
    noon = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)  # ahead of the worker's clock: never stale
    clock = Clock(noon + timedelta(seconds=7.5))
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
        with beat_of(app, clock) as beat:
            for seconds in (7.5, 29.99, 30.05, 37.6, 59.9, 60.2, 61):
                tick_at(beat, clock, noon + timedelta(seconds=seconds))
        rows = await rows_when(
            test_db.url,
            lambda rows: len(calls) >= 2 and all(r.status == "succeeded" for r in rows),
        )
    assert [(r.scheduled_for, r.trigger, r.status) for r in rows] == [
        (noon + timedelta(seconds=30), "schedule", "succeeded"),
        (noon + timedelta(seconds=60), "schedule", "succeeded"),
    ]
    assert calls == ["ran", "ran"]


async def test_beat_catches_up_a_slot_missed_within_the_grace_once(
    test_db: TestDatabase,
    tmp_path: Path,
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counted(name: str, cron: str) -> JobSpec:
        async def run(runtime: Runtime) -> dict[str, Any]:
            calls.append(name)
            return {}

        return job(name, cron=cron)(run)

    missed = counted("test.at_three", "0 3 * * *")  # 10 minutes ago: within the grace
    too_old = counted("test.at_one", "0 1 * * *")  # 2 h 10 min ago: past it
    marker = counted("test.marker", "0 0 1 1 *")
    only_these_jobs(monkeypatch, missed, too_old, marker)
    settings = make_settings(
        test_db.url,
        tmp_path,
        redis_url=redis_url,
        job_queue=queue,
        job_grace_seconds=3600,
        timezone="Asia/Shanghai",
    )
    app = celery_app(settings)
    shanghai = timezone(timedelta(hours=8))
    clock = Clock(datetime(2030, 1, 1, 3, 10, tzinfo=shanghai))
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
        with beat_of(app, clock) as beat:
            tick_at(beat, clock, clock.now)
        # Beat restarted two minutes later (or a second beat): the same slot, sent again.
        with beat_of(app, clock) as beat:
            tick_at(beat, clock, clock.now + timedelta(minutes=2))
            tick_at(beat, clock, clock.now + timedelta(minutes=30))
        # Behind the catch-ups in the queue: once it has run, they all have.
        app.send_task(
            TASK,
            args=["test.marker"],
            kwargs={"scheduled_for": "2031-01-01T00:00:00+08:00", "trigger": "schedule"},
        )
        rows = await rows_when(test_db.url, finished("test.marker"))
    three = datetime(2030, 1, 1, 3, 0, tzinfo=shanghai)
    assert [(r.job_name, r.scheduled_for, r.trigger, r.status) for r in rows[:-1]] == [
        ("test.at_three", three, "catchup", "succeeded")
    ]
    assert rows[-1].job_name == "test.marker"
    assert calls == ["test.at_three", "test.marker"]


# ---------------------------------------------------------------- runs by hand, queued


async def test_a_run_by_hand_is_queued_for_a_worker_and_answered_at_once(
    test_db: TestDatabase,
    harness_factory: Any,
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran_in: list[str] = []

    @job("test.by_hand", cron="0 3 * * *")
    async def by_hand(runtime: Runtime) -> dict[str, Any]:
        ran_in.append(threading.current_thread().name)
        return {"rows": 7}

    only_these_jobs(monkeypatch, by_hand)
    async with harness_factory(
        test_db, scheduler="celery", redis_url=redis_url, job_queue=queue
    ) as h:
        admin = bearer(await user_token(h.runtime, "admin", Role.admin))
        asked = await h.client.post("/api/jobs/test.by_hand/run", headers=admin)
        assert asked.status_code == 202, asked.text
        run = asked.json()
        assert (run["job_name"], run["status"], run["trigger"]) == (
            "test.by_hand",
            "queued",
            "manual",
        )
        assert ran_in == [], "not run in the web process"
        waiting = await h.client.get(f"/api/jobs/runs/{run['id']}", headers=admin)
        assert waiting.json()["status"] == "queued"

        app = celery_app(h.runtime.settings)
        with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue]):
            await rows_when(test_db.url, finished("test.by_hand"))
        done = await h.client.get(f"/api/jobs/runs/{run['id']}", headers=admin)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["id"], body["status"], body["trigger"], body["attempt"]) == (
        run["id"],
        "succeeded",
        "manual",
        1,
    )
    assert body["counts"] == {"rows": 7}
    assert len(ran_in) == 1 and ran_in[0] != threading.main_thread().name


# ---------------------------------------------------------------- the real processes

# `tallyhub …` with one more job, every 2 s: its slots come while the test watches.
CLI_CHILD = """
import sys
from tallyhub.core.jobs.registry import REGISTRY, job

@job("test.every_two_seconds", every_seconds=2)
async def every_two_seconds(runtime):
    return {}

REGISTRY.add(every_two_seconds)

from tallyhub.cli import app

sys.argv[0] = "tallyhub"
app()
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextmanager
def tallyhub(
    args: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", CLI_CHILD, *args],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()  # a warm shutdown, as a deploy stops them
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers_ping(app: Celery, hostname: str) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(destination=[hostname], timeout=0.5):
            return True
    return False


@pytest.mark.parametrize("server_db", ["postgresql"], indirect=True)
async def test_worker_and_beat_processes_as_deployed(
    server_db: TestDatabase, tmp_path: Path, redis_url: str, queue: str
) -> None:
    """`tallyhub beat` and `tallyhub worker --hostname … -Q …` as real processes: beat
    catches up at start and sends slots on their schedule, its file under var/; the
    worker, known by its name, takes the queue it was given, runs a run asked by hand,
    and logs each line at its own level."""
    var, cwd = tmp_path / "var", tmp_path / "cwd"
    cwd.mkdir()
    env = {
        **os.environ,
        "TALLYHUB_ENV": "test",
        "TALLYHUB_DATABASE_URL": server_db.url,
        "TALLYHUB_REDIS_URL": redis_url,
        "TALLYHUB_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "TALLYHUB_SCHEDULER": "celery",
        "TALLYHUB_VAR_DIR": str(var),
        "TALLYHUB_JOB_QUEUE": queue,
    }
    settings = make_settings(server_db.url, tmp_path, redis_url=redis_url, job_queue=queue)
    hostname = f"alpha-{queue}@tallyhub-test"
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker_args = ["worker", "--hostname", hostname, "-Q", queue, "--concurrency", "1"]
    # The worker's own default queue is another: it takes the one -Q names.
    worker_env = {**env, "TALLYHUB_JOB_QUEUE": f"{queue}-not-this"}
    with tallyhub(worker_args, worker_env, cwd, worker_log) as worker:
        assert await asyncio.to_thread(answers_ping, celery_app(settings), hostname), (
            worker_log.read_text()
        )
        with tallyhub(["beat"], env, cwd, beat_log) as beat:
            runtime = Runtime.build(settings)
            try:
                run_id = await JobRunner(runtime).queue("core.prune_job_runs")
                assert run_id is not None
                assert await send_queued_run(settings, "core.prune_job_runs", run_id)
            finally:
                await runtime.stop()

            def seen(rows: list[JobRun]) -> bool:
                ticks = [r for r in rows if r.job_name == "test.every_two_seconds"]
                # ended ones: the assertions below leave out a tick still running
                on_schedule = [r for r in ticks if r.trigger == "schedule" and r.finished_at]
                return len(on_schedule) >= 2 and finished("core.prune_job_runs")(rows)

            rows = await rows_when(server_db.url, seen)
            assert beat.poll() is None, beat_log.read_text()
        assert worker.poll() is None, worker_log.read_text()

    # By hand only: beat's start-up also catches up the daily prune (04:15 Asia/Shanghai)
    # when the test runs soon after that slot.
    by_hand = [r for r in rows if r.job_name == "core.prune_job_runs" and r.trigger == "manual"]
    assert [(r.id, r.trigger, r.status) for r in by_hand] == [(run_id, "manual", "succeeded")]
    assert ("core.recover_runs", "catchup") in {(r.job_name, r.trigger) for r in rows}
    ticks = [r for r in rows if r.job_name == "test.every_two_seconds" and r.status != "running"]
    assert len([r for r in ticks if r.trigger == "schedule"]) >= 2, beat_log.read_text()
    for tick in ticks:  # on its slots (every 2 s from the epoch), never ahead of them
        assert tick.scheduled_for.timestamp() % 2 == 0, tick.scheduled_for
        assert tick.started_at >= tick.scheduled_for
        assert tick.status == "succeeded"

    assert list(var.glob("celerybeat-schedule*")), "beat's file is under var/"
    assert list(cwd.iterdir()) == [], "nothing is left in the working directory"
    lines = ANSI.sub("", worker_log.read_text()).splitlines()
    assert not [line for line in lines if "WARNING/ForkPoolWorker" in line]
    assert [line for line in lines if "job.finished" in line and "core.prune_job_runs" in line]
    assert all(
        "[info" in line for line in lines if "job.finished" in line and "prune_job_runs" in line
    )
    # An interval job's success is a debug line: not shown at the default INFO.
    assert not [line for line in lines if "job.finished" in line and "every_two" in line]
