"""The campaign settings a click is checked against (`CampaignRule`), and a local snapshot
of those this process has loaded, under `var/`: a process (re)started while the database
does not answer still redirects and spools clicks for the campaigns it knew.

The snapshot belongs to one database (its id, core/instance.py): one written for another
database is never used. It is written atomically, at most every `flush_seconds` and only
when something in it changed, and once more on shutdown. Several processes of one host
share the file: each loads it at start and writes back what it knows (the last write
wins; each holds every campaign the file held when it started).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from tallyhub.core.instance import read_json, write_atomically

log = structlog.get_logger(__name__)

FORMAT = 1


@dataclass(frozen=True, slots=True)
class CampaignRule:
    """What checking a click needs to know about its campaign."""

    id: int
    allowed_hosts: tuple[str, ...]
    timezone: str
    filter_bots: bool = True  # bots' clicks are kept out of the people's counts


def snapshot_path(var_dir: Path) -> Path:
    return var_dir / "clicks" / "campaigns.json"


class CampaignSnapshot:
    """The campaign rules this host knew, and the database they were read from."""

    def __init__(self, path: Path, *, flush_seconds: float = 1.0) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.database_id: str | None = None
        self._rules: dict[int, CampaignRule] = {}
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ reading

    def load(self) -> dict[int, CampaignRule]:
        """Read the file: the rules it holds, if it names the database they came from."""
        data = read_json(self.path)
        if data is None or data.get("format") != FORMAT or not data.get("database_id"):
            return {}
        try:
            rules = {
                int(cid): CampaignRule(
                    int(cid),
                    tuple(rule["allowed_hosts"]),
                    rule["timezone"],
                    rule.get("filter_bots") is not False,  # absent in older snapshots
                )
                for cid, rule in data["campaigns"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            log.error("clicks.snapshot_unreadable", path=str(self.path), error=repr(error))
            return {}
        self.database_id = str(data["database_id"])
        self._rules = rules
        return dict(rules)

    # ------------------------------------------------------------ changing

    def put(self, campaign_id: int, rule: CampaignRule | None) -> None:
        """What the database said of a campaign (None: there is no such campaign)."""
        if rule is None:
            if self._rules.pop(campaign_id, None) is not None:
                self._dirty = True
        elif self._rules.get(campaign_id) != rule:
            self._rules[campaign_id] = rule
            self._dirty = True

    def reset(self, database_id: str) -> None:
        """The database is `database_id`: what was kept for another one is dropped (rules
        put before any id was known came from this process's database: they stay)."""
        if self.database_id == database_id:
            return
        if self.database_id is not None:
            self._rules = {}
        self.database_id = database_id
        self._dirty = True

    def __len__(self) -> int:
        return len(self._rules)

    # ------------------------------------------------------------ writing

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clicks-snapshot")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except OSError:
                log.error("clicks.snapshot_write_failed", path=str(self.path), exc_info=True)

    async def flush(self) -> None:
        """Write the snapshot if it changed (and names its database)."""
        if not self._dirty or self.database_id is None:
            return
        self._dirty = False
        rules = dict(self._rules)  # encoded in the thread: the loop goes on changing ours
        try:
            await asyncio.to_thread(self._write, self.database_id, rules)
        except BaseException:
            self._dirty = True
            raise

    def _write(self, database_id: str, rules: dict[int, CampaignRule]) -> None:
        campaigns: dict[str, Any] = {
            str(cid): {
                "allowed_hosts": list(rule.allowed_hosts),
                "timezone": rule.timezone,
                "filter_bots": rule.filter_bots,
            }
            for cid, rule in sorted(rules.items())
        }
        document = {"format": FORMAT, "database_id": database_id, "campaigns": campaigns}
        write_atomically(self.path, json.dumps(document, separators=(",", ":")).encode())
