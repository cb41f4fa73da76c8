"""Encryption of stored third-party secrets (an upstream's access and refresh tokens).

Fernet under a MultiFernet: `TALLYHUB_ENCRYPTION_KEYS` lists keys, the first encrypts and
all decrypt, so a key is rotated by putting a new one first, running `tallyhub keys rotate`
(which re-encrypts every stored secret with it) and then dropping the old one. A domain
names its encrypted columns in `Domain.encrypted_columns`; core never knows which they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.columns import Base
from tallyhub.core.config import CoreSettings

log = structlog.get_logger(__name__)

KEY_FILE = "encryption_keys"


class SecretUnreadable(Exception):
    """A stored secret none of the configured keys decrypts (a key was dropped too early)."""


@dataclass(frozen=True)
class EncryptedColumns:
    """Columns of `model` (string, nullable or not) that hold `SecretBox.encrypt` output."""

    model: type[Base]
    columns: tuple[str, ...]


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as error:
            raise ValueError(f"an encryption key is not a Fernet key: {error}") from error

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, stored: str) -> str:
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken as error:
            raise SecretUnreadable("no configured encryption key decrypts this secret") from error

    def rotate(self, stored: str) -> str:
        """The same secret encrypted with the first key."""
        try:
            return self._fernet.rotate(stored.encode()).decode()
        except InvalidToken as error:
            raise SecretUnreadable("no configured encryption key decrypts this secret") from error


def generate_key() -> str:
    return Fernet.generate_key().decode()


def configured_keys(settings: CoreSettings) -> list[str]:
    """The keys from the settings; in development and tests, a key generated once into
    var/ when none is set (production refuses to start without TALLYHUB_ENCRYPTION_KEYS)."""
    if settings.encryption_keys:
        return [key.strip() for key in settings.encryption_keys.split(",") if key.strip()]
    return [_development_key(settings.var_dir / KEY_FILE)]


def _development_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    path.write_text(key)
    path.chmod(0o600)
    log.info("crypto.key_generated", path=str(path))
    return key


def secret_box(settings: CoreSettings) -> SecretBox:
    return SecretBox(configured_keys(settings))


async def rotate_stored(
    session: AsyncSession, box: SecretBox, targets: Sequence[EncryptedColumns]
) -> int:
    """Re-encrypt every stored secret of `targets` with the first key; how many values."""
    rotated = 0
    for target in targets:
        table = cast(Table, target.model.__table__)
        key = next(iter(table.primary_key.columns))
        columns = [table.c[name] for name in target.columns]
        rows = (await session.execute(select(key, *columns))).all()
        for row in rows:
            try:
                values = {
                    column.name: box.rotate(value)
                    for column, value in zip(columns, row[1:], strict=True)
                    if value is not None
                }
            except SecretUnreadable as error:
                raise SecretUnreadable(
                    f"{table.name} row {row[0]}: no configured key decrypts its secret; "
                    "keep the key it was encrypted with in TALLYHUB_ENCRYPTION_KEYS"
                ) from error
            if values:
                await session.execute(update(table).where(key == row[0]).values(**values))
                rotated += len(values)
    return rotated
