"""The desktop client's side of a group: who may connect (by activation code), its login
and the summary it shows."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.cache import TTLCache
from tallyhub.core.columns import utcnow
from tallyhub.core.db import Database
from tallyhub.core.errors import DomainError, Forbidden, Unauthorized
from tallyhub.core.limiter import FailureLimiter
from tallyhub.core.validation import NUL
from tallyhub.leads import schemas
from tallyhub.leads.models import Group
from tallyhub.leads.service.groups import with_stats

MAX_CODE_LENGTH = 64  # the activation_code column's


def _missing() -> Unauthorized:
    return Unauthorized("missing X-Activation-Code header", code="missing_activation_code")


def _unknown() -> Unauthorized:
    return Unauthorized("unknown activation code", code="unknown_activation_code")


class CodeGate:
    """Lets a desktop client's request in once its activation code is known, before its
    body is read: a body sent without a valid code is never parsed.

    Each judgment of a code is counted by the failed-attempt limiter before it is made, so
    a burst of guesses sent side by side gets no more judgments than guesses sent in turn.
    A code found known is remembered for `cache_seconds`: the hot path asks the database
    once per code and window, and a remembered code costs the limiter nothing. Requests
    with the same code arriving while it is judged share that one judgment. What a code
    may do (its group active or not, deleted or not) is decided later, by the endpoint or
    the writer, which also refuses a code replaced since it was remembered (`refused`)."""

    def __init__(self, db: Database, limiter: FailureLimiter, *, cache_seconds: float) -> None:
        self.db = db
        self.limiter = limiter
        self._known: TTLCache[str, bool] = TTLCache("leads.activation_codes", cache_seconds)
        # Judgments under way, by code: True known, False unknown, None undecided.
        self._judging: dict[str, asyncio.Future[bool | None]] = {}

    async def admit(self, address: str, code: str | None) -> str:
        """The code, once known; else Unauthorized (counted) or TooManyRequests."""
        while True:
            if not code:
                async with self.limiter.attempt(address):
                    raise _missing()
            if self._known.get(code) is not None:
                return code
            pending = self._judging.get(code)
            if pending is None:
                await self._judge(address, code)
                return code
            verdict = await asyncio.shield(pending)
            if verdict:
                return code
            if verdict is False:  # judged already: counted as this address's failure too
                await self.limiter.failed(address)
                raise _unknown()
            # Undecided (refused by the limiter, or the lookup failed): judge it here.

    async def refused(self, address: str, code: str) -> None:
        """The endpoint or the writer found the admitted code unknown (it was replaced
        while remembered): forget it, and count the failure."""
        self._known.invalidate(code)
        await self.limiter.failed(address)

    async def _judge(self, address: str, code: str) -> None:
        judging: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._judging[code] = judging
        verdict: bool | None = None
        try:
            async with self.limiter.attempt(address):
                verdict = await self._exists(code)
                if not verdict:
                    raise _unknown()
            self._known.put(code, True)
        finally:
            del self._judging[code]
            judging.set_result(verdict)

    async def _exists(self, code: str) -> bool:
        if len(code) > MAX_CODE_LENGTH or NUL in code:  # no such code can be stored
            return False
        async with self.db.transaction(readonly=True) as session:
            found = await session.scalar(
                select(Group.id).where(Group.activation_code == code).limit(1)
            )
        return found is not None


async def authenticate_client(session: AsyncSession, code: str | None) -> Group:
    if not code:
        raise Unauthorized("missing X-Activation-Code header", code="missing_activation_code")
    group = await session.scalar(select(Group).where(Group.activation_code == code))
    if group is None:
        raise Unauthorized("unknown activation code", code="unknown_activation_code")
    check_client_group(group)
    return group


def client_refusal(is_active: bool, deleted_at: datetime | None) -> DomainError | None:
    """Why a desktop client of this group is refused, or None."""
    if deleted_at is not None:
        return Forbidden("this group was deleted", code="group_deleted")
    if not is_active:
        return Forbidden("this group is not active", code="group_inactive")
    return None


def check_client_group(group: Group) -> None:
    refusal = client_refusal(group.is_active, group.deleted_at)
    if refusal is not None:
        raise refusal


async def client_summary(session: AsyncSession, group: Group) -> schemas.ClientSummary:
    (stats,) = await with_stats(session, [group])
    return schemas.ClientSummary(
        group_id=group.id,
        remark=group.remark,
        dedup_scope=group.dedup_scope,
        reset_time=group.reset_time,
        timezone=group.timezone,
        account_limit=group.account_limit,
        business_date=stats.business_date,
        total_accounts=stats.total_accounts,
        online_accounts=stats.online_accounts,
        today_incoming=stats.today_incoming,
        total_incoming=stats.total_incoming,
        duplicate_incoming=stats.duplicate_incoming,
    )


async def login(session: AsyncSession, group: Group) -> schemas.ClientSummary:
    group.last_login_at = utcnow()
    await session.flush()
    return await client_summary(session, group)
