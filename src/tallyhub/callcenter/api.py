"""HTTP edge of the call-center domain (`/api/stats/…`, the seed's paths and envelope):
each day's two caches, today computed on first ask, refreshes that compute once when two
come together, trends, the agent ranking, the hour-of-day figures and the export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from openpyxl import Workbook

from tallyhub.callcenter import jobs, schemas, service
from tallyhub.callcenter.models import GradeStatsCache, TaskStatsCache
from tallyhub.core.auth import CurrentUser, WriterUser
from tallyhub.core.errors import BadDayRange
from tallyhub.core.http import TransactionalRoute, read_only_session
from tallyhub.core.openapi import Answers
from tallyhub.core.runtime import Runtime, runtime_of
from tallyhub.core.upstream import UpstreamError

router = APIRouter(prefix="/api/stats", tags=["callcenter"], route_class=TransactionalRoute)

MAX_RANGE_DAYS = 400
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Responses = dict[int | str, dict[str, Any]]
NOT_SYNCED: Responses = {
    404: {"model": schemas.Failure, "description": "The day has not been synced yet"}
}
UPSTREAM: Responses = {
    502: {"model": schemas.Failure, "description": "The vendor failed; nothing stored"}
}
Day = Annotated[date, Query(alias="date", description="YYYY-MM-DD")]


def _range(start: date | None, end: date | None, runtime: Runtime) -> tuple[date, date]:
    last = end or jobs.today(runtime)
    first = start or last - timedelta(days=29)
    if first > last:
        raise BadDayRange(f"from ({first}) is after to ({last})")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise BadDayRange(f"a range spans at most {MAX_RANGE_DAYS} days")
    return first, last


def _failure(status: int, message: str) -> JSONResponse:
    return JSONResponse(schemas.Failure(error=message).model_dump(), status_code=status)


async def _cached(runtime: Runtime, model: Any, day: date) -> Any:
    async with runtime.db.transaction(readonly=True) as session:
        return await (service.grade_cache if model is GradeStatsCache else service.task_cache)(
            session, day
        )


async def _answer(request: Request, kind: str, day: date, refresh: bool, **kw: Any) -> Any:
    """The day's cache; today (or a refresh) computed now when it is not there."""
    runtime = runtime_of(request)
    model = GradeStatsCache if kind == "records" else TaskStatsCache
    shape = schemas.GradeStats if kind == "records" else schemas.TaskStats
    if not refresh:
        row = await _cached(runtime, model, day)
        if row is not None:
            return schemas.Envelope(data=schemas.shown(row, shape, True))
        if not jobs.configured(runtime):
            return _failure(
                404,
                f"{day} has no cached figures, and no call-center vendor is configured "
                "(TALLYHUB_CALLCENTER__BASE_URL) to compute them",
            )
        if day != jobs.today(runtime):
            return _failure(
                404,
                f"{day} has not been synced yet: it is synced by the scheduled jobs (the last "
                f"ten days each morning), or now with POST {request.url.path}/refresh",
            )
    if not jobs.configured(runtime):
        return _failure(502, "no call-center vendor is configured (TALLYHUB_CALLCENTER__BASE_URL)")
    try:
        row = await jobs.sync_day(runtime, kind, day, "refresh" if refresh else "live", **kw)
    except UpstreamError as error:
        return _failure(502, f"the call-center vendor failed, nothing was stored: {error}")
    return schemas.Envelope(data=schemas.shown(row, shape, False))


@router.get(
    "/grade-stats",
    summary="A day's intention grades (9-yuan, 1-yuan) from the cache; today computed if absent",
    responses={**NOT_SYNCED, **UPSTREAM},
)
@read_only_session
async def grade_stats(
    request: Request, _: CurrentUser, day: Day
) -> schemas.Envelope[schemas.GradeStats]:
    answer: Any = await _answer(request, "records", day, refresh=False)
    return answer


@router.post(
    "/grade-stats/refresh",
    summary="Recompute a day's grades now (two refreshes of one day compute once)",
    responses={
        409: {"model": schemas.Failure, "description": "Fewer records than cached"},
        **UPSTREAM,
    },
)
@read_only_session
async def refresh_grade_stats(
    request: Request, _: WriterUser, body: schemas.GradeRefresh
) -> schemas.Envelope[schemas.GradeStats]:
    try:
        answer: Any = await _answer(
            request, "records", body.date, refresh=True, accept_fewer=body.accept_fewer
        )
    except service.FewerRecords as error:
        return _failure(409, error.message)  # type: ignore[return-value]
    return answer


