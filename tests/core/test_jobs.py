"""Jobs (core/jobs.py): slots claimed once, run history, catch-up, and the jobs API.

Test jobs are registered under names starting with `test.` and removed from the
registry when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tallyhub.core.auth import Role
from tallyhub.core.errors import NotFound
from tallyhub.core.jobs.registry import REGISTRY, JobFunction, JobSpec, job
from tallyhub.core.jobs.runner import JobRun, JobRunner, _to_the_end
from tallyhub.core.runtime import Runtime
from tests.conftest import Harness, TestDatabase, make_settings
from tests.factories import make_user

Register = Callable[..., Callable[[JobFunction], JobSpec]]
SLOT = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)  # a slot of a cron job, run by hand in tests


@pytest.fixture
def register() -> Iterator[Register]:
    """`@register("test.name", cron=...)`: a job that exists for this test only."""
    names: list[str] = []

    def decorator(name: str, **schedule: Any) -> Callable[[JobFunction], JobSpec]:
        assert name.startswith("test."), "test jobs are named test.*"
        names.append(name)

        def declare(function: JobFunction) -> JobSpec:
            spec = job(name, **schedule)(function)
            REGISTRY.add(spec)
            return spec

        return declare

    yield decorator
    for name in names:
        REGISTRY.pop(name, None)


def only_test_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the registry holds this test's jobs only (a catch-up or a recovery
    would otherwise run the domains' real jobs too)."""
    for name in [name for name in REGISTRY if not name.startswith("test.")]:
        monkeypatch.delitem(REGISTRY, name)


@asynccontextmanager
async def runtimes(
    db: TestDatabase, tmp: Path, count: int, **settings: Any
) -> AsyncIterator[list[Runtime]]:
    """`count` independent runtimes (each with its own engine) on one database, as if
    `count` processes ran schedulers side by side."""
    built = [Runtime.build(make_settings(db.url, tmp, **settings)) for _ in range(count)]
    try:
        yield built
    finally:
        for runtime in built:
            await runtime.stop()


async def runs_of(runtime: Runtime, name: str) -> list[JobRun]:
    async with runtime.db.transaction(readonly=True) as session:
        rows = await session.scalars(
            select(JobRun).where(JobRun.job_name == name).order_by(JobRun.id)
        )
        return list(rows)


# ---------------------------------------------------------------- runners


