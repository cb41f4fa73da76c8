"""Settings of the DOU+ domain: `TALLYHUB_DOUPLUS__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tallyhub.core.config import CoreSettings, section
from tallyhub.core.upstream import UpstreamSettings

NAME = "douplus"


def _upstream_defaults() -> UpstreamSettings:
    # Ocean Engine allows a few dozen calls a second per app; stay well below.
    return UpstreamSettings(rate_per_second=10.0, rate_burst=10, page_concurrency=4)


class DouplusSettings(BaseModel):
    base_url: str = "https://api.oceanengine.com"
    app_id: str = ""
    app_secret: str = ""
    # Where an operator grants access (the signed `state` comes back with the auth_code).
    authorize_url: str = "https://open.oceanengine.com/audit/oauth.html"
    redirect_uri: str = "http://127.0.0.1:8000/douplus/oauth"
    upstream: UpstreamSettings = Field(default_factory=_upstream_defaults)
    # Business days of the account figures: DOU+ reports days in China time.
    timezone: str = "Asia/Shanghai"
    sync_incremental_days: int = Field(default=7, ge=1)
    sync_full_days: int = Field(default=90, ge=1)
    page_size: int = Field(default=100, ge=1, le=100)
    # Accounts synced at once by one job run.
    account_concurrency: int = Field(default=4, ge=1)
    # `make run`: start the simulator in-process, point the client at it and connect its
    # accounts to the demo admin, so the DOU+ pages fill by themselves.
    simulator: bool = False
    simulator_seed: int = 1
    simulator_accounts: int = Field(default=3, ge=1)
    simulator_orders: int = Field(default=40, ge=1)


def douplus_settings(settings: CoreSettings) -> DouplusSettings:
    return section(settings, NAME, DouplusSettings)
