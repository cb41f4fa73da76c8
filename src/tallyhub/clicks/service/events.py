"""A click as the clicks domain passes it around: from the edge to the batch writer, to
the spool and back. Its own module so that the write path's modules (clicks, summaries,
one_statement) all import it and none of them imports another one back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tallyhub.clicks.service.agents import Agent


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
    referrer: str | None = None  # the host of the click's Referer (None: it had none)
    filter_bots: bool | None = None  # the campaign's setting, when the edge knew it

    @property
    def settled(self) -> bool:
        """The edge knew the campaign's settings the batch needs (its time zone and
        whether it keeps bots out): nothing has to be read for this click."""
        return self.timezone is not None and self.filter_bots is not None

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
            "ref": self.referrer,
            "fb": self.filter_bots,
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
            referrer=_text(data.get("ref")),
            filter_bots=data["fb"] if isinstance(data.get("fb"), bool) else None,
        )


@dataclass(slots=True)
class FreshClick:
    """A click of a batch that is to be recorded: its place in the batch, its business
    date, its agent (None while classification is off) and whether it counts (a bot's
    click kept out of the people's counts does not)."""

    index: int
    event: ClickEvent
    day: date
    agent: Agent | None
    counted: bool


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
