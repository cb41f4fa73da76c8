"""The jobs a process knows: each a named async function of the Runtime with its schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from croniter import croniter

from tallyhub.core.daywindow import zone
from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)

JobFunction = Callable[[Runtime], Awaitable[dict[str, Any]]]


class JobFailed(Exception):
    """A run that did part of its work and failed at the rest (one account of many): it is
    recorded as failed, with its `counts` (what each part did) kept beside the error."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: JobFunction
    cron: str | None = None
    every_seconds: int | None = None
    description: str = ""
    # Celery mode: the queue its runs go to (a worker takes it with `-Q`); None: the
    # default queue (TALLYHUB_JOB_QUEUE).
    queue: str | None = None

    @property
    def schedule(self) -> str:
        return self.cron if self.cron else f"every {self.every_seconds} s"

    def last_slot(self, now: datetime, tz: str) -> datetime:
        """The latest scheduled time at or before `now` (UTC)."""
        if self.every_seconds:
            epoch = int(now.timestamp()) // self.every_seconds * self.every_seconds
            return datetime.fromtimestamp(epoch, UTC)
        assert self.cron is not None
        local = now.astimezone(zone(tz)) + timedelta(microseconds=1)
        prev: datetime = croniter(self.cron, local).get_prev(datetime)
        return prev.astimezone(UTC)

    async def __call__(self, runtime: Runtime) -> dict[str, Any]:
        return await self.function(runtime)

    def next_slot(self, now: datetime, tz: str) -> datetime:
        if self.every_seconds:
            return self.last_slot(now, tz) + timedelta(seconds=self.every_seconds)
        assert self.cron is not None
        nxt: datetime = croniter(self.cron, now.astimezone(zone(tz))).get_next(datetime)
        return nxt.astimezone(UTC)


class JobRegistry(dict[str, JobSpec]):
    """The jobs this process knows, by name."""

    def add(self, *specs: JobSpec) -> None:
        for spec in specs:
            known = self.get(spec.name)
            if known is not None and known.function is not spec.function:
                raise ValueError(f"two jobs are named {spec.name}")
            self[spec.name] = spec


REGISTRY = JobRegistry()


def job(
    name: str,
    *,
    cron: str | None = None,
    every_seconds: int | None = None,
    description: str = "",
    queue: str | None = None,
) -> Callable[[JobFunction], JobSpec]:
    """Declare a job (its domain lists it in `Domain.jobs`); the spec calls like the job."""
    if (cron is None) == (every_seconds is None):
        raise ValueError(f"job {name}: give exactly one of cron= or every_seconds=")
    if cron is not None and not croniter.is_valid(cron):
        raise ValueError(f"job {name}: invalid cron expression {cron!r}")

    def declare(function: JobFunction) -> JobSpec:
        return JobSpec(
            name,
            function,
            cron,
            every_seconds,
            description or (function.__doc__ or "").strip().split("\n")[0],
            queue,
        )

    return declare
