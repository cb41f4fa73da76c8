"""Users, roles, password hashes, JWT bearer tokens and ownership checks.

Roles: admin (everything), operator (reads and changes only what they own), viewer
(reads everything, changes nothing).

API clients send `Authorization: Bearer <token>`. The dashboard signs in for a session
cookie instead (`POST /api/auth/session`): HttpOnly, so a script injected into the page
cannot read it, and SameSite=Strict. The cookie alone serves reads (GET, HEAD, and the
WebSocket from a page of this same origin). A change made with it must also come from a
page of this origin (its `Origin` header) and carry that page's `X-CSRF-Token`: a value
derived from the cookie with the server's key, which the server writes into the pages it
renders. Another site can neither read it nor make a browser send it, so no change can be
forged with the cookie.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import jwt
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, Form, Request, Response, WebSocket
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, ColumnElement, Enum, String, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core import metrics
from tallyhub.core.columns import Base, UTCDateTime, utcnow
from tallyhub.core.errors import BadRequest, Conflict, Forbidden, Unauthorized
from tallyhub.core.http import Session, TransactionalRoute
from tallyhub.core.limiter import FailureLimiter
from tallyhub.core.validation import InvalidField, Text

if TYPE_CHECKING:
    from tallyhub.core.runtime import Runtime

log = structlog.get_logger(__name__)
_hasher = PasswordHasher()


class Role(enum.StrEnum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    """A hash no password matches, made once per process."""
    return hash_password(secrets.token_urlsafe(32))


async def check_password(user: User | None, password: str) -> bool:
    """Whether `password` is the active `user`'s. Hashing takes ~0.1 s of CPU: it runs on a
    worker thread, not the event loop (which would stall every other request meanwhile),
    and an unknown or disabled user is checked against a decoy hash, so that the answer
    takes as long as for a wrong password and does not tell which usernames exist."""
    known = user is not None and user.is_active
    password_hash = user.password_hash if known and user is not None else _decoy_hash()
    matches = await asyncio.to_thread(verify_password, password_hash, password)
    metrics.PASSWORD_CHECKS.inc()
    return known and matches


async def create_user(session: AsyncSession, username: str, password: str, role: Role) -> User:
    existing = await session.scalar(select(User).where(User.username == username))
    if existing is not None:
        raise Conflict(f"user {username!r} already exists", code="user_exists")
    if len(password) < 4:
        raise BadRequest("password must have at least 4 characters", code="weak_password")
    password_hash = await asyncio.to_thread(hash_password, password)
    user = User(username=username, password_hash=password_hash, role=role)
    session.add(user)
    await session.flush()
    return user


# ---------------------------------------------------------------- tokens


TokenUse = Literal["bearer", "session"]


def issue_token(secret: str, user: User, minutes: int, *, use: TokenUse = "bearer") -> str:
    """A signed token for the user. `use` says where it is good: a session cookie's token
    is refused as a bearer token, so a cookie value that leaks cannot change anything."""
    now = int(time.time())
    payload = {
        "sub": str(user.id),
        "role": user.role.value,
        "use": use,
        "iat": now,
        "exp": now + minutes * 60,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_token(secret: str, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as error:
        metrics.AUTH_FAILURES.labels(kind="token").inc()
        raise Unauthorized(f"invalid token: {error}", code="invalid_token") from error


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    username: str
    role: Role

    @property
    def can_write(self) -> bool:
        return self.role in (Role.admin, Role.operator)

    def owns(self, owner_id: int | None) -> bool:
        """Whether this principal may see a thing owned by `owner_id`."""
        return self.role != Role.operator or owner_id == self.id

    def owner_for(self, requested: int | None, what: str) -> int:
        """Who owns a thing this principal creates: itself, or (admins only) another user."""
        if requested is None or requested == self.id:
            return self.id
        if self.role != Role.admin:
            raise Forbidden(f"only an admin may create a {what} for another user")
        return requested

    async def existing_owner_for(
        self, session: AsyncSession, requested: int | None, what: str
    ) -> int:
        """`owner_for`, once the owner is known to exist: an unknown `owner_id` is a 422
        naming the field, not a failed foreign key."""
        owner_id = self.owner_for(requested, what)
        if owner_id != self.id and await session.get(User, owner_id) is None:
            raise InvalidField("owner_id", f"no user has id {owner_id}")
        return owner_id

    def visible(self, owner_column: Any) -> ColumnElement[bool]:
        """A WHERE clause limiting a query to what this principal may see."""
        if self.role == Role.operator:
            return owner_column == self.id
        return true()


async def principal_from_token(
    session: AsyncSession, secret: str, token: str, *, use: TokenUse = "bearer"
) -> Principal:
    claims = decode_token(secret, token)
    if claims.get("use", "bearer") != use:
        metrics.AUTH_FAILURES.labels(kind="token").inc()
        raise Unauthorized(f"this token is not for use as a {use} token", code="invalid_token")
    user = await session.get(User, int(claims["sub"]))
    if user is None or not user.is_active:
        raise Unauthorized("user no longer exists or is disabled", code="invalid_token")
    return Principal(user.id, user.username, user.role)


SESSION_COOKIE = "tallyhub_session"
_READS = frozenset({"GET", "HEAD"})


CSRF_HEADER = "X-CSRF-Token"


def csrf_token(secret: str, session_token: str) -> str:
    """The token a page signed in with `session_token` sends with each change it makes."""
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def _cookie_may_change(request: Request, secret: str, cookie: str) -> None:
    if not _same_origin(request.headers, required=True):
        raise Unauthorized(
            "a change made with the session cookie must come from a page of this server",
            code="origin",
        )
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), csrf_token(secret, cookie).encode()):
        raise Unauthorized(
            f"a change made with the session cookie needs the {CSRF_HEADER} header of a "
            "TallyHub page; scripts send Authorization: Bearer <token> instead",
            code="csrf",
        )


async def _current(request: Request, session: Session) -> Principal:
    secret = request.app.state.runtime.secret_key
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return await principal_from_token(session, secret, token)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise Unauthorized(
            "not signed in: send Authorization: Bearer <token> (POST /api/auth/token)",
            code="not_authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method not in _READS:
        _cookie_may_change(request, secret, cookie)
    return await principal_from_token(session, secret, cookie, use="session")


def _same_origin(headers: Any, *, required: bool) -> bool:
    """The request comes from a page of this server (its Origin names the Host it was sent
    to). Browsers send Origin on every POST and WebSocket; `required=False` lets through
    clients that are not browsers and send none."""
    origin = headers.get("origin")
    if origin is None:
        return not required
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc == headers.get("host")


@dataclass(frozen=True, slots=True)
class SocketCredential:
    """What a WebSocket signed in with, kept to be checked again while the socket stays
    open: its token may expire, its user be disabled or given another role."""

    token: str
    use: TokenUse

    @property
    def expires_at(self) -> float:
        """When the token expires (Unix time; checked, with its signature, by
        `principal`)."""
        claims = jwt.decode(self.token, options={"verify_signature": False})
        return float(claims.get("exp", 0))

    @classmethod
    def of(cls, websocket: WebSocket, token: str) -> SocketCredential:
        """The socket's `token` query parameter, or else the session cookie, taken only
        from a page of this same origin (a browser sends cookies on a WebSocket opened by
        any site)."""
        if token:
            return cls(token, "bearer")
        cookie = websocket.cookies.get(SESSION_COOKIE, "")
        if cookie and not _same_origin(websocket.headers, required=True):
            raise Unauthorized("the session cookie is for pages of this origin", code="origin")
        return cls(cookie, "session")

    async def principal(self, session: AsyncSession, secret: str) -> Principal:
        return await principal_from_token(session, secret, self.token, use=self.use)


async def _writer(principal: Annotated[Principal, Depends(_current)]) -> Principal:
    if not principal.can_write:
        raise Forbidden("this account can only read", code="read_only")
    return principal


async def _admin(principal: Annotated[Principal, Depends(_current)]) -> Principal:
    if principal.role != Role.admin:
        raise Forbidden("admin role required", code="admin_only")
    return principal


CurrentUser = Annotated[Principal, Depends(_current)]
WriterUser = Annotated[Principal, Depends(_writer)]
AdminUser = Annotated[Principal, Depends(_admin)]


# ---------------------------------------------------------------- API


@dataclass(frozen=True)
class AuthParts:
    """What sign-in keeps per process: its failed-attempt limiter."""

    login_limiter: FailureLimiter


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    limits = runtime.settings.auth
    runtime.provide(
        AuthParts(
            FailureLimiter(
                "login",
                limits.failed_code_limit,
                limits.failed_code_window_seconds,
                runtime.redis,
            )
        )
    )
    yield


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role


router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=TransactionalRoute)


async def _signed_in(request: Request, session: AsyncSession, username: str, password: str) -> User:
    """The user, after the failed-attempt limiter and the password check."""
    runtime: Runtime = request.app.state.runtime
    limiter = runtime.part(AuthParts).login_limiter
    address = request.client.host if request.client else "unknown"
    async with limiter.attempt(address):
        user = await session.scalar(select(User).where(User.username == username))
        matches = await check_password(user, password)  # a decoy check for no user
        if user is None or not matches:
            raise Unauthorized("wrong username or password", code="bad_credentials")
    return user


@router.post("/token", summary="Exchange username and password for a bearer token")
async def login(
    request: Request,
    session: Session,
    username: Annotated[Text, Form()],
    password: Annotated[str, Form()],
) -> Token:
    user = await _signed_in(request, session, username, password)
    runtime = request.app.state.runtime
    return Token(
        access_token=issue_token(runtime.secret_key, user, runtime.settings.auth.token_minutes)
    )


@router.post("/session", summary="Sign the dashboard in: a session cookie")
async def open_session(
    request: Request,
    response: Response,
    session: Session,
    username: Annotated[Text, Form()],
    password: Annotated[str, Form()],
) -> UserOut:
    if not _same_origin(request.headers, required=False):
        # Another site's form would sign the visitor in as someone else (login CSRF).
        raise Forbidden("sign in from this server's own page", code="origin")
    user = await _signed_in(request, session, username, password)
    runtime = request.app.state.runtime
    settings = runtime.settings
    minutes = settings.auth.token_minutes
    secure = settings.auth.cookie_secure
    if secure is None:
        secure = request.url.scheme == "https" or settings.env == "production"
    response.set_cookie(
        SESSION_COOKIE,
        issue_token(runtime.secret_key, user, minutes, use="session"),
        max_age=minutes * 60,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return UserOut.model_validate(user)


@router.delete("/session", status_code=204, summary="Sign the dashboard out")
async def close_session() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", summary="The signed-in user")
async def me(principal: CurrentUser, session: Session) -> UserOut:
    user = await session.get(User, principal.id)
    return UserOut.model_validate(user)
