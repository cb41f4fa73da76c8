"""Settings of the leads domain: `TALLYHUB_LEADS__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tallyhub.core.config import BatchSettings, CoreSettings, section

NAME = "leads"


class LeadsSettings(BaseModel):
    batching: BatchSettings = Field(default_factory=BatchSettings)
    recalibration_chunk: int = 500
    # A lead its batch has not committed by then is answered 503 with Retry-After; it may
    # still commit, and the client's retry with the same event_id then counts it once.
    commit_timeout_ms: float = Field(default=2000.0, gt=0)
    # A known activation code is let in without asking the database for this long.
    code_cache_seconds: float = Field(default=10.0, ge=0)


def leads_settings(settings: CoreSettings) -> LeadsSettings:
    return section(settings, NAME, LeadsSettings)
