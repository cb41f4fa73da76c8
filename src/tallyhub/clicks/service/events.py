"""A click as the clicks domain passes it around: from the edge to the batch writer, to
the spool and back. Its own module so that the write path's modules (clicks, summaries,
one_statement) all import it and none of them imports another one back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ClickEvent:
    event_id: str
    campaign_id: int
    line_id: str | None
    source_campaign_id: int
    interaction_type: str
    target: str
    tags: tuple[str, ...]
    triggered_at: datetime
    user_agent: str | None = None
    timezone: str | None = None  # the campaign's, when the edge knew it (saves a lookup)

    def to_record(self) -> dict[str, Any]:
        """The event as one spool line (JSON-ready)."""
        return {
            "event_id": self.event_id,
            "cid": self.campaign_id,
            "uid": self.line_id,
            "src": self.source_campaign_id,
            "type": self.interaction_type,
            "to": self.target,
            "tags": list(self.tags),
            "at": self.triggered_at.isoformat(),
            "ua": self.user_agent,
            "tz": self.timezone,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ClickEvent:
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError("spooled click without a time zone")
        return cls(
            event_id=str(data["event_id"]),
            campaign_id=int(data["cid"]),
            line_id=data.get("uid"),
            source_campaign_id=int(data.get("src", 0)),
            interaction_type=str(data["type"]),
            target=str(data["to"]),
            tags=tuple(data.get("tags") or ()),
            triggered_at=at,
            user_agent=data.get("ua"),
            timezone=data.get("tz"),
        )
