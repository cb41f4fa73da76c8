"""Incoming leads as the writer receives them (`IncomingEvent`), and as a batch resolves
them before writing (`BatchGroup`, `FreshLead`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time

from tallyhub.core.columns import utcnow
from tallyhub.core.errors import DomainError
from tallyhub.leads import schemas


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    activation_code: str
    account_line_id: str
    incoming_line_id: str
    event_id: str
    incoming_time: datetime
    received_at: datetime


def make_event(activation_code: str, report: schemas.IncomingReport) -> IncomingEvent:
    now = utcnow()
    return IncomingEvent(
        activation_code=activation_code,
        account_line_id=report.account_line_id,
        incoming_line_id=report.incoming_line_id,
        event_id=report.event_id or uuid.uuid4().hex,
        incoming_time=report.incoming_time or now,
        received_at=now,
    )


@dataclass(frozen=True, slots=True)
class BatchGroup:
    """A group as a batch needs it; `refusal` says why its clients are refused, if so."""

    id: int
    owner_id: int | None
    dedup_scope: str
    timezone: str
    reset: time
    refusal: DomainError | None


@dataclass(slots=True)
class FreshLead:
    """An event not recorded before, resolved to its group, its account and its business
    day (`day`) and the group's today; `index` is its place in the batch."""

    index: int
    event: IncomingEvent
    group: BatchGroup
    account_id: int
    day: date
    today: date
    is_duplicate: bool = False
