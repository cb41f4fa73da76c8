"""`paginate` with the entity's key (the page's keys first, then their
rows) answers exactly the pages a plain OFFSET answers, ties and filters included, on
every database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tallyhub.core.db import Database
from tallyhub.core.jobs.runner import JobRun
from tallyhub.core.pagination import PageParams, paginate
from tests.conftest import TestDatabase

START = datetime(2030, 1, 1, tzinfo=UTC)


async def test_a_page_found_by_its_keys_is_the_page_an_offset_finds(test_db: TestDatabase) -> None:
    db = Database(test_db.url)
    try:
        async with db.transaction() as session:
            session.add_all(
                JobRun(
                    job_name=f"test.page{n % 3}",
                    scheduled_for=START + timedelta(minutes=n),
                    trigger="schedule",
                    status=("succeeded", "failed", "running")[n % 7 % 3],  # many ties
                    started_at=START,
                    heartbeat_at=START,
                    attempt=1,
                )
                for n in range(57)
            )
        for query in (
            select(JobRun).order_by(JobRun.status.desc(), JobRun.id.desc()),
            select(JobRun)
            .where(JobRun.job_name != "test.page1")
            .order_by(JobRun.status, JobRun.id),
        ):
            for size in (1, 7, 50, 200):
                for number in range(1, 57 // size + 3):
                    params = PageParams(page=number, page_size=size)
                    async with db.transaction(readonly=True) as session:
                        plain, total = await paginate(session, query, params)
                        deferred, same_total = await paginate(session, query, params, key=JobRun.id)
                    assert [r.id for r in deferred] == [r.id for r in plain], (size, number)
                    assert same_total == total
                    assert len(plain) == max(0, min(size, total - (number - 1) * size))
    finally:
        await db.dispose()
