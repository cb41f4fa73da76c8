"""Which database this is, and what this host last saw of it.

`database_identity` holds one row, made with the schema by its migration: a random id
that tells one database from another whatever its URL (a restored copy keeps it, a new
database gets its own). Local state that belongs to one database (a domain's spool, its
snapshot of settings) records that id and is used against that database only.

`var/database.json` records what `serve` last migrated: the database's URL (without its
password) and the schema revision. A `serve` that starts while its database does not
answer reads it to decide whether it may serve before migrating (`migrate_or_defer`).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from asyncpg.exceptions import CannotConnectNowError, TooManyConnectionsError
from sqlalchemy import Integer, String, exc, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tallyhub.core.bulk import RowSet, write_rows
from tallyhub.core.columns import Base, UTCDateTime, utcnow
from tallyhub.core.db import Database, is_disconnect

log = structlog.get_logger(__name__)

# ---------------------------------------------------------------- the database's id

_ROW = 1  # the table's one row


class DatabaseIdentity(Base):
    """One row: this database's id, made by the migration that made the table."""

    __tablename__ = "database_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    database_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


async def database_id(db: Database) -> str:
    """This database's id. Should its row be gone (tables emptied by hand), a new id is
    made: state kept for the old one is then not used here, which is the safe side."""
    async with db.transaction(readonly=True) as session:
        found = await session.scalar(_READ_ID)
    if found is not None:
        return str(found)

    async def make(session: AsyncSession) -> str:
        row = {"id": _ROW, "database_id": str(uuid.uuid4()), "created_at": utcnow()}
        await write_rows(await session.connection(), RowSet(DatabaseIdentity, [row], keys=("id",)))
        return str(await session.scalar(_READ_ID))  # ours, or one made meanwhile

    return await db.run(make)


_READ_ID = select(DatabaseIdentity.database_id).where(DatabaseIdentity.id == _ROW)


def masked_url(url: str) -> str:
    """The database URL without its password: what local files may record."""
    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- local state files


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader (or a crash) sees the old file or the
    new one, never a part: written to a file of this process's own, fsynced, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is none or it cannot be read (logged)."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        data = None  # nothing kept yet: not an error
    except (OSError, ValueError) as error:
        log.error("instance.unreadable_state", path=str(path), error=repr(error))
        data = None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------- the schema last seen


def _seen_path(var_dir: Path) -> Path:
    return var_dir / "database.json"


def remember_schema(var_dir: Path, url: str, revision: str) -> None:
    """Record that the database at `url` has the schema `revision` (after a migration)."""
    record = {"database": masked_url(url), "schema": revision, "at": utcnow().isoformat()}
    write_atomically(_seen_path(var_dir), json.dumps(record).encode())


def schema_seen(var_dir: Path, url: str) -> str | None:
    """The schema revision this host last saw the database at `url` at, if it did."""
    record = read_json(_seen_path(var_dir))
    if record is None or record.get("database") != masked_url(url):
        return None
    schema = record.get("schema")
    return schema if isinstance(schema, str) else None


# ---------------------------------------------------------------- waiting for the database

_MYSQL_CANNOT_CONNECT = {1040, 2002, 2003, 2005, 2006, 2013}  # too many, refused, gone


def is_unreachable(error: BaseException) -> bool:
    """True when `error` says the database could not be reached (not that it refused
    what was asked): the server is down, starting, or full."""
    if isinstance(error, CannotConnectNowError | TooManyConnectionsError):
        return True
    if isinstance(error, exc.DBAPIError):
        args = getattr(error.orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MYSQL_CANNOT_CONNECT:
            return True
        if isinstance(error.orig, CannotConnectNowError | TooManyConnectionsError):
            return True
    return is_disconnect(error)


@dataclass
class Backoff:
    """Seconds between attempts: doubling from `first` up to `most`."""

    first: float = 1.0
    most: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.most)


def migrate_when_reachable(
    upgrade: Callable[[], None],
    url: str,
    *,
    backoff: Backoff | None = None,
    stopping: threading.Event | None = None,
) -> bool:
    """Run `upgrade` (blocking) until it gets past connecting: while the database cannot
    be reached, say so in the log and try again with backoff. Other errors propagate.
    False if `stopping` was set first (nothing migrated)."""
    stopping = stopping or threading.Event()
    for attempt, delay in enumerate((backoff or Backoff()).delays(), start=1):
        try:
            upgrade()
        except Exception as error:
            if not is_unreachable(error):
                raise
            log.warning(
                "serve.database_unreachable",
                database=masked_url(url),
                attempt=attempt,
                retry_in_seconds=delay,
                error=repr(error)[:300],
            )
            if stopping.wait(delay):
                return False
        else:
            if attempt > 1:
                log.warning("serve.database_migrated", database=masked_url(url), attempt=attempt)
            return True
    raise AssertionError("the delays never end")  # pragma: no cover


class DeferredMigration:
    """The migration of a server that started before its database answered: a thread
    that retries until it has migrated, or until `stop()` (at shutdown)."""

    def __init__(self, migrated: Callable[[], None], url: str, backoff: Backoff | None) -> None:
        self.url = url
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(migrated, backoff), name="tallyhub-migrate", daemon=True
        )
        self.thread.start()

    def _run(self, migrated: Callable[[], None], backoff: Backoff | None) -> None:
        try:
            migrate_when_reachable(migrated, self.url, backoff=backoff, stopping=self.stopping)
        except Exception:
            log.error("serve.migration_failed", database=masked_url(self.url), exc_info=True)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop retrying; wait for an attempt in flight (a thread left running in the
        middle of a migration can crash the interpreter as it exits)."""
        self.stopping.set()
        self.thread.join(timeout)


def migrate_or_defer(
    upgrade: Callable[[], None],
    url: str,
    var_dir: Path,
    head: str,
    *,
    backoff: Backoff | None = None,
) -> DeferredMigration | None:
    """Migrate the database before serving, and remember its schema. If the database
    cannot be reached:

    - and this host last saw it at `head` (the schema this code needs), serving may start
      now, from local state (spooled clicks, snapshots): the migration goes on in the
      background (returned: stop it at shutdown) until the database answers;
    - else the schema may be behind this code: wait here, retrying, until it is migrated.
    """

    def migrated() -> None:
        upgrade()
        remember_schema(var_dir, url, head)

    try:
        migrated()
        return None
    except Exception as error:
        if not is_unreachable(error):
            raise
        current = schema_seen(var_dir, url) == head
        log.warning(
            "serve.database_unreachable",
            database=masked_url(url),
            serving_first=current,
            reason=(
                "the schema was current when last seen: serving from local state, migrating "
                "once the database answers"
                if current
                else "the schema may be behind this code: waiting for the database"
            ),
            error=repr(error)[:300],
        )
        if not current:
            migrate_when_reachable(migrated, url, backoff=backoff)
            return None
    return DeferredMigration(migrated, url, backoff)
