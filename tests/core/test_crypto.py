"""Encryption of stored third-party secrets: the box, key rotation, the development key in
var/, production's refusal to start without keys, and `tallyhub keys rotate` end to end on a
fresh SQLite database (its tokens unreadable in the table, readable with the new key only)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.auth import Principal, Role, create_user
from tallyhub.core.config import CoreSettings
from tallyhub.core.crypto import (
    KEY_FILE,
    SecretBox,
    SecretUnreadable,
    configured_keys,
    generate_key,
    secret_box,
)
from tallyhub.core.runtime import Runtime
from tallyhub.douplus.client import Tokens
from tallyhub.douplus.service import save_account
from tallyhub.settings import Settings

K1, K2 = generate_key(), generate_key()
ACCESS = "act.plain-access-token-0123456789"
REFRESH = "rft.plain-refresh-token-9876543210"
SEC_UID = "MS4wLjABAAAAcrypto-test-account"
SECRET_KEY = "test-secret-key-not-for-production-0123456789"
TALLYHUB = Path(sys.executable).parent / "tallyhub"


def _settings(tmp_path: Path, **values: object) -> CoreSettings:
    return CoreSettings(_env_file=None, var_dir=tmp_path / "var", **values)


# ---------------------------------------------------------------- the box


def test_a_secret_round_trips_and_is_not_readable_in_what_is_stored() -> None:
    box = SecretBox([K1])
    stored = box.encrypt(ACCESS)
    assert ACCESS not in stored
    assert box.decrypt(stored) == ACCESS
    assert box.encrypt(ACCESS) != stored  # a fresh IV each time: equal tokens look unrelated
    assert box.decrypt(box.encrypt("")) == ""
    assert box.decrypt(box.encrypt("令牌 ✓")) == "令牌 ✓"


def test_with_two_keys_old_secrets_still_read_and_rotate_moves_them_to_the_new_key() -> None:
    old = SecretBox([K1]).encrypt(ACCESS)
    both = SecretBox([K2, K1])
    assert both.decrypt(old) == ACCESS
    rotated = both.rotate(old)
    assert rotated != old
    assert SecretBox([K2]).decrypt(rotated) == ACCESS
    with pytest.raises(SecretUnreadable):
        SecretBox([K1]).decrypt(rotated)
    assert SecretBox([K2]).decrypt(both.encrypt(REFRESH)) == REFRESH  # the first key encrypts


def test_a_secret_whose_key_is_gone_is_unreadable() -> None:
    stored = SecretBox([K1]).encrypt(ACCESS)
    box = SecretBox([K2])
    with pytest.raises(SecretUnreadable, match="no configured encryption key"):
        box.decrypt(stored)
    with pytest.raises(SecretUnreadable):
        box.rotate(stored)
    with pytest.raises(SecretUnreadable):
        box.decrypt("not a fernet token")


def test_a_box_needs_valid_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SecretBox([])
    with pytest.raises(ValueError, match="not a Fernet key"):
        SecretBox([K1, "too-short"])


# ---------------------------------------------------------------- configured keys


def test_configured_keys_come_in_order_from_the_setting(tmp_path: Path) -> None:
    settings = _settings(tmp_path, encryption_keys=f" {K2} ,{K1},, ")
    assert configured_keys(settings) == [K2, K1]
    assert not (tmp_path / "var" / KEY_FILE).exists()  # nothing generated when keys are set


def test_a_development_key_is_generated_into_var_once_and_reused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, env="development")
    first = configured_keys(settings)
    path = tmp_path / "var" / KEY_FILE
    assert path.read_text() == first[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = secret_box(settings).encrypt(ACCESS)

    again = _settings(tmp_path, env="development")  # the next process start
    assert configured_keys(again) == first
    assert secret_box(again).decrypt(stored) == ACCESS
    assert sorted(p.name for p in path.parent.iterdir()) == [KEY_FILE]


def test_production_without_encryption_keys_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TALLYHUB_ENV", "production")
    monkeypatch.setenv("TALLYHUB_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("TALLYHUB_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TALLYHUB_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ValidationError, match="TALLYHUB_ENCRYPTION_KEYS is required"):
        Settings(_env_file=None)
    monkeypatch.setenv("TALLYHUB_ENCRYPTION_KEYS", K1)
    assert configured_keys(Settings(_env_file=None)) == [K1]
    assert not (tmp_path / "var" / KEY_FILE).exists()


# ---------------------------------------------------------------- keys rotate, end to end


def _environment(tmp_path: Path, keys: str | None, env: str = "test") -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("TALLYHUB_")}
    values.update(
        {
            "TALLYHUB_ENV": env,
            "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tallyhub.db'}",
            "TALLYHUB_SECRET_KEY": SECRET_KEY,
            "TALLYHUB_SCHEDULER": "off",
            "TALLYHUB_VAR_DIR": str(tmp_path / "var"),
        }
    )
    if keys is not None:
        values["TALLYHUB_ENCRYPTION_KEYS"] = keys
    return values


def _tallyhub(
    environment: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TALLYHUB), *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _store_account(tmp_path: Path, keys: str) -> None:
    """A user and a connected Douyin account, its tokens encrypted with `keys`."""
    settings = _settings(
        tmp_path,
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tallyhub.db'}",
        secret_key=SECRET_KEY,
        encryption_keys=keys,
    )
    runtime = Runtime.build(settings)
    tokens = Tokens(
        access_token=ACCESS, expires_in=86400, refresh_token=REFRESH, refresh_token_expires_in=None
    )

    async def store(session: AsyncSession) -> None:
        user = await create_user(session, "ops", "ops-password", Role.operator)
        principal = Principal(id=user.id, username=user.username, role=Role.operator)
        await save_account(session, principal, runtime.secret_box(), SEC_UID, "测试", tokens)

    try:
        await runtime.db.run(store)
    finally:
        await runtime.stop()


def _raw_tokens(tmp_path: Path) -> tuple[str, str]:
    with sqlite3.connect(tmp_path / "tallyhub.db") as connection:
        rows = connection.execute(
            "SELECT access_token, refresh_token FROM douyin_account WHERE aweme_sec_uid = ?",
            (SEC_UID,),
        ).fetchall()
    assert len(rows) == 1
    access, refresh = rows[0]
    return str(access), str(refresh)


def _readable_with(key: str, stored: tuple[str, str]) -> bool:
    box = SecretBox([key])
    try:
        return tuple(box.decrypt(value) for value in stored) == (ACCESS, REFRESH)
    except SecretUnreadable:
        return False


async def test_keys_rotate_re_encrypts_stored_tokens_with_the_first_key(tmp_path: Path) -> None:
    upgraded = _tallyhub(_environment(tmp_path, K1), tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    await _store_account(tmp_path, K1)
    before = _raw_tokens(tmp_path)
    assert ACCESS not in before[0] and REFRESH not in before[1]
    assert _readable_with(K1, before) and not _readable_with(K2, before)

    rotated = _tallyhub(_environment(tmp_path, f"{K2},{K1}"), tmp_path, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 2 stored secrets" in rotated.stdout
    after = _raw_tokens(tmp_path)
    assert ACCESS not in after[0] and REFRESH not in after[1]
    assert _readable_with(K2, after)
    assert not _readable_with(K1, after)  # the old key may now be dropped

    # With the old key already dropped, a rotate that meets a secret it cannot read fails
    # and changes nothing.
    wrong = _tallyhub(_environment(tmp_path, K1), tmp_path, "keys", "rotate")
    assert wrong.returncode != 0
    assert "nothing re-encrypted" in wrong.stdout and "douyin_account row" in wrong.stdout
    assert _raw_tokens(tmp_path) == after


def test_the_command_line_refuses_to_start_in_production_without_keys(tmp_path: Path) -> None:
    done = _tallyhub(_environment(tmp_path, None, env="production"), tmp_path, "keys", "rotate")
    assert done.returncode != 0
    assert "TALLYHUB_ENCRYPTION_KEYS is required" in done.stdout + done.stderr
    assert not (tmp_path / "tallyhub.db").exists()
    assert not (tmp_path / "var" / KEY_FILE).exists()