@router.get(
    "/task-stats",
    summary="A day's task dimension from the cache; today computed if absent",
    responses={**NOT_SYNCED, **UPSTREAM},
)
@read_only_session
async def task_stats(
    request: Request, _: CurrentUser, day: Day
) -> schemas.Envelope[schemas.TaskStats]:
    answer: Any = await _answer(request, "tasks", day, refresh=False)
    return answer


@router.post(
    "/task-stats/refresh",
    summary="Recompute a day's task dimension now",
    responses=UPSTREAM,
)
@read_only_session
async def refresh_task_stats(
    request: Request, _: WriterUser, body: schemas.DayRequest
) -> schemas.Envelope[schemas.TaskStats]:
    answer: Any = await _answer(request, "tasks", body.date, refresh=True)
    return answer


From = Annotated[date | None, Query(alias="from")]
To = Annotated[date | None, Query(alias="to")]


@router.get("/daily", summary="Both caches per day over a range (default the last 30 days)")
@read_only_session
async def daily(
    request: Request, _: CurrentUser, start: From = None, end: To = None
) -> schemas.Envelope[list[schemas.Day]]:
    runtime = runtime_of(request)
    first, last = _range(start, end, runtime)
    async with runtime.db.transaction(readonly=True) as session:
        days = await service.daily(session, first, last)
    return schemas.Envelope(data=[schemas.Day(**d) for d in days])


@router.get("/agents", summary="Agents ranked over a range")
@read_only_session
async def agents(
    request: Request,
    _: CurrentUser,
    start: From = None,
    end: To = None,
    sort: Annotated[str, Query(pattern="^(grade_9|grade_1|calls|connected)$")] = "grade_9",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.Envelope[list[schemas.Agent]]:
    runtime = runtime_of(request)
    first, last = _range(start, end, runtime)
    async with runtime.db.transaction(readonly=True) as session:
        rows = await service.agents(session, first, last, sort, limit)
    return schemas.Envelope(data=[schemas.Agent(**r) for r in rows])


@router.get("/hours", summary="Calls and grades by hour of day over a range")
@read_only_session
async def hours(
    request: Request, _: CurrentUser, start: From = None, end: To = None
) -> schemas.Envelope[list[schemas.Hour]]:
    runtime = runtime_of(request)
    first, last = _range(start, end, runtime)
    async with runtime.db.transaction(readonly=True) as session:
        rows = await service.hours(session, first, last)
    return schemas.Envelope(data=[schemas.Hour(**r) for r in rows])


@router.get(
    "/export",
    summary="The daily figures of a range as a file (CSV or Excel)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The file"}},
)
@read_only_session
async def export(
    request: Request,
    _: CurrentUser,
    start: From = None,
    end: To = None,
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
) -> StreamingResponse:
    runtime = runtime_of(request)
    first, last = _range(start, end, runtime)
    async with runtime.db.transaction(readonly=True) as session:
        days = await service.daily(session, first, last)
    name = f"callcenter-{first}-{last}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return StreamingResponse(_xlsx(days), media_type=XLSX, headers=disposition)
    return StreamingResponse(_csv(days), media_type="text/csv; charset=utf-8", headers=disposition)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return float(value) if value is not None and not isinstance(value, int) else value


def _csv(days: list[dict[str, Any]]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(service.EXPORT_COLUMNS)
    for day in days:
        writer.writerow(["" if day[c] is None else _cell(day[c]) for c in service.EXPORT_COLUMNS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


async def _xlsx(days: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("daily")
    sheet.append(list(service.EXPORT_COLUMNS))
    for day in days:
        sheet.append([_cell(day[c]) for c in service.EXPORT_COLUMNS])
    buffer = io.BytesIO()
    book.save(buffer)
    yield buffer.getvalue()


routers = [router]

error_answers: Answers = {
    daily: (422,),
    agents: (422,),
    hours: (422,),
    export: (422,),
}
