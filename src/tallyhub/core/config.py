"""The settings core reads: pydantic-settings, prefix TALLYHUB_, nested models joined with
__. Each domain brings its own section (`Domain.settings_model`); `tallyhub.settings`
assembles the whole `Settings` from these and the domains' sections."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabasePool(BaseModel):
    size: int = 10
    max_overflow: int = 20
    timeout_seconds: float = 10.0
    echo: bool = False


class BatchSettings(BaseModel):
    """Group-commit writer tuning (core/batching.py)."""

    enabled: bool = True
    max_batch: int = 500
    max_wait_ms: float = 2.0
    queue_size: int = 20_000
    retries: int = 5
    # Batches applied at once. Events of one owner meet on its counter row, so a second
    # batch mostly waits for the first; one writer task makes fewer, larger batches.
    concurrency: int = 1


class AuthSettings(BaseModel):
    token_minutes: int = 12 * 60
    # The dashboard's session cookie is Secure (sent over https only) when unset if the
    # request came over https or TALLYHUB_ENV=production; false serves it over plain http.
    cookie_secure: bool | None = None
    failed_code_limit: int = 10
    failed_code_window_seconds: int = 60
    # An open WebSocket checks its sign-in again this often (expired token, disabled user).
    socket_recheck_seconds: float = Field(default=60.0, gt=0)


class HttpSettings(BaseModel):
    """Limits of the HTTP edge (core/http.py)."""

    # A request body past this is refused with 413: at once when its Content-Length says
    # so, else as soon as the bytes read pass it.
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    # Other limits for particular paths: the desktop client's batch of up to 1,000 leads.
    max_body_bytes_by_path: dict[str, int] = Field(
        default_factory=lambda: {"/api/client/incoming/batch": 8 * 1024 * 1024}
    )
    # One info line per request (method, path, status, duration_ms); the query string is
    # never logged (a WebSocket's sign-in token travels in it). The hot paths (/__track,
    # the desktop client's incoming lead) are left out unless access_log_hot_paths.
    access_log: bool = True
    access_log_hot_paths: bool = False


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TALLYHUB_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/tallyhub.db"
    redis_url: str | None = None
    secret_key: str | None = None
    scheduler: Literal["embedded", "celery", "off"] = "embedded"
    timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = 8000
    var_dir: Path = Path("var")
    log_json: bool | None = None
    job_grace_seconds: int = 3600
    # A running job renews its slot's lease every third of this; a slot whose lease has
    # lapsed was left by a stopped process, and may be run again.
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_history_days: int = 14  # finished job runs older than this are pruned nightly
    # Celery mode: the queue beat and the API send jobs to (`tallyhub worker -Q` default),
    # and beat's schedule file (default <var_dir>/celerybeat-schedule).
    job_queue: str = Field(default="celery", min_length=1)
    beat_schedule_file: Path | None = None
    # When set, GET /metrics asks for `Authorization: Bearer <this token>`.
    metrics_token: str | None = None
    # Fernet keys for stored third-party secrets (core/crypto.py), comma-separated: the
    # first encrypts, all decrypt. In development one is generated into var/ when unset.
    encryption_keys: str | None = None

    pool: DatabasePool = Field(default_factory=DatabasePool)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> CoreSettings:
        if self.env == "production" and not self.secret_key:
            raise ValueError("TALLYHUB_SECRET_KEY is required when TALLYHUB_ENV=production")
        if self.env == "production" and not self.encryption_keys:
            raise ValueError("TALLYHUB_ENCRYPTION_KEYS is required when TALLYHUB_ENV=production")
        return self

    def resolved_beat_schedule_file(self) -> Path:
        return self.beat_schedule_file or self.var_dir / "celerybeat-schedule"

    def resolved_secret_key(self) -> str:
        """The signing key; in development one is generated once into var/ and reused."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


M = TypeVar("M", bound=BaseModel)


def section(settings: CoreSettings, name: str, model: type[M]) -> M:
    """A domain's settings section (`settings.<name>`), typed as the domain's model."""
    value = getattr(settings, name, None)
    if not isinstance(value, model):
        raise TypeError(f"settings have no {name!r} section of type {model.__name__}")
    return value
