"""The simulator's HTTP layer: the vendor's two list routes in its envelope behind the
`X-Api-Key` header, the `/__sim/` routes that show and drive the world, and `create_app`,
which puts them on the shared simulator kit's app."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from tallyhub.callcenter.contract import (
    API_KEY_HEADER,
    BAD_PARAMETER,
    CALL_RECORDS,
    DEFAULT_PAGE_SIZE,
    MAX_RECORD_PAGE_SIZE,
    MAX_TASK_PAGE_SIZE,
    TASK_STATS,
    UNAUTHORIZED,
    envelope,
    page_data,
)
from tallyhub.callcenter.simulator.world import CallCenterWorld
from tallyhub.core.simulation import Faults, SimClock, simulator_app

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INTEGER = re.compile(r"-?\d{1,12}")


class ApiError(Exception):
    """An answer the vendor refuses with: HTTP `status`, the envelope's `code` and `message`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_parameter(parameter: str, problem: str) -> ApiError:
    return ApiError(400, BAD_PARAMETER, f"invalid parameter {parameter}: {problem}")


def read_date(text: str | None) -> date:
    if text is None or text == "":
        raise bad_parameter("date", "required (YYYY-MM-DD)")
    if not _DATE.fullmatch(text):
        raise bad_parameter("date", f"must read YYYY-MM-DD, not {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad_parameter("date", f"no such date {text!r}") from None


def read_integer(parameter: str, text: str | None, *, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not _INTEGER.fullmatch(text):
        raise bad_parameter(parameter, f"must be an integer, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise bad_parameter(parameter, f"must be between {low} and {high}, not {value}")
    return value


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int

    @classmethod
    def read(cls, page: str | None, page_size: str | None, *, most: int) -> Paging:
        return cls(
            page=read_integer("page", page, default=1, low=1, high=10**9),
            page_size=read_integer(
                "page_size", page_size, default=DEFAULT_PAGE_SIZE, low=1, high=most
            ),
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def answer(self, items: list[dict[str, Any]], total: int) -> JSONResponse:
        data = page_data(items, total=total, page=self.page, page_size=self.page_size)
        return JSONResponse(envelope(data))


def _api_routes(app: FastAPI, world: CallCenterWorld, api_key: str) -> None:
    async def admit(key: str | None) -> None:
        if key != api_key:
            raise ApiError(401, UNAUTHORIZED, f"missing or invalid {API_KEY_HEADER}")
        if world.page_delay_ms:
            await asyncio.sleep(world.page_delay_ms / 1000)

    @app.get(TASK_STATS, summary="Each task's figures of a date", tags=["upstream"])
    async def task_stats(
        date: str | None = None,
        page: str | None = None,
        page_size: str | None = None,
        key: str | None = Header(None, alias=API_KEY_HEADER),
    ) -> JSONResponse:
        await admit(key)
        day = read_date(date)
        paging = Paging.read(page, page_size, most=MAX_TASK_PAGE_SIZE)
        rows = world.task_rows(day)
        return paging.answer(rows[paging.offset : paging.offset + paging.page_size], len(rows))

    @app.get(CALL_RECORDS, summary="The call records of a date", tags=["upstream"])
    async def call_records(
        date: str | None = None,
        page: str | None = None,
        page_size: str | None = None,
        key: str | None = Header(None, alias=API_KEY_HEADER),
    ) -> JSONResponse:
        await admit(key)
        day = read_date(date)
        paging = Paging.read(page, page_size, most=MAX_RECORD_PAGE_SIZE)
        rows, total = world.records(day, paging.offset, paging.page_size)
        return paging.answer(rows, total)


class SlowPages(BaseModel):
    ms: int = Field(ge=0, le=60_000, description="Every API page waits this long; 0: none")


class Arrivals(BaseModel):
    date: date
    count: int = Field(1, ge=1, le=200_000)


def _control_routes(app: FastAPI, world: CallCenterWorld) -> None:
    tags: list[str | Enum] = ["simulator control"]

    @app.get("/__sim/truth", summary="The true totals of a date's calls existing now", tags=tags)
    async def truth(date: date) -> dict[str, Any]:
        return world.truth(date)

    @app.get("/__sim/world", summary="Tasks, agents and calls a day", tags=tags)
    async def describe() -> dict[str, Any]:
        return {
            "today": world.today().isoformat(),
            "records_per_day": world.records_per_day,
            "tasks": [{"task_id": t.task_id, "task_name": t.task_name} for t in world.tasks],
            "agents": [a.agent_id for a in world.agents],
        }

    @app.get("/__sim/pages/slow", summary="How long every API page waits", tags=tags)
    async def show_slow() -> dict[str, int]:
        return {"ms": world.page_delay_ms}

    @app.post("/__sim/pages/slow", summary="Make every API page wait (0: not)", tags=tags)
    async def set_slow(body: SlowPages) -> dict[str, int]:
        world.page_delay_ms = body.ms
        return {"ms": world.page_delay_ms}

    @app.post("/__sim/arrivals", summary="Calls of a date that reach the vendor now", tags=tags)
    async def arrivals(body: Arrivals) -> dict[str, Any]:
        try:
            ids = world.add_arrivals(body.date, body.count)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        return {
            "date": body.date.isoformat(),
            "record_ids": ids,
            "total_records": world.visible(body.date)[1],
        }


def _business_error(code: int, message: str) -> dict[str, Any]:
    return envelope(None, code=code, message=message)


def create_app(
    *,
    seed: int = 1,
    records_per_day: int = 20_000,
    clock: SimClock | None = None,
    api_key: str = "sim-callcenter-key",
    tasks: int = 40,
    agents: int = 60,
) -> FastAPI:
    """The Guanke simulator; its world is `app.state.world`, its clock `app.state.clock`,
    its faults `app.state.faults` (a rate limit answers HTTP 429 with Retry-After)."""
    clock = clock or SimClock()
    world = CallCenterWorld(
        seed=seed, records_per_day=records_per_day, clock=clock, tasks=tasks, agents=agents
    )
    app = simulator_app(
        "Guanke call-center simulator",
        clock=clock,
        faults=Faults(),
        business_error=_business_error,
    )
    app.state.world = world

    async def refused(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, ApiError):  # registered for ApiError only
            raise error
        body = envelope(None, code=error.code, message=error.message)
        return JSONResponse(body, status_code=error.status)

    app.add_exception_handler(ApiError, refused)
    _api_routes(app, world, api_key)
    _control_routes(app, world)
    return app
