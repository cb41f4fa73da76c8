"""The contract every domain package fulfils: one `Domain` object in its `__init__.py`.

`tallyhub.domains` lists them; the app mounts their routers and hot paths and runs their
lifespans, the settings nest their sections under their names, the migrations see their
tables, and the job registry takes their jobs. Adding a domain is its package plus one
line in that list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from tallyhub.core.auth import Principal
from tallyhub.core.config import CoreSettings
from tallyhub.core.crypto import EncryptedColumns
from tallyhub.core.jobs.registry import JobSpec
from tallyhub.core.openapi import Answers
from tallyhub.core.runtime import Extension, Runtime
from tallyhub.core.webhooks.outbox import OutcomeHandler

HotPaths = Mapping[tuple[str, str], ASGIApp]
SeedDemo = Callable[[Runtime, Principal], Awaitable[dict[str, int]]]
# `tallyhub sync <domain>`: (runtime, mode, account id or all, progress) → what it did;
# `progress(done, total)` is called once before the first part and after each one.
SyncProgress = Callable[[int, int], None]
SyncCommand = Callable[[Runtime, str, int | None, SyncProgress], Awaitable[dict[str, Any]]]
WithRuntime = Callable[[Callable[[Runtime], Awaitable[Any]]], Any]


def _no_routes(settings: CoreSettings) -> Sequence[BaseRoute]:
    return ()


def _no_defaults(settings: CoreSettings, workers: int) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Domain:
    # Its settings section (`TALLYHUB_<NAME>__…`), its jobs' prefix, its API's path.
    name: str
    settings_model: type[BaseModel]
    # Its tables' module: imported, they are on `Base.metadata` for the migrations.
    models: ModuleType
    routers: Sequence[APIRouter] = ()
    # (method, path) → ASGI app, answered ahead of FastAPI's stack (core.http.HotPathsApp);
    # keep a route of the same path in `routers` or `first_routes` for /docs and 405s.
    hot_paths: HotPaths = field(default_factory=dict)
    # Errors OpenAPI cannot tell from a route's parameters: endpoint or dependency →
    # the statuses it answers (core.openapi.document_errors).
    error_answers: Answers = field(default_factory=dict)
    # Plain Starlette routes put first in the routing table, from the settings.
    first_routes: Callable[[CoreSettings], Sequence[BaseRoute]] = _no_routes
    # What the domain builds at start-up and drains at shutdown (its `wiring.py`).
    lifespan: Extension | None = None
    jobs: Sequence[JobSpec] = ()
    # Environment for `serve --workers N`'s processes where a default depends on N.
    serving_defaults: Callable[[CoreSettings, int], dict[str, str]] = _no_defaults
    # Its demo data for `make run` (idempotent), made as the demo admin; what it made.
    seed_demo: SeedDemo | None = None
    # Columns that hold third-party secrets encrypted by core/crypto.py: `tallyhub keys
    # rotate` re-encrypts them with the first key.
    encrypted_columns: Sequence[EncryptedColumns] = ()
    # A sync domain's local fake of its upstream (`simulator.py`), for `tallyhub simulate
    # <name>`: builds the ASGI app from a seed (and the options its command passes).
    simulator: Callable[..., ASGIApp] | None = None
    # What `tallyhub simulate` also calls it (taskstats: "videos"); its name always works.
    simulator_name: str = ""
    # A sync domain's sync by hand, for `tallyhub sync <name> --mode M [--account N]`.
    sync: SyncCommand | None = None
    sync_modes: tuple[str, ...] = ()
    # Webhook sources it enqueues messages for → the handler that hears each delivery's
    # outcome (core/webhooks/outbox.py), in the transaction that records the attempt.
    webhook_outcomes: Mapping[str, OutcomeHandler] = field(default_factory=dict)
    # Its own command group, `tallyhub <name> …`: built from the CLI's runtime runner
    # and console (a typer app).
    commands: Callable[[WithRuntime, Any], Any] | None = None
