"""Recalibration runs (校准): every domain recomputes its counters from its event logs in
chunks, corrects what drifted, and records the run here: what it checked and each drift
(entity, field, stored, actual). The domains bring only the per-chunk recompute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.auth import AdminUser, CurrentUser, Principal, Role
from tallyhub.core.columns import Base, UTCDateTime, utcnow
from tallyhub.core.db import Database
from tallyhub.core.http import Paging, Session, read_only_session
from tallyhub.core.jobs.registry import JobSpec, job
from tallyhub.core.pagination import Page, PageParams, page_of, paginate
from tallyhub.core.runtime import Runtime, runtime_of

MAX_DRIFTS_KEPT = 1000  # a run records at most this many drifts; drift_count has them all

ChunkResult = tuple[dict[str, int], list[dict[str, Any]]]
ChunkWork = Callable[[AsyncSession, Sequence[int]], Awaitable[ChunkResult]]


class RecalibrationRun(Base):
    __tablename__ = "recalibration_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked: Mapped[dict[str, int]] = mapped_column(JSON)
    drift_count: Mapped[int] = mapped_column(Integer)
    drifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class Drift(BaseModel):
    entity: str
    entity_id: str
    field: str
    stored: int | str | None
    actual: int | str | None


class RecalibrationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    domain: str
    started_at: datetime
    finished_at: datetime
    # A run covers every tenant: an operator, who sees only what they own, gets its times
    # only (these three null).
    checked: dict[str, int] | None = Field(description="What it checked; null for operators")
    drift_count: int | None = Field(description="Drifts it corrected; null for operators")
    drifts: list[Drift] | None = Field(
        description=f"The drifts (at most {MAX_DRIFTS_KEPT}); null for operators"
    )


def drift(entity: str, entity_id: Any, field: str, stored: Any, actual: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:  # JSON-ready: MySQL's SUM() gives Decimal
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else str(value)
        return value

    return {
        "entity": entity,
        "entity_id": str(entity_id),
        "field": field,
        "stored": plain(stored),
        "actual": plain(actual),
    }


async def recalibrate_in_chunks(
    db: Database, domain: str, ids: Sequence[int], chunk_size: int, work: ChunkWork
) -> RecalibrationRun:
    """Run `work` over `ids` in chunks, one transaction each (retried on a deadlock), and
    record the run. `work` locks what it recomputes before it counts."""
    started = utcnow()
    checked: Counter[str] = Counter()
    drifts: list[dict[str, Any]] = []
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]

        async def one_chunk(session: AsyncSession, chunk: Sequence[int] = chunk) -> ChunkResult:
            return await work(session, chunk)

        counts, found = await db.run(one_chunk)
        checked.update(counts)
        drifts.extend(found)

    async def record(session: AsyncSession) -> RecalibrationRun:
        run = RecalibrationRun(
            domain=domain,
            started_at=started,
            finished_at=utcnow(),
            checked=dict(checked),
            drift_count=len(drifts),
            drifts=drifts[:MAX_DRIFTS_KEPT],
        )
        session.add(run)
        await session.flush()
        return run

    return await db.run(record)


def recalibration_job(
    name: str,
    recalibrate: Callable[[Runtime], Awaitable[RecalibrationRun]],
    *,
    cron: str,
    description: str,
) -> JobSpec:
    """A domain's nightly recalibration: runs `recalibrate` and records in its job run
    what it checked and how many drifts it corrected, with the recalibration's id."""

    async def run(runtime: Runtime) -> dict[str, Any]:
        done = await recalibrate(runtime)
        return {"recalibration_id": done.id, **done.checked, "drifts": done.drift_count}

    return job(name, cron=cron, description=description)(run)


async def runs_page(
    session: AsyncSession, domain: str, paging: PageParams
) -> Page[RecalibrationOut]:
    rows, total = await paginate(
        session,
        select(RecalibrationRun)
        .where(RecalibrationRun.domain == domain)
        .order_by(RecalibrationRun.id.desc()),
        paging,
    )
    return page_of([RecalibrationOut.model_validate(r) for r in rows], total, paging)


def _for(principal: Principal, page: Page[RecalibrationOut]) -> Page[RecalibrationOut]:
    if principal.role == Role.operator:
        for run in page.items:
            run.checked = run.drift_count = run.drifts = None
    return page


def add_routes(
    router: APIRouter,
    domain: str,
    recalibrate: Callable[[Runtime], Awaitable[RecalibrationRun]],
    *,
    counters: str,
) -> None:
    """A domain's `POST …/recalibrate` (admin: recompute its `counters` now) and
    `GET …/recalibrations` (its runs, newest first, with their drifts) on its router."""

    @router.post("/recalibrate", summary=f"Recompute every {counters} from the logs now (admin)")
    @read_only_session
    async def recalibrate_now(request: Request, _: AdminUser) -> RecalibrationOut:
        return RecalibrationOut.model_validate(await recalibrate(runtime_of(request)))

    @router.get(
        "/recalibrations",
        summary="Recalibration runs, newest first, with their drifts (operators: times only)",
    )
    async def recalibrations(
        session: Session, principal: CurrentUser, paging: Paging
    ) -> Page[RecalibrationOut]:
        return _for(principal, await runs_page(session, domain, paging))
