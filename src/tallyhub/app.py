"""create_app(): the FastAPI application with every domain mounted."""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from tallyhub import __version__
from tallyhub.core import auth, metrics, users
from tallyhub.core.config import CoreSettings
from tallyhub.core.errors import Unauthorized
from tallyhub.core.http import BodyLimits, HotPathsApp, error_body, install_error_handlers
from tallyhub.core.jobs import api as jobs_api
from tallyhub.core.jobs.runner import JobRunner
from tallyhub.core.logging import configure_logging
from tallyhub.core.openapi import Answers, dependency_of, document_errors
from tallyhub.core.runtime import Extension, Runtime
from tallyhub.core.webhooks import api as webhooks_api
from tallyhub.core.webhooks import jobs as webhook_jobs
from tallyhub.domains import DOMAINS, register_jobs
from tallyhub.settings import get_settings
from tallyhub.web import assets, routes


@asynccontextmanager
async def _scheduler(runtime: Runtime) -> AsyncIterator[None]:
    if runtime.settings.scheduler != "embedded":
        yield
        return
    async with JobRunner(runtime).embedded():
        yield


def _mount_domains(app: HotPathsApp, settings: CoreSettings) -> None:
    """Each domain's first routes ahead of the routing table, its routers, its hot paths."""
    for domain in DOMAINS:
        app.router.routes[0:0] = domain.first_routes(settings)
        for router in domain.routers:
            app.include_router(router)
        app.hot_paths.update(domain.hot_paths)


def _error_answers() -> Answers:
    """What OpenAPI cannot tell from a route's parameters: the errors its endpoint or one
    of its dependencies answers (see core.openapi.document_errors); each domain lists its
    own in `Domain.error_answers`."""
    return {
        dependency_of(auth.CurrentUser): (401,),
        dependency_of(auth.WriterUser): (401, 403),
        dependency_of(auth.AdminUser): (401, 403),
        auth.login: (401, 429),
        auth.open_session: (401, 403, 429),
        jobs_api.run_job: (409,),
        users.add_user: (409,),
        users.get_user: (404,),
        users.update_user: (404, 409),
        webhooks_api.get_message: (404,),
        webhooks_api.resend_message: (404, 409),
        webhooks_api.get_endpoint: (404,),
        webhooks_api.update_endpoint: (404,),
        webhooks_api.rotate_endpoint_secret: (404,),
        webhooks_api.delete_endpoint: (404,),
        **{fn: codes for domain in DOMAINS for fn, codes in domain.error_answers.items()},
    }


def _check_metrics_token(request: Request, token: str | None) -> None:
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        metrics.AUTH_FAILURES.labels(kind="metrics_token").inc()
        raise Unauthorized(
            "GET /metrics needs Authorization: Bearer <TALLYHUB_METRICS_TOKEN>",
            code="metrics_token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def create_app(settings: CoreSettings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(
        json=settings.log_json if settings.log_json is not None else settings.env == "production"
    )
    register_jobs()
    runtime = Runtime.build(settings)
    extensions: list[Extension] = [auth.lifespan, webhook_jobs.lifespan]
    extensions += [domain.lifespan for domain in DOMAINS if domain.lifespan is not None]
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
        docs_url=None,  # served by web.assets from local files: no CDN
        redoc_url=None,  # ReDoc's page asks a CDN
        body_limits=BodyLimits(settings.http.max_body_bytes, settings.http.max_body_bytes_by_path),
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(jobs_api.router)
    app.include_router(users.router)
    app.include_router(webhooks_api.router)
    _mount_domains(app, settings)
    app.include_router(routes.router)
    assets.install(app)

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="The database answers")
    async def readyz() -> Response:
        try:
            # A read-only transaction: on SQLite a plain BEGIN, which never queues behind
            # a writer for the write lock (a probe must not wait on the busiest writer).
            async with asyncio.timeout(5):
                async with runtime.db.transaction(readonly=True) as session:
                    await session.execute(text("SELECT 1"))
        except Exception as error:
            metrics.READY_FAILURES.inc()
            return JSONResponse(error_body("database_unreachable", str(error)[:200]), 503)
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (with TALLYHUB_METRICS_TOKEN set: for that bearer token)",
        response_class=PlainTextResponse,
    )
    async def prometheus(request: Request) -> Response:
        _check_metrics_token(request, settings.metrics_token)
        for state, value in runtime.db.pool_status().items():
            metrics.DB_POOL.labels(state=state).set(value)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    document_errors(app, {**_error_answers(), readyz: (503,), prometheus: (401,)})
    return app
