"""create_app(): the FastAPI application with every domain mounted."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tallyhub import __version__
from tallyhub.clicks import api as clicks_api
from tallyhub.clicks import jobs as clicks_jobs  # noqa: F401  (registers the domain's jobs)
from tallyhub.core import auth, metrics
from tallyhub.core import jobs as core_jobs
from tallyhub.core.auth import FailureLimiter
from tallyhub.core.http import HotPathsApp, error_body, install_error_handlers
from tallyhub.core.jobs import JobRunner
from tallyhub.core.logging import configure_logging
from tallyhub.core.runtime import Extension, Runtime
from tallyhub.leads import api as leads_api
from tallyhub.leads import jobs as leads_jobs  # noqa: F401  (registers the domain's jobs)
from tallyhub.settings import Settings, get_settings
from tallyhub.web import pages

DOMAIN_LIFESPANS: list[Extension] = [leads_api.lifespan, clicks_api.lifespan]


@asynccontextmanager
async def _auth_parts(runtime: Runtime) -> AsyncIterator[None]:
    limits = runtime.settings.auth
    runtime.parts["auth.login_limiter"] = FailureLimiter(
        "login", limits.failed_code_limit, limits.failed_code_window_seconds, runtime.redis
    )
    yield


@asynccontextmanager
async def _scheduler(runtime: Runtime) -> AsyncIterator[None]:
    if runtime.settings.scheduler != "embedded":
        yield
        return
    async with JobRunner(runtime).embedded():
        yield


def create_app(settings: Settings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(
        json=settings.log_json if settings.log_json is not None else settings.env == "production"
    )
    runtime = Runtime.build(settings)
    extensions: list[Extension] = [_auth_parts, *DOMAIN_LIFESPANS]
    if scheduler:
        extensions.append(_scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start(extensions)
        # What is built by now lives as long as the app: keep it out of the cyclic garbage
        # collector, whose full passes over it paused every request ~120 ms (the click
        # path's p99). Released again at shutdown, for processes that build several apps.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await runtime.stop()

    app = HotPathsApp(
        title="TallyHub",
        version=__version__,
        description="Exact, instantly readable statistics for growth-operations teams.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(core_jobs.router)
    for router in leads_api.routers:
        app.include_router(router)
    clicks_api.mount(app, settings)
    app.hot_paths = {**leads_api.hot_paths, **clicks_api.hot_paths}
    app.include_router(pages.router)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="The database answers")
    async def readyz() -> Response:
        try:
            await runtime.db.ping()
        except Exception as error:
            metrics.READY_FAILURES.inc()
            return JSONResponse(error_body("database_unreachable", str(error)[:200]), 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus(request: Request) -> Response:
        for state, value in runtime.db.pool_status().items():
            metrics.DB_POOL.labels(state=state).set(value)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app