async def test_runners_racing_for_one_slot_run_the_job_once(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[int] = []

    @register("test.race", cron="*/5 * * * *")
    async def race(runtime: Runtime) -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return {"calls": len(calls)}

    async with runtimes(test_db, tmp_path, 2) as (a, b):
        attempts = [
            JobRunner(runtime).run("test.race", scheduled_for=SLOT, trigger="schedule")
            for runtime in (a, b, a, b, a, b)
        ]
        run_ids = await asyncio.wait_for(asyncio.gather(*attempts), 30)
        rows = await runs_of(a, "test.race")
    claimed = [r for r in run_ids if r is not None]
    assert len(claimed) == 1, run_ids
    assert calls == [1]
    assert [(r.id, r.scheduled_for, r.status, r.trigger) for r in rows] == [
        (claimed[0], SLOT, "succeeded", "schedule")
    ]


async def test_two_schedulers_firing_the_same_tick_run_it_once(
    server_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    @register("test.tick", every_seconds=86_400)
    async def tick(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {}

    async with runtimes(server_db, tmp_path, 2) as (a, b):
        await asyncio.wait_for(
            asyncio.gather(
                JobRunner(a).run_scheduled("test.tick"), JobRunner(b).run_scheduled("test.tick")
            ),
            30,
        )
        rows = await runs_of(b, "test.tick")
    assert calls == ["ran"]
    assert len(rows) == 1
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert rows[0].scheduled_for == midnight
    assert rows[0].status == "succeeded"


async def test_a_failing_job_is_recorded_as_failed_with_its_error(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    @register("test.broken", cron="0 * * * *")
    async def broken(runtime: Runtime) -> dict[str, Any]:
        raise RuntimeError("upstream said no (code 7)")

    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        run_id = await JobRunner(runtime).run("test.broken")
        (row,) = await runs_of(runtime, "test.broken")
    assert row.id == run_id
    assert row.status == "failed"
    assert row.error is not None and "RuntimeError: upstream said no (code 7)" in row.error
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.duration_ms is not None and row.duration_ms >= 0
    assert row.counts is None


async def test_a_jobs_counts_and_timing_are_recorded(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    @register("test.counts", cron="0 * * * *")
    async def counted(runtime: Runtime) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"checked": 12, "fixed": 3, "note": "ok"}

    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        await JobRunner(runtime).run("test.counts")
        (row,) = await runs_of(runtime, "test.counts")
    assert row.status == "succeeded"
    assert row.counts == {"checked": 12, "fixed": 3, "note": "ok"}
    assert row.error is None
    assert row.duration_ms is not None and row.duration_ms >= 20
    assert row.finished_at is not None
    # The duration is what the row says the run lasted, to the millisecond.
    assert row.duration_ms == round((row.finished_at - row.started_at) / timedelta(milliseconds=1))
    assert row.trigger == "manual"


async def test_catch_up_runs_a_missed_slot_once(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @register("test.daily", every_seconds=86_400)
    async def daily(runtime: Runtime) -> dict[str, Any]:
        calls.append("daily")
        return {"n": len(calls)}

    @register("test.new_year", cron="0 0 1 1 *")
    async def new_year(runtime: Runtime) -> dict[str, Any]:
        calls.append("new_year")
        return {}

    only_test_jobs(monkeypatch)
    grace = 86_400 + 3600  # the daily slot (UTC midnight) is always inside it
    async with runtimes(test_db, tmp_path, 1, job_grace_seconds=grace) as (runtime,):
        runner = JobRunner(runtime)
        now = datetime.now(UTC)
        new_year_missed = now - REGISTRY["test.new_year"].last_slot(now, runner.tz) <= timedelta(
            seconds=grace
        )
        await runner.catch_up()
        await runner.catch_up()  # a restart right after: nothing runs twice
        daily_rows = await runs_of(runtime, "test.daily")
        new_year_rows = await runs_of(runtime, "test.new_year")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert [(r.scheduled_for, r.trigger, r.status) for r in daily_rows] == [
        (midnight, "catchup", "succeeded")
    ]
    assert calls.count("daily") == 1
    # A yearly slot is older than the grace window except on the first day of the year.
    assert len(new_year_rows) == (1 if new_year_missed else 0)
    assert calls.count("new_year") == len(new_year_rows)


async def test_two_processes_catching_up_together_run_each_slot_once(
    server_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @register("test.catchup_race", every_seconds=86_400)
    async def daily(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        await asyncio.sleep(0.02)
        return {}

    only_test_jobs(monkeypatch)
    async with runtimes(server_db, tmp_path, 3, job_grace_seconds=90_000) as group:
        await asyncio.wait_for(asyncio.gather(*(JobRunner(r).catch_up() for r in group)), 30)
        rows = await runs_of(group[0], "test.catchup_race")
    assert calls == ["ran"]
    assert len(rows) == 1


async def test_running_an_unknown_job_is_not_found(test_db: TestDatabase, tmp_path: Path) -> None:
    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        with pytest.raises(NotFound, match=r"test\.nothing"):
            await JobRunner(runtime).run("test.nothing")
        assert await runs_of(runtime, "test.nothing") == []


# ---------------------------------------------------------------- leases

# A schedule whose latest slot stays 1970-01-01 for decades: tests of "still the latest
# slot" cannot straddle a slot boundary (midnight, say).
FOREVER = 2**31
FIXED_SLOT = datetime(1970, 1, 1, tzinfo=UTC)


async def leave_row(
    runtime: Runtime,
    name: str,
    slot: datetime,
    renewed: datetime,
    *,
    status: str = "running",
    attempt: int = 1,
    trigger: str = "schedule",
) -> int:
    """A row as a stopped process leaves it: `running` with its lease last renewed at
    `renewed` (killed), or `interrupted` (stopped at shutdown); or `queued` at `renewed`
    for a worker that never got its message."""

    async def insert(session: Any) -> int:
        run = JobRun(
            job_name=name,
            scheduled_for=slot,
            trigger=trigger,
            status=status,
            started_at=renewed,
            heartbeat_at=renewed,
            attempt=attempt,
        )
        if status == "interrupted":  # as JobRunner._release leaves it
            run.finished_at, run.error = renewed, "interrupted: its process stopped it"
        session.add(run)
        await session.flush()
        return run.id

    return await runtime.db.run(insert)


class Clock:
    """The runners' time, moved by hand: a lease lapses when the test says, however slow
    the machine (a runner's renewals still come every third of its lease, in real time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def renewed_after(runtime: Runtime, name: str, after: datetime) -> JobRun:
    """The run of `name` once its runner has renewed the lease past `after`."""
    deadline = time.monotonic() + 30
    while True:
        (row,) = await runs_of(runtime, name)
        if row.heartbeat_at > after:
            return row
        assert time.monotonic() < deadline, f"{name}: lease not renewed past {after}"
        await asyncio.sleep(0.02)


async def test_the_catch_up_at_start_takes_over_a_slot_whose_lease_lapsed(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @register("test.killed", every_seconds=FOREVER)
    async def daily(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {"n": len(calls)}

    only_test_jobs(monkeypatch)
    now = datetime.now(UTC)
    async with runtimes(test_db, tmp_path, 1, job_grace_seconds=FOREVER) as (runtime,):
        killed = await leave_row(runtime, "test.killed", FIXED_SLOT, now - timedelta(minutes=5))
        await JobRunner(runtime).catch_up()
        await JobRunner(runtime).catch_up()  # a second start right after: nothing more
        (row,) = await runs_of(runtime, "test.killed")
    assert calls == ["ran"]
    assert (row.id, row.status, row.attempt, row.trigger) == (killed, "succeeded", 2, "catchup")
    assert row.counts == {"n": 1} and row.error is None
    assert row.started_at > now - timedelta(minutes=1)


async def test_recovery_reruns_latest_slots_and_abandons_the_rest(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    for name in ("test.lapsed", "test.interrupted", "test.alive", "test.hopeless"):

        @register(name, every_seconds=FOREVER)
        async def rerun(runtime: Runtime, name: str = name) -> dict[str, Any]:
            calls.append(name)
            return {}

    now = datetime.now(UTC)
    lapsed, fresh = now - timedelta(minutes=5), now - timedelta(seconds=5)
    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        ids = {
            "lapsed": await leave_row(runtime, "test.lapsed", FIXED_SLOT, lapsed),
            "older": await leave_row(
                runtime, "test.lapsed", datetime(2026, 1, 1, tzinfo=UTC), lapsed
            ),
            "interrupted": await leave_row(
                runtime, "test.interrupted", FIXED_SLOT, fresh, status="interrupted"
            ),
            "alive": await leave_row(runtime, "test.alive", FIXED_SLOT, fresh),
            "hopeless": await leave_row(runtime, "test.hopeless", FIXED_SLOT, lapsed, attempt=3),
            "interrupted_older": await leave_row(
                runtime,
                "test.interrupted",
                datetime(2026, 1, 1, tzinfo=UTC),
                fresh,
                status="interrupted",
            ),
            "unknown": await leave_row(runtime, "test.unregistered", FIXED_SLOT, lapsed),
        }
        outcome = await JobRunner(runtime).recover()
        again = await JobRunner(runtime).recover()
        # A start does not take over what recovery gave up.
        only_test_jobs(monkeypatch)
        await JobRunner(runtime).catch_up()
        async with runtime.db.transaction(readonly=True) as session:
            rows = {r.id: r for r in await session.scalars(select(JobRun))}

    assert outcome == {"retried": 2, "abandoned": 4}
    assert again == {"retried": 0, "abandoned": 0}
    assert sorted(calls) == ["test.interrupted", "test.lapsed"]
    state = {key: (rows[i].status, rows[i].attempt) for key, i in ids.items()}
    assert state == {
        "lapsed": ("succeeded", 2),  # the latest slot, run again
        "older": ("abandoned", 1),  # a newer slot has come: not run again
        "interrupted": ("succeeded", 2),  # freed at shutdown: no lease to wait for
        "alive": ("running", 1),  # its runner renews its lease
        "hopeless": ("abandoned", 3),  # MAX_ATTEMPTS reached
        "interrupted_older": ("abandoned", 1),
        "unknown": ("abandoned", 1),  # no such job any more
    }
    assert rows[ids["older"]].finished_at == lapsed
    error = rows[ids["older"]].error
    assert error is not None and "stopped renewing its lease" in error
    assert rows[ids["lapsed"]].trigger == "retry"
    kept = rows[ids["interrupted_older"]]  # its own end and error stay
    assert kept.finished_at is not None and kept.error is not None
    assert kept.error.startswith("interrupted")


def _child_environment(test_db: TestDatabase, tmp_path: Path, lease: float) -> dict[str, str]:
    """A child process's settings: this test's database, its own var/, a short lease."""
    return {
        **os.environ,
        "TALLYHUB_ENV": "test",
        "TALLYHUB_DATABASE_URL": test_db.url,
        "TALLYHUB_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "TALLYHUB_SCHEDULER": "off",
        "TALLYHUB_VAR_DIR": str(tmp_path / "child"),
        "TALLYHUB_JOB_LEASE_SECONDS": str(lease),
    }


KILLED_CHILD = f"""
import asyncio
from tallyhub.core.jobs.registry import REGISTRY, job
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime
from tallyhub.settings import Settings

@job("test.killed_for_real", every_seconds={FOREVER})
async def slow(runtime):
    print("running", flush=True)
    await asyncio.sleep(600)
    return {{}}

REGISTRY.add(slow)

asyncio.run(JobRunner(Runtime.build(Settings())).run_scheduled("test.killed_for_real"))
"""


async def test_a_job_whose_process_is_killed_runs_again_once_its_lease_lapses(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lease = 0.3  # the child renews every 0.1 s; the test's runner lapses it by its clock
    env = _child_environment(test_db, tmp_path, lease)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_CHILD, env=env, stdout=subprocess.PIPE
    )
    calls: list[str] = []

    @register("test.killed_for_real", every_seconds=FOREVER)
    async def fast(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {"ran": "again"}

    only_test_jobs(monkeypatch)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line == b"running\n"
        async with runtimes(
            test_db, tmp_path, 1, job_lease_seconds=lease, job_grace_seconds=FOREVER
        ) as (runtime,):
            (claimed,) = await runs_of(runtime, "test.killed_for_real")
            # The child renews its lease meanwhile.
            alive = await renewed_after(runtime, "test.killed_for_real", claimed.started_at)
            assert (alive.status, alive.attempt) == ("running", 1)
            assert alive.heartbeat_at > alive.started_at
            child.kill()  # mid-run, as a deploy or the OOM killer would
            await child.wait()
            (killed,) = await runs_of(runtime, "test.killed_for_real")
            # Restarted at once (the instant of the child's last renewal): the slot is
            # still held, so the catch-up leaves it ...
            clock = Clock(killed.heartbeat_at)
            runner = JobRunner(runtime, clock=clock)
            await runner.catch_up()
            assert calls == []
            assert await runner.recover() == {"retried": 0, "abandoned": 0}
            # ... and recovery runs it again once the lease has lapsed.
            clock.now += timedelta(seconds=lease * 2)
            assert await runner.recover() == {"retried": 1, "abandoned": 0}
            (row,) = await runs_of(runtime, "test.killed_for_real")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert calls == ["ran"]
    assert (row.id, row.scheduled_for, row.status, row.attempt) == (
        alive.id,
        FIXED_SLOT,
        "succeeded",
        2,
    )
    assert row.counts == {"ran": "again"}


async def test_a_run_stopped_at_shutdown_frees_its_slot_at_once(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    started = asyncio.Event()
    calls: list[str] = []

    @register("test.shutdown", every_seconds=FOREVER)
    async def long(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        if len(calls) == 1:
            started.set()
            await asyncio.sleep(600)
        return {"attempt": len(calls)}

    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        runner = JobRunner(runtime)
        first = asyncio.create_task(runner.run_scheduled("test.shutdown"))
        await asyncio.wait_for(started.wait(), 30)
        first.cancel()  # what stopping the process does to the scheduler's tasks
        with pytest.raises(asyncio.CancelledError):
            await first
        (stopped,) = await runs_of(runtime, "test.shutdown")
        assert (stopped.status, stopped.attempt) == ("interrupted", 1)
        assert stopped.error is not None and "interrupted" in stopped.error
        # Well within the 60 s lease: an interrupted slot is not held.
        assert await runner.recover() == {"retried": 1, "abandoned": 0}
        (row,) = await runs_of(runtime, "test.shutdown")
    assert (row.status, row.attempt, row.counts) == ("succeeded", 2, {"attempt": 2})


async def test_stopping_the_embedded_scheduler_interrupts_its_runs(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()

    @register("test.at_shutdown", every_seconds=FOREVER)
    async def long(runtime: Runtime) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(600)
        return {}

    only_test_jobs(monkeypatch)
    async with runtimes(test_db, tmp_path, 1, job_grace_seconds=FOREVER) as (runtime,):
        async with JobRunner(runtime).embedded():  # its catch-up starts the run
            await asyncio.wait_for(started.wait(), 30)
        (row,) = await runs_of(runtime, "test.at_shutdown")
    assert (row.status, row.trigger, row.attempt) == ("interrupted", "catchup", 1)


async def test_the_end_of_a_run_is_recorded_even_while_its_task_is_stopped() -> None:
    recorded: list[str] = []

    async def record() -> str:
        await asyncio.sleep(0.2)
        recorded.append("done")
        return "done"

    async def finish() -> str:
        return await _to_the_end(record())

    task = asyncio.create_task(finish())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # twice: shutdown may insist
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorded == ["done"], "the write ran to its end before the cancellation went on"
    assert await _to_the_end(record()) == "done"


async def test_a_running_job_renews_its_lease_so_no_one_takes_its_slot(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    lease = 0.3  # renewed every 0.1 s; it lapses only when the clock is moved
    calls: list[str] = []
    started, finish = asyncio.Event(), asyncio.Event()

    @register("test.long", cron="0 * * * *")
    async def long(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        started.set()
        await finish.wait()  # until twice the lease has passed, by the runners' clock
        return {}

    clock = Clock(datetime.now(UTC))  # one time for both runners, as NTP keeps their hosts
    async with runtimes(test_db, tmp_path, 2, job_lease_seconds=lease) as (a, b):
        first = asyncio.create_task(JobRunner(a, clock=clock).run("test.long", scheduled_for=SLOT))
        await asyncio.wait_for(started.wait(), 30)
        claimed_at = clock.now
        clock.now += timedelta(seconds=lease * 2)  # the lease it claimed with has lapsed ...
        await renewed_after(b, "test.long", claimed_at)  # ... but its runner renewed it
        other = JobRunner(b, clock=clock)
        assert await other.run("test.long", scheduled_for=SLOT) is None
        assert await other.recover() == {"retried": 0, "abandoned": 0}
        (row,) = await runs_of(b, "test.long")
        assert row.status == "running"
        assert clock.now - row.heartbeat_at < timedelta(seconds=lease)
        finish.set()
        assert await asyncio.wait_for(first, 30) == row.id
        (row,) = await runs_of(a, "test.long")
    assert calls == ["ran"]
    assert (row.status, row.attempt) == ("succeeded", 1)


async def test_runners_racing_to_take_over_a_lapsed_slot_run_it_once(
    server_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    @register("test.takeover", every_seconds=FOREVER)
    async def takeover(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        await asyncio.sleep(0.05)
        return {}

    async with runtimes(server_db, tmp_path, 3) as group:
        await leave_row(
            group[0], "test.takeover", FIXED_SLOT, datetime.now(UTC) - timedelta(hours=1)
        )
        attempts = [
            *(JobRunner(r).run_scheduled("test.takeover") for r in group),
            *(JobRunner(r).recover() for r in group),
        ]
        results: list[Any] = await asyncio.wait_for(asyncio.gather(*attempts), 30)
        (row,) = await runs_of(group[0], "test.takeover")
    claimed = [r for r in results[:3] if r is not None]
    retried = sum(r["retried"] for r in results[3:])
    assert len(claimed) + retried == 1, results
    assert calls == ["ran"]
    assert (row.status, row.attempt) == ("succeeded", 2)


async def test_a_runner_whose_slot_was_taken_over_stops_its_job_and_records_nothing(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    @register("test.stalled", cron="0 * * * *")
    async def stalled(runtime: Runtime) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(600)
        finally:
            stopped.set()
        return {}

    async with runtimes(test_db, tmp_path, 1, job_lease_seconds=0.9) as (runtime,):
        first = asyncio.create_task(JobRunner(runtime).run("test.stalled", scheduled_for=SLOT))
        await asyncio.wait_for(started.wait(), 30)

        async def take_over(session: Any) -> None:  # as another runner's takeover does
            await session.execute(
                update(JobRun)
                .where(JobRun.job_name == "test.stalled")
                .values(attempt=JobRun.attempt + 1, counts={"taken": "over"})
            )

        await runtime.db.run(take_over)
        run_id = await asyncio.wait_for(first, 30)  # the next renewal finds it out
        (row,) = await runs_of(runtime, "test.stalled")
    assert stopped.is_set(), "the job was stopped"
    assert row.id == run_id
    assert (row.status, row.attempt, row.counts) == ("running", 2, {"taken": "over"})


async def test_abandoned_runs_are_listed_with_their_attempt(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    renewed = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    run_id = await leave_row(harness.runtime, "test.gone", renewed - timedelta(minutes=2), renewed)
    recovered = await harness.client.post("/api/jobs/core.recover_runs/run", headers=admin)
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["counts"] == {"retried": 0, "abandoned": 1}
    listed = await harness.client.get(
        "/api/jobs/runs", params={"status": "abandoned"}, headers=admin
    )
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert (item["id"], item["job_name"], item["attempt"]) == (run_id, "test.gone", 1)
    assert parse(item["finished_at"]) == parse(item["heartbeat_at"]) == renewed
    bad = await harness.client.get("/api/jobs/runs", params={"status": "lost"}, headers=admin)
    assert bad.status_code == 422 and "status" in bad.text


# ---------------------------------------------------------------- runs by hand, slots sent

ASKED_AT = datetime(2026, 5, 5, 1, 2, 3, 456000, tzinfo=UTC)  # a run by hand: no slot of its job


async def test_a_lost_run_by_hand_is_run_again_like_a_lost_slot(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    for name in ("test.by_hand_killed", "test.by_hand_unsent", "test.by_hand_waits"):

        @register(name, cron="0 3 * * *")
        async def by_hand(runtime: Runtime, name: str = name) -> dict[str, Any]:
            calls.append(name)
            return {"ran": name}

    @register("test.by_hand_worn_out", cron="0 3 * * *")
    async def worn_out(runtime: Runtime) -> dict[str, Any]:
        calls.append("test.by_hand_worn_out")
        return {}

    now = datetime.now(UTC)
    lapsed, fresh = now - timedelta(minutes=5), now - timedelta(seconds=5)
    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        ids = {
            # Its server was killed mid-run (embedded mode: the run was in the web process).
            "killed": await leave_row(
                runtime, "test.by_hand_killed", ASKED_AT, lapsed, trigger="manual"
            ),
            # Queued for a worker (celery mode), and its message never reached one.
            "unsent": await leave_row(
                runtime, "test.by_hand_unsent", ASKED_AT, lapsed, status="queued", trigger="manual"
            ),
            # Queued a moment ago: a worker will start it.
            "waits": await leave_row(
                runtime, "test.by_hand_waits", ASKED_AT, fresh, status="queued", trigger="manual"
            ),
            "worn_out": await leave_row(
                runtime, "test.by_hand_worn_out", ASKED_AT, lapsed, attempt=3, trigger="manual"
            ),
        }
        outcome = await JobRunner(runtime).recover()
        again = await JobRunner(runtime).recover()
        async with runtime.db.transaction(readonly=True) as session:
            rows = {r.id: r for r in await session.scalars(select(JobRun))}

    assert outcome == {"retried": 2, "abandoned": 1}
    assert again == {"retried": 0, "abandoned": 0}
    assert sorted(calls) == ["test.by_hand_killed", "test.by_hand_unsent"]
    state = {key: (rows[i].status, rows[i].attempt, rows[i].trigger) for key, i in ids.items()}
    assert state == {
        "killed": ("succeeded", 2, "manual"),
        "unsent": ("succeeded", 1, "manual"),
        "waits": ("queued", 1, "manual"),
        "worn_out": ("abandoned", 3, "manual"),
    }
    assert rows[ids["killed"]].counts == {"ran": "test.by_hand_killed"}
    assert {rows[i].scheduled_for for i in ids.values()} == {ASKED_AT}


MANUAL_CHILD = """
import asyncio
from tallyhub.core.jobs.registry import REGISTRY, job
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.runtime import Runtime
from tallyhub.settings import Settings

@job("test.by_hand_for_real", cron="0 3 * * *")
async def slow(runtime):
    print("running", flush=True)
    await asyncio.sleep(600)
    return {}

REGISTRY.add(slow)

# What POST /api/jobs/{name}/run does in the web process (embedded mode).
asyncio.run(JobRunner(Runtime.build(Settings())).run("test.by_hand_for_real"))
"""


async def test_a_run_by_hand_whose_process_is_killed_runs_again(
    test_db: TestDatabase,
    tmp_path: Path,
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lease = 0.3
    env = _child_environment(test_db, tmp_path, lease)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MANUAL_CHILD, env=env, stdout=subprocess.PIPE
    )
    calls: list[str] = []

    @register("test.by_hand_for_real", cron="0 3 * * *")
    async def fast(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {"ran": "again"}

    only_test_jobs(monkeypatch)
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"running\n"
        async with runtimes(test_db, tmp_path, 1, job_lease_seconds=lease) as (runtime,):
            (claimed,) = await runs_of(runtime, "test.by_hand_for_real")
            alive = await renewed_after(runtime, "test.by_hand_for_real", claimed.started_at)
            child.kill()  # kill -9 of the server the run was asked of
            await child.wait()
            clock = Clock(alive.heartbeat_at + timedelta(seconds=lease * 2))
            outcome = await JobRunner(runtime, clock=clock).recover()
            (row,) = await runs_of(runtime, "test.by_hand_for_real")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert outcome == {"retried": 1, "abandoned": 0}
    assert calls == ["ran"]
    assert (row.id, row.status, row.attempt, row.trigger) == (claimed.id, "succeeded", 2, "manual")
    assert row.scheduled_for == claimed.scheduled_for
    assert row.counts == {"ran": "again"}


async def test_a_queued_run_is_started_by_one_worker_only(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    @register("test.queued", cron="0 3 * * *")
    async def queued(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        await asyncio.sleep(0.05)
        return {"calls": len(calls)}

    async with runtimes(test_db, tmp_path, 2) as (a, b):
        run_id = await JobRunner(a).queue("test.queued")
        assert run_id is not None
        (waiting,) = await runs_of(a, "test.queued")
        assert (waiting.status, waiting.trigger, waiting.attempt) == ("queued", "manual", 1)
        # The message delivered twice (a worker died after taking it, say), to two workers.
        started = await asyncio.wait_for(
            asyncio.gather(JobRunner(a).run_queued(run_id), JobRunner(b).run_queued(run_id)), 30
        )
        late = await JobRunner(b).run_queued(run_id)
        (row,) = await runs_of(b, "test.queued")
        with pytest.raises(NotFound, match=r"test\.nothing"):
            await JobRunner(a).queue("test.nothing")
    assert sorted(started, key=str) == [run_id, None] and late is None
    assert calls == ["ran"]
    assert (row.id, row.status, row.trigger, row.counts) == (
        run_id,
        "succeeded",
        "manual",
        {"calls": 1},
    )
    assert row.started_at >= waiting.started_at


async def test_a_slot_sent_by_beat_runs_unless_a_newer_slot_has_come(
    test_db: TestDatabase, tmp_path: Path, register: Register
) -> None:
    calls: list[str] = []

    @register("test.sent", every_seconds=60)
    async def sent(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {}

    noon = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clock = Clock(noon + timedelta(seconds=90))  # the worker's time, not beat's
    async with runtimes(test_db, tmp_path, 1) as (runtime,):
        runner = JobRunner(runtime, clock=clock)
        # Waited in the queue past the next slot (workers were busy): that one stands for it.
        passed = await runner.run_slot("test.sent", noon, "schedule")
        # The slot that is due, and one that is due by beat's clock a little ahead of this
        # worker's: each is recorded as the slot it was sent for.
        due = await runner.run_slot("test.sent", noon + timedelta(minutes=1), "schedule")
        ahead = await runner.run_slot("test.sent", noon + timedelta(minutes=2), "catchup")
        twice = await runner.run_slot("test.sent", noon + timedelta(minutes=2), "schedule")
        rows = await runs_of(runtime, "test.sent")
    assert passed is None and twice is None
    assert calls == ["ran", "ran"]
    assert [(r.id, r.scheduled_for, r.trigger) for r in rows] == [
        (due, noon + timedelta(minutes=1), "schedule"),
        (ahead, noon + timedelta(minutes=2), "catchup"),
    ]


# ---------------------------------------------------------------- API


def parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} has no offset"
    return parsed


async def test_the_job_list_shows_each_job_with_its_next_run(
    harness: Harness, register: Register
) -> None:
    @register("test.hourly", cron="0 * * * *", description="Once an hour")
    async def hourly(runtime: Runtime) -> dict[str, Any]:
        return {"rows": 5}

    viewer = await make_user(harness, "viewer", Role.viewer)
    admin = await make_user(harness, "admin", Role.admin)
    before = datetime.now(UTC)
    response = await harness.client.get("/api/jobs", headers=viewer)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"]) and page["page"] == 1
    listed = {item["name"]: item for item in page["items"]}
    assert "leads.recalibrate" in listed
    mine = listed["test.hourly"]
    assert mine["schedule"] == "0 * * * *"
    assert (mine["cron"], mine["every_seconds"]) == ("0 * * * *", None)
    assert mine["timezone"] == harness.runtime.settings.timezone
    assert mine["description"] == "Once an hour"
    assert mine["last_run"] is None
    next_run = parse(mine["next_run_at"])
    assert before < next_run <= before + timedelta(hours=1)
    assert (next_run.minute, next_run.second) == (0, 0)

    ran = await harness.client.post("/api/jobs/test.hourly/run", headers=admin)
    assert ran.status_code == 200, ran.text
    answer = (await harness.client.get("/api/jobs", headers=viewer)).json()
    listed = {i["name"]: i for i in answer["items"]}
    assert listed["test.hourly"]["last_run"]["id"] == ran.json()["id"]
    assert listed["test.hourly"]["last_run"]["counts"] == {"rows": 5}


async def test_run_history_filters_and_paginates(harness: Harness, register: Register) -> None:
    @register("test.good", cron="0 * * * *")
    async def good(runtime: Runtime) -> dict[str, Any]:
        return {"ok": 1}

    @register("test.bad", cron="0 * * * *")
    async def bad(runtime: Runtime) -> dict[str, Any]:
        raise ValueError("bad input")

    admin = await make_user(harness, "admin", Role.admin)
    operator = await make_user(harness, "operator", Role.operator)
    good_ids = []
    for name in ["test.good", "test.bad", "test.good", "test.bad", "test.good"]:
        response = await harness.client.post(f"/api/jobs/{name}/run", headers=admin)
        assert response.status_code == 200, response.text
        if name == "test.good":
            good_ids.append(response.json()["id"])

    everything = await harness.client.get("/api/jobs/runs", headers=operator)
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert (body["total"], body["page"], body["page_size"]) == (5, 1, 50)
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True), "newest first"

    good_page_1 = (
        await harness.client.get(
            "/api/jobs/runs", params={"job": "test.good", "page_size": 2}, headers=operator
        )
    ).json()
    good_page_2 = (
        await harness.client.get(
            "/api/jobs/runs",
            params={"job": "test.good", "page_size": 2, "page": 2},
            headers=operator,
        )
    ).json()
    assert (good_page_1["total"], good_page_1["page"], good_page_1["page_size"]) == (3, 1, 2)
    assert (good_page_2["total"], good_page_2["page"]) == (3, 2)
    paged = [i["id"] for i in good_page_1["items"] + good_page_2["items"]]
    assert paged == sorted(good_ids, reverse=True)

    failed = (
        await harness.client.get("/api/jobs/runs", params={"status": "failed"}, headers=operator)
    ).json()
    assert failed["total"] == 2
    assert {i["job_name"] for i in failed["items"]} == {"test.bad"}
    assert all("ValueError: bad input" in i["error"] for i in failed["items"])

    both = (
        await harness.client.get(
            "/api/jobs/runs", params={"job": "test.good", "status": "failed"}, headers=operator
        )
    ).json()
    assert (both["total"], both["items"]) == (0, [])

    beyond = (
        await harness.client.get(
            "/api/jobs/runs", params={"page": 9, "page_size": 2}, headers=operator
        )
    ).json()
    assert (beyond["total"], beyond["items"]) == (5, [])

    newest = body["items"][0]
    since = (
        await harness.client.get(
            "/api/jobs/runs", params={"since": newest["started_at"]}, headers=operator
        )
    ).json()
    assert [i["id"] for i in since["items"]] == [newest["id"]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await harness.client.get("/api/jobs/runs", params={"since": future}, headers=operator)
    assert later.json()["total"] == 0
    naive = await harness.client.get(
        "/api/jobs/runs", params={"since": "2026-01-01T00:00:00"}, headers=operator
    )
    assert naive.status_code == 422 and "since" in naive.text

    invalid = await harness.client.get(
        "/api/jobs/runs", params={"status": "exploded"}, headers=operator
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "validation_error"
    assert "status" in invalid.json()["error"]["message"]
    too_big = await harness.client.get("/api/jobs/runs", params={"page_size": 201}, headers=admin)
    assert too_big.status_code == 422
    assert "page_size" in too_big.json()["error"]["message"]


async def test_running_a_job_by_hand_is_for_admins(harness: Harness, register: Register) -> None:
    calls: list[str] = []

    @register("test.manual", cron="0 0 * * *")
    async def manual(runtime: Runtime) -> dict[str, Any]:
        calls.append("ran")
        return {"done": True}

    operator = await make_user(harness, "operator", Role.operator)
    viewer = await make_user(harness, "viewer", Role.viewer)
    admin = await make_user(harness, "admin", Role.admin)

    for headers in (operator, viewer):
        refused = await harness.client.post("/api/jobs/test.manual/run", headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "admin_only"
    anonymous = await harness.client.post("/api/jobs/test.manual/run")
    assert anonymous.status_code == 401
    assert calls == []
    none_yet = (
        await harness.client.get("/api/jobs/runs", params={"job": "test.manual"}, headers=admin)
    ).json()
    assert none_yet["total"] == 0

    response = await harness.client.post("/api/jobs/test.manual/run", headers=admin)
    assert response.status_code == 200, response.text
    run = response.json()
    assert calls == ["ran"]
    assert run["job_name"] == "test.manual"
    assert run["status"] == "succeeded"
    assert run["trigger"] == "manual"
    assert run["counts"] == {"done": True}
    assert run["error"] is None
    assert parse(run["finished_at"]) >= parse(run["started_at"])
    history = (
        await harness.client.get("/api/jobs/runs", params={"job": "test.manual"}, headers=admin)
    ).json()
    assert [i["id"] for i in history["items"]] == [run["id"]]

    unknown = await harness.client.post("/api/jobs/test.no_such_job/run", headers=admin)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "job_not_found"


async def test_a_job_failing_when_run_by_hand_answers_with_the_failed_run(
    harness: Harness, register: Register
) -> None:
    @register("test.manual_broken", cron="0 0 * * *")
    async def broken(runtime: Runtime) -> dict[str, Any]:
        raise LookupError("no such upstream account")

    admin = await make_user(harness, "admin", Role.admin)
    response = await harness.client.post("/api/jobs/test.manual_broken/run", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert "LookupError: no such upstream account" in response.json()["error"]


async def test_operators_see_runs_but_not_their_counts(
    harness: Harness, register: Register
) -> None:
    """A job's counts cover every tenant (clicks replayed, drifts corrected): an operator,
    who sees only what they own, gets each run without them; viewers and admins get all."""

    @register("test.counted", cron="0 * * * *")
    async def counted(runtime: Runtime) -> dict[str, Any]:
        return {"campaigns": 40, "drifts": 3}

    admin = await make_user(harness, "admin", Role.admin)
    ran = await harness.client.post("/api/jobs/test.counted/run", headers=admin)
    assert ran.status_code == 200, ran.text
    run_id = ran.json()["id"]
    seen = {}
    for role in (Role.admin, Role.viewer, Role.operator):
        headers = admin if role == Role.admin else await make_user(harness, role.value, role)
        listed = await harness.client.get("/api/jobs", headers=headers)
        history = await harness.client.get(
            "/api/jobs/runs", params={"job": "test.counted"}, headers=headers
        )
        one = await harness.client.get(f"/api/jobs/runs/{run_id}", headers=headers)
        assert all(r.status_code == 200 for r in (listed, history, one)), one.text
        last = {j["name"]: j for j in listed.json()["items"]}["test.counted"]["last_run"]
        (item,) = history.json()["items"]
        assert last["id"] == item["id"] == one.json()["id"] == run_id
        assert last["status"] == item["status"] == one.json()["status"] == "succeeded"
        seen[role] = (last["counts"], item["counts"], one.json()["counts"])
    full = {"campaigns": 40, "drifts": 3}
    assert seen == {
        Role.admin: (full, full, full),
        Role.viewer: (full, full, full),
        Role.operator: (None, None, None),
    }


async def test_one_run_is_read_by_its_id(harness: Harness, register: Register) -> None:
    @register("test.polled", cron="0 * * * *")
    async def polled(runtime: Runtime) -> dict[str, Any]:
        return {"rows": 1}

    admin = await make_user(harness, "admin", Role.admin)
    ran = (await harness.client.post("/api/jobs/test.polled/run", headers=admin)).json()
    one = await harness.client.get(f"/api/jobs/runs/{ran['id']}", headers=admin)
    assert one.status_code == 200, one.text
    assert one.json() == ran
    missing = await harness.client.get(f"/api/jobs/runs/{ran['id'] + 1}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"
    for bad in ("0", str(2**31), "x"):
        refused = await harness.client.get(f"/api/jobs/runs/{bad}", headers=admin)
        assert refused.status_code == 422, (bad, refused.text)
        assert "run_id" in refused.json()["error"]["message"]
    assert (await harness.client.get(f"/api/jobs/runs/{ran['id']}")).status_code == 401
    queued = await harness.client.get("/api/jobs/runs", params={"status": "queued"}, headers=admin)
    assert queued.status_code == 200 and queued.json()["total"] == 0


async def test_pruning_deletes_finished_runs_older_than_the_history(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    async with runtimes(test_db, tmp_path, 1, job_history_days=14) as (runtime,):
        now = datetime.now(UTC)

        async def insert(session: Any) -> None:
            for days, status in (
                (30, "succeeded"),
                (20, "failed"),
                (20, "running"),
                (1, "succeeded"),
            ):
                started = now - timedelta(days=days, minutes=len(status))  # distinct slots
                session.add(
                    JobRun(
                        job_name="test.old",
                        scheduled_for=started,
                        trigger="schedule",
                        status=status,
                        started_at=started,
                        heartbeat_at=started,
                    )
                )

        await runtime.db.run(insert)
        run_id = await JobRunner(runtime).run("core.prune_job_runs")
        left = await runs_of(runtime, "test.old")
        pruning = next(r for r in await runs_of(runtime, "core.prune_job_runs") if r.id == run_id)

    assert pruning.status == "succeeded" and pruning.counts == {"deleted": 2}
    # Recent runs stay, and so does one still marked running, however old (recovery,
    # not pruning, decides what became of it).
    assert sorted((r.status, (now - r.started_at).days) for r in left) == [
        ("running", 20),
        ("succeeded", 1),
    ]
