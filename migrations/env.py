"""Alembic environment: one linear history valid on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tallyhub.core import auth, recalibration
from tallyhub.core.columns import Base
from tallyhub.core.jobs import runner
from tallyhub.core.webhooks import models as webhook_models  # noqa: F401  (its tables)
from tallyhub.domains import DOMAINS
from tallyhub.settings import get_settings

# Every table: core's (users, job runs, recalibration runs) and each domain's models.
TABLE_MODULES = (auth, runner, recalibration, *(domain.models for domain in DOMAINS))

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # WAL is stored in the file: a database made here is in WAL mode from the
            # start, so the app's first connections never race to switch it (two
            # connections switching at once wait on each other until the busy timeout).
            await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            await connection.commit()  # ends the implicit begin, before Alembic's own
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
