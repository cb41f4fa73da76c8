"""What one sync run works with: the database, the secret box, the upstream client and the
settings, and the clock it reads "now" from (a test's simulator clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tallyhub.core.columns import utcnow
from tallyhub.core.crypto import SecretBox
from tallyhub.core.daywindow import zone
from tallyhub.core.db import Database
from tallyhub.douplus.client import DouplusClient
from tallyhub.douplus.config import DouplusSettings
from tallyhub.douplus.service.accounts import AccountTokens

WINDOW = timedelta(minutes=5)


def window_of(instant: datetime) -> datetime:
    """The 5-minute window an instant falls in (seed appendix A: 12:07:35 → 12:05:00)."""
    epoch = int(instant.timestamp()) // 300 * 300
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class SyncContext:
    db: Database
    box: SecretBox
    client: DouplusClient
    settings: DouplusSettings
    clock: Callable[[], datetime] = field(default=utcnow)

    def tokens(self, account_id: int) -> AccountTokens:
        return AccountTokens(self.db, self.box, self.client, account_id)

    def local_date(self, instant: datetime) -> date:
        """The DOU+ business date (China time by default) of an instant."""
        return instant.astimezone(zone(self.settings.timezone)).date()
