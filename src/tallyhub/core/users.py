"""`/api/users` (admins only): list, create, change role or password, disable and enable
the users who sign in. The dashboard's users page and scripts share it. An admin cannot
demote or disable themselves, nor leave no active admin. A disabled user can no longer
sign in, and the tokens and cookies they hold stop working at once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import AdminUser, Principal, Role, User, create_user, hash_password
from tallyhub.core.errors import Conflict, NotFound
from tallyhub.core.http import Paging, Session, TransactionalRoute
from tallyhub.core.pagination import Page, page_of, paginate
from tallyhub.core.validation import NoNul, PathId

Username = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$"), NoNul()
]
Password = Annotated[str, StringConstraints(min_length=4, max_length=200), NoNul()]


class UserDetail(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    is_active: bool
    created_at: datetime


class UserCreate(BaseModel):
    username: Username = Field(description="letters, digits and _ . @ -")
    password: Password
    role: Role = Role.operator


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


router = APIRouter(prefix="/api/users", tags=["users"], route_class=TransactionalRoute)


@router.get("", summary="Users, oldest first (admin)")
async def list_users(
    session: Session,
    _: AdminUser,
    paging: Paging,
    role: Annotated[Role | None, Query()] = None,
    is_active: bool | None = None,
) -> Page[UserDetail]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    rows, total = await paginate(session, query.order_by(User.id), paging)
    return page_of([UserDetail.model_validate(u) for u in rows], total, paging)


@router.post("", status_code=201, summary="Create a user (admin)")
async def add_user(session: Session, _: AdminUser, body: UserCreate) -> UserDetail:
    user = await create_user(session, body.username, body.password, body.role)
    return UserDetail.model_validate(user)


@router.get("/{user_id}", summary="One user (admin)")
async def get_user(session: Session, _: AdminUser, user_id: PathId) -> UserDetail:
    return UserDetail.model_validate(await _user(session, user_id))


@router.patch("/{user_id}", summary="Change a user's role, password, or disable / enable (admin)")
async def update_user(
    session: Session, principal: AdminUser, user_id: PathId, body: UserUpdate
) -> UserDetail:
    user = await _user(session, user_id)
    await _keep_an_admin(session, principal, user, body)
    if body.role is not None:
        user.role = body.role
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.password is not None:
        user.password_hash = await asyncio.to_thread(hash_password, body.password)
    await session.flush()
    return UserDetail.model_validate(user)


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    return user


async def _keep_an_admin(
    session: AsyncSession, principal: Principal, user: User, body: UserUpdate
) -> None:
    """Refuse a change that takes an active admin away from itself or from everyone."""
    demoted = body.role is not None and body.role != Role.admin
    disabled = body.is_active is False
    if user.role != Role.admin or not user.is_active or not (demoted or disabled):
        return
    if user.id == principal.id:
        raise Conflict(
            "you cannot demote or disable yourself; ask another admin", code="own_account"
        )
    # Lock the active admins, so that two admins demoting each other cannot both succeed.
    admins = await session.scalars(
        select(User.id).where(User.role == Role.admin, User.is_active.is_(True)).with_for_update()
    )
    if len(list(admins)) <= 1:
        raise Conflict(
            f"{user.username} is the last active admin; make another user admin first",
            code="last_admin",
        )
