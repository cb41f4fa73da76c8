"""Configuration: pydantic-settings, prefix TALLYHUB_, nested models joined with __."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

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


class LeadsSettings(BaseModel):
    batching: BatchSettings = Field(default_factory=BatchSettings)
    recalibration_chunk: int = 500


class ClickSpoolSettings(BaseModel):
    """The durable local spool for clicks the database cannot take right now."""

    flush_ms: float = 5.0  # appends are fsynced together at most this often
    rotate_seconds: float = 5.0  # a segment older than this is closed for replay
    breaker_seconds: float = 5.0  # after a database failure, spool directly this long
    replay_chunk: int = 500


class ClickBatchSettings(BatchSettings):
    # A click batch on PostgreSQL is one round trip (clicks/service/one_statement.py), so
    # gathering for 1 ms rather than 2 pays. Measured side by side (64 connections, 10 s
    # runs, 1 ms against 2 ms): 2 workers +3 to +17 % clicks/s in 4 pairs, 1 worker +5
    # and +32 % in 2 pairs.
    max_wait_ms: float = 1.0
    # Two batches in flight: while one commits, the process answers the other's clicks
    # and gathers the next, so its event loop no longer idles on each commit. Batches of
    # up to 32 keep the two alike in size. One process, 64 connections, measured side by
    # side: 7,947 clicks/s against 6,470 with one writer of 500 (+23 %, bench/RESULTS.md).
    # Several processes already overlap their commits: `serve --workers N` gives each one
    # writer (`serving_defaults`); two each measured −6 % with two processes.
    concurrency: int = 2

    @model_validator(mode="before")
    @classmethod
    def _batch_per_writer(cls, data: Any) -> Any:
        """Unless set, a batch holds up to 32 clicks with several writers, 500 with one."""
        if isinstance(data, dict) and data.get("max_batch") is None:
            several = int(data.get("concurrency", cls.model_fields["concurrency"].default)) > 1
            data = {**data, "max_batch": 32 if several else 500}
        return data


class ClicksSettings(BaseModel):
    dedup_window_ms: int = 1000
    batching: ClickBatchSettings = Field(default_factory=ClickBatchSettings)
    commit_timeout_ms: float = 2000.0  # longer than this, the click is spooled instead
    campaign_cache_seconds: float = 10.0
    spool: ClickSpoolSettings = Field(default_factory=ClickSpoolSettings)
    public_base_url: str | None = None  # base of signed links; default: the request's
    bare_route: bool = False  # mount /__bare302 (records nothing), for the benchmark
    recalibration_chunk: int = 20  # campaigns per recalibration transaction


class Settings(BaseSettings):
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

    pool: DatabasePool = Field(default_factory=DatabasePool)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    leads: LeadsSettings = Field(default_factory=LeadsSettings)
    clicks: ClicksSettings = Field(default_factory=ClicksSettings)

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production" and not self.secret_key:
            raise ValueError("TALLYHUB_SECRET_KEY is required when TALLYHUB_ENV=production")
        return self

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


@lru_cache
def get_settings() -> Settings:
    return Settings()


def serving_defaults(settings: Settings, workers: int) -> dict[str, str]:
    """Settings whose best default depends on how many processes `serve` runs, for its
    processes' environment, where the operator left them unset: with several, each keeps
    one click batch in flight (see ClickBatchSettings)."""
    if workers > 1 and "concurrency" not in settings.clicks.batching.model_fields_set:
        return {"TALLYHUB_CLICKS__BATCHING__CONCURRENCY": "1"}
    return {}
