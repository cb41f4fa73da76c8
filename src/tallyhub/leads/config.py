"""Settings of the leads domain: `TALLYHUB_LEADS__…`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tallyhub.core.config import BatchSettings, CoreSettings, section

NAME = "leads"


class LeadsSettings(BaseModel):
    batching: BatchSettings = Field(default_factory=BatchSettings)
    recalibration_chunk: int = 500


def leads_settings(settings: CoreSettings) -> LeadsSettings:
    return section(settings, NAME, LeadsSettings)
