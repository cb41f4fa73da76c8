"""Connected Douyin accounts: adding one (tokens by hand or by OAuth), listing, deleting,
and the access token a sync uses, refreshed when it has expired.

A refresh rotates the refresh token, so its result is committed at once and under the
account row's lock: two processes that find the same token expired refresh it once, and
the second uses what the first stored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import jwt
import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal
from tallyhub.core.columns import utcnow
from tallyhub.core.crypto import SecretBox
from tallyhub.core.db import Database
from tallyhub.core.errors import BadRequest, Conflict, NotFound
from tallyhub.douplus.client import (
    AccessTokenExpired,
    AccessTokenInvalid,
    DouplusClient,
    ReauthNeeded,
    Tokens,
)
from tallyhub.douplus.models import (
    DouplusAccountDaily,
    DouplusOrder,
    DouplusOrderStats,
    DouplusSyncState,
    DouplusVideoStatsAgg,
    DouyinAccount,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

STATE_PURPOSE = "douplus_oauth"
STATE_MINUTES = 15


# ---------------------------------------------------------------- adding and listing


def _token_times(tokens: Tokens, now: datetime) -> tuple[datetime, datetime | None]:
    refresh_in = tokens.refresh_token_expires_in
    refresh_at = None if refresh_in is None else now + timedelta(seconds=refresh_in)
    return now + timedelta(seconds=tokens.expires_in), refresh_at


async def save_account(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    aweme_sec_uid: str,
    nickname: str | None,
    tokens: Tokens,
) -> tuple[DouyinAccount, bool]:
    """Connect an account, or give a known one (of this principal's) its new tokens and
    make it active again; whether it was new."""
    now = utcnow()
    expires_at, refresh_at = _token_times(tokens, now)
    # Locked: a sync that is setting the account aside meanwhile is waited for, and its
    # status is then read and overwritten (not kept as an unchanged attribute).
    account = await session.scalar(
        select(DouyinAccount).where(DouyinAccount.aweme_sec_uid == aweme_sec_uid).with_for_update()
    )
    created = account is None
    if account is None:
        account = DouyinAccount(aweme_sec_uid=aweme_sec_uid, owner_id=principal.id, created_at=now)
        session.add(account)
    elif not principal.owns(account.owner_id):
        raise Conflict(f"account {aweme_sec_uid} is connected by another user")
    account.nickname = nickname if nickname is not None else (account.nickname or "")
    account.access_token = box.encrypt(tokens.access_token)
    account.refresh_token = box.encrypt(tokens.refresh_token)
    account.expires_at, account.refresh_expires_at = expires_at, refresh_at
    account.status, account.status_reason, account.updated_at = "active", None, now
    await session.flush()
    return account, created


async def get_account(
    session: AsyncSession, principal: Principal, account_id: int
) -> DouyinAccount:
    account = await session.scalar(
        select(DouyinAccount).where(
            DouyinAccount.id == account_id, principal.visible(DouyinAccount.owner_id)
        )
    )
    if account is None:
        raise NotFound(f"no DOU+ account {account_id}")
    return account


async def delete_account(session: AsyncSession, principal: Principal, account_id: int) -> None:
    """Forget an account and everything synced for it."""
    account = await get_account(session, principal, account_id)
    order_ids = select(DouplusOrder.order_id).where(DouplusOrder.account_id == account.id)
    await session.execute(
        delete(DouplusOrderStats).where(DouplusOrderStats.order_id.in_(order_ids))
    )
    await session.execute(delete(DouplusOrder).where(DouplusOrder.account_id == account.id))
    for model in (DouplusVideoStatsAgg, DouplusAccountDaily, DouplusSyncState):
        await session.execute(delete(model).where(model.account_id == account.id))
    await session.delete(account)
    await session.flush()


# ---------------------------------------------------------------- OAuth


def oauth_state(secret: str, principal: Principal, aweme_sec_uid: str) -> str:
    """A signed, short-lived `state` naming who asked and for which account."""
    now = int(time.time())
    claims = {
        "purpose": STATE_PURPOSE,
        "sub": str(principal.id),
        "aweme_sec_uid": aweme_sec_uid,
        "iat": now,
        "exp": now + STATE_MINUTES * 60,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_oauth_state(secret: str, principal: Principal, state: str) -> str:
    """The account a `state` was issued for, if this principal asked for it."""
    try:
        claims = jwt.decode(state, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError as error:
        raise BadRequest(f"state is not valid: {error}", code="invalid_state") from error
    if claims.get("purpose") != STATE_PURPOSE or claims.get("sub") != str(principal.id):
        raise BadRequest("state was issued for another user or purpose", code="invalid_state")
    return str(claims["aweme_sec_uid"])


# ---------------------------------------------------------------- tokens for a sync


@dataclass(frozen=True)
class Credentials:
    account_id: int
    aweme_sec_uid: str
    access_token: str


class AccountTokens:
    """The access token of one account for a sync, refreshed once when it has expired."""

    def __init__(self, db: Database, box: SecretBox, client: DouplusClient, account_id: int):
        self.db, self.box, self.client, self.account_id = db, box, client, account_id

    async def current(self) -> Credentials:
        async def read(session: AsyncSession) -> Credentials:
            account = await session.get(DouyinAccount, self.account_id)
            if account is None:
                raise NotFound(f"DOU+ account {self.account_id} was deleted")
            return self._credentials(account)

        return await self.db.run(read, readonly=True)

    def _credentials(self, account: DouyinAccount) -> Credentials:
        return Credentials(
            account.id, account.aweme_sec_uid, self.box.decrypt(account.access_token)
        )

    async def call(self, work: Callable[[Credentials], Awaitable[T]]) -> T:
        """`work` with the account's token; on "access token expired" (or invalid), refresh
        and retry once. An expired or invalid refresh token marks the account `needs_reauth` and
        raises `ReauthNeeded`."""
        credentials = await self.current()
        try:
            return await work(credentials)
        except (AccessTokenExpired, AccessTokenInvalid) as refused:
            # Invalid too: another process may have rotated it; a refresh tells, and a
            # refresh token that is refused as well sets the account aside.
            log.info("douplus.token_refused", account_id=self.account_id, kind=refused.kind)
        return await work(await self.refresh(credentials.access_token))

    async def refresh(self, expired: str) -> Credentials:
        async def refresh(session: AsyncSession) -> Credentials | ReauthNeeded:
            account = await session.scalar(
                select(DouyinAccount).where(DouyinAccount.id == self.account_id).with_for_update()
            )
            if account is None:
                raise NotFound(f"DOU+ account {self.account_id} was deleted")
            if self.box.decrypt(account.access_token) != expired:
                return self._credentials(account)  # new tokens meanwhile (a refresh, a reconnect)
            now = utcnow()
            try:
                tokens = await self.client.refresh(self.box.decrypt(account.refresh_token))
            except ReauthNeeded as refused:
                # Set aside in the transaction that holds the refused tokens locked, so new
                # tokens saved meanwhile are never set aside with the old ones' refusal.
                account.status, account.status_reason = "needs_reauth", str(refused)[:1000]
                account.updated_at = now
                return refused
            account.access_token = self.box.encrypt(tokens.access_token)
            account.refresh_token = self.box.encrypt(tokens.refresh_token)
            account.expires_at, account.refresh_expires_at = _token_times(tokens, now)
            account.updated_at = now
            log.info("douplus.token_refreshed", account_id=account.id)
            return self._credentials(account)

        outcome = await self.db.run(refresh, retries=0)
        if isinstance(outcome, ReauthNeeded):
            log.warning("douplus.needs_reauth", account_id=self.account_id, reason=str(outcome))
            raise outcome
        return outcome
