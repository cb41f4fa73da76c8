"""Settings of the call-center domain: `TALLYHUB_CALLCENTER__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tallyhub.core.config import CoreSettings, section
from tallyhub.core.upstream import UpstreamSettings

NAME = "callcenter"


def _vendor_upstream() -> UpstreamSettings:
    # Pages of a day's call records are fetched 8 at a time once the total is known.
    return UpstreamSettings(
        rate_per_second=20.0, rate_burst=20, page_concurrency=8, timeout_seconds=60
    )


class CallcenterSettings(BaseModel):
    # The vendor's API; empty: not configured (the jobs skip, and today is not computed).
    base_url: str = ""
    api_key: str = ""
    upstream: UpstreamSettings = Field(default_factory=_vendor_upstream)
    task_page_size: int = Field(default=100, ge=1, le=1000)
    record_page_size: int = Field(default=1000, ge=1, le=1000)
    # Days of cached figures kept; older ones are pruned nightly.
    retention_days: int = Field(default=400, ge=1)
    # Where a failed sync is reported (a signed `callcenter.sync_failed` webhook); unset: none.
    alert_url: str | None = None
    # `make run`: start the vendor simulator in-process and point the client at it.
    simulator: bool = False
    simulator_records_per_day: int = Field(default=20_000, ge=1, le=200_000)


def callcenter_settings(settings: CoreSettings) -> CallcenterSettings:
    return section(settings, NAME, CallcenterSettings)
