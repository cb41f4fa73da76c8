"""Each serving process replays its own spool in a loop of its own, whatever the scheduler;
and a spool segment is applied only to the database it was taken for."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tallyhub.clicks import wiring
from tallyhub.clicks.service import ClickEvent, ClickSpool, SpoolTarget, snapshot_path
from tallyhub.core.auth import Role
from tallyhub.core.instance import database_id, masked_url
from tallyhub.core.jobs.runner import JobRun
from tests.clicks.helpers import campaign, click, proxied, replay_spool
from tests.conftest import Harness, TestDatabase
from tests.factories import make_campaign, make_user

sqlite_only = pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(event_id: str, campaign_id: int) -> ClickEvent:
    return ClickEvent(event_id, campaign_id, "U1", 0, "image_click", "https://x/", ("A",), AT)


async def _spool_for(directory: Path, target: SpoolTarget, *events: ClickEvent) -> None:
    """A segment as another process would leave it: its clicks taken for `target`."""
    other = ClickSpool(directory, target=target)
    for event in events:
        await other.append(event)
    await other.rotate()


@sqlite_only
async def test_a_segment_taken_for_another_database_is_never_applied_here(
    harness_factory: Any, test_db: TestDatabase, capfd: pytest.CaptureFixture[str]
) -> None:
    async with harness_factory(test_db) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)
        spool = wiring.parts(h.runtime).spool
        here = masked_url(h.runtime.db.url)
        this_one = await database_id(h.runtime.db)
        capfd.readouterr()

        await _spool_for(spool.directory, SpoolTarget("another-database", here), _event("x1", 1))
        await _spool_for(
            spool.directory, SpoolTarget(None, "postgresql+asyncpg://elsewhere/db"), _event("x2", 1)
        )
        await _spool_for(spool.directory, SpoolTarget(this_one, here), _event("ok1", c["id"]))
        await _spool_for(spool.directory, SpoolTarget(None, here), _event("ok2", c["id"]))

        counts = await replay_spool(h)
        assert counts == {
            "segments": 4,
            "events": 4,
            "recorded": 2,
            "already_recorded": 0,
            "rejected": 2,
        }
        assert (await campaign(h, admin, c["id"]))["clicked_count"] == 2
        kept = sorted((spool.directory / "rejected").iterdir())
        assert len(kept) == 2  # whole, first line naming the database they were taken for
        heads = [json.loads(path.read_bytes().splitlines()[0]) for path in kept]
        assert sorted(str(head["database_id"] or head["database"]) for head in heads) == [
            "another-database",
            "postgresql+asyncpg://elsewhere/db",
        ]
        logged = capfd.readouterr()
        assert (logged.out + logged.err).count("clicks.spool_segment_of_another_database") == 2


@sqlite_only
async def test_a_new_segment_names_this_database(harness: Harness) -> None:
    admin = await make_user(harness, "admin", Role.admin)
    c = await make_campaign(harness, admin)
    parts = wiring.parts(harness.runtime)
    await parts.spool.append(_event("mine", c["id"]))
    await parts.spool.rotate()
    (segment,) = [p for p in parts.spool.directory.iterdir() if p.name.endswith(".ready")]
    head = json.loads(segment.read_bytes().splitlines()[0])
    assert head["database_id"] == await database_id(harness.runtime.db)
    assert head["database"] == masked_url(harness.runtime.db.url)
    assert parts.spool.stats().events == 1  # the first line is no click


async def test_each_server_replays_its_own_spool_whatever_the_scheduler(
    server_db: TestDatabase, harness_factory: Any
) -> None:
    """No job runs here (the scheduler is Celery's, and nothing is scheduled in this
    process): the clicks spooled during the outage are counted by the process's own
    replay loop once the database is back."""
    proxy, through = await proxied(server_db)
    settings = {
        "scheduler": "celery",
        "clicks": {"dedup_window_ms": 0, "spool": {"replay_seconds": 0.2}},
        "pool": {"size": 4, "max_overflow": 4, "timeout_seconds": 2},
    }
    try:
        async with harness_factory(through, **settings) as h:
            admin = await make_user(h, "admin", Role.admin)
            c = await make_campaign(h, admin)
            assert (await click(h, cid=c["id"], uid="U0")).status_code == 302
            await proxy.stop()
            for n in range(5):
                assert (await click(h, cid=c["id"], uid=f"U{n}")).status_code == 302
            assert wiring.parts(h.runtime).spool.stats().events == 5
            await proxy.start()
            for _ in range(300):
                if wiring.parts(h.runtime).spool.stats().events == 0:
                    break
                await asyncio.sleep(0.05)
            figures = await campaign(h, admin, c["id"])
            assert (figures["clicked_count"], figures["unique_users"]) == (6, 5)
            async with h.runtime.db.transaction(readonly=True) as session:
                runs = await session.scalar(select(func.count()).select_from(JobRun))
            assert runs == 0  # no job did it
    finally:
        await proxy.stop()


@sqlite_only
async def test_a_snapshot_kept_for_another_database_is_dropped(
    harness_factory: Any, test_db: TestDatabase, tmp_path: Path
) -> None:
    path = snapshot_path(tmp_path)
    path.parent.mkdir(parents=True)
    other = {"allowed_hosts": ["evil.example"], "timezone": "UTC"}
    path.write_text(
        json.dumps({"format": 1, "database_id": "another-database", "campaigns": {"1": other}})
    )
    async with harness_factory(test_db, clicks={"spool": {"replay_seconds": 0.05}}) as h:
        admin = await make_user(h, "admin", Role.admin)
        c = await make_campaign(h, admin)  # id 1 here too, with other hosts
        assert c["id"] == 1
        refused = await click(h, cid=1, to="https://evil.example/")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "host_not_allowed"
    kept = json.loads(path.read_text())
    assert kept["database_id"] != "another-database"
    assert kept["campaigns"]["1"]["allowed_hosts"] == ["shop.example.com"]
