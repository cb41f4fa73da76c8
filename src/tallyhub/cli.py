"""The `tallyhub` command: serve, db, users, jobs, demo."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import structlog
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub import cli_upstreams, migrate
from tallyhub.core.auth import Role, User, create_user
from tallyhub.core.config import CoreSettings
from tallyhub.core.db import Database
from tallyhub.core.jobs.registry import REGISTRY
from tallyhub.core.jobs.runner import JobRun, JobRunner
from tallyhub.core.logging import configure_logging
from tallyhub.core.runtime import Runtime
from tallyhub.domains import DOMAINS, register_jobs
from tallyhub.settings import get_settings, serving_defaults

if TYPE_CHECKING:
    from tallyhub.core.instance import DeferredMigration

T = TypeVar("T")

app = typer.Typer(help="TallyHub: exact, instantly readable statistics.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the admin API and dashboard.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(jobs_app, name="jobs")
app.add_typer(demo_app, name="demo")

# Soft wrap: a line piped to a file or a log stays one line, however long.
console = Console(soft_wrap=True)
log = structlog.get_logger(__name__)


def _settings() -> CoreSettings:
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    register_jobs()
    settings = _settings()
    configure_logging(json=settings.env == "production", level="WARNING")

    async def main() -> T:
        runtime = Runtime.build(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.stop()

    return asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to the latest schema."""
    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    console.print(f"database at [bold]{revision}[/]: {settings.database_url}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Migrate, then serve the API, the dashboard and (by default) the embedded scheduler.

    The port is taken first (bound; it listens once migrated): if it is in use, one line
    says so and the exit status is 1, before anything else starts. A database that does
    not answer never makes it exit. If this host last saw it at the schema this code
    needs, serving starts at once (clicks redirect from the campaign snapshot and spool;
    /readyz says 503) and the migration runs once the database answers; otherwise it
    waits for the database, retrying with a log line each time. The address is printed
    once requests are being answered."""
    settings = _settings()
    configure_logging(json=_json_logs(settings))
    host = host or settings.host
    port = settings.port if port is None else port
    listener = _bind(host, port)
    port = listener.getsockname()[1]  # the one chosen, for --port 0
    deferred = _migrate(settings) if migrate_first else None
    demo = settings.env != "production" and _demo_user_exists(settings)
    os.environ.update(serving_defaults(settings, workers))  # read by the worker processes
    announce = functools.partial(_announce, settings, host, port, demo)
    config = uvicorn.Config(
        "tallyhub.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,  # ours is core.http's, one structlog line per request
        server_header=False,  # no "server: uvicorn" to advertise (or to write on every answer)
    )
    try:
        if workers > 1 and hasattr(socket, "SO_REUSEPORT"):
            from uvicorn.supervisors import Multiprocess

            listener.close()  # each worker binds its own (see _ReusePortListener)
            _announce_when_connectable(host, port, announce)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            Multiprocess(config, sockets=[_ReusePortListener(family, (host, port))]).run()
        else:
            _listen(listener, host, port)
            _AnnouncingServer(config, announce).run(sockets=[listener])
    finally:
        listener.close()
        if deferred is not None:
            deferred.stop()  # a migration still waiting for the database


def _json_logs(settings: CoreSettings) -> bool:
    return settings.log_json if settings.log_json is not None else settings.env == "production"


def _migrate(settings: CoreSettings) -> DeferredMigration | None:
    from alembic.script import ScriptDirectory

    from tallyhub.core.instance import migrate_or_defer

    url = settings.database_url
    head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
    return migrate_or_defer(lambda: migrate.upgrade(url), url, settings.var_dir, head or "")


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, before anything else starts; if it cannot be had (a
    server listens there), one line on stderr that says why and what to change, and exit
    status 1. It listens only once the database is migrated (`_listen`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    with _or_exit(sock, host, port):
        sock.bind((host, port))
    return sock


def _listen(sock: socket.socket, host: str, port: int) -> None:
    """Listen on the bound socket: refused like the bind if another process bound the same
    port meanwhile and listens already."""
    with _or_exit(sock, host, port):
        sock.listen(2048)


@contextlib.contextmanager
def _or_exit(sock: socket.socket, host: str, port: int) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        sock.close()
        typer.echo(_cannot_listen(host, port, error), err=True)
        raise typer.Exit(1) from None


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; set TALLYHUB_PORT or pass --port"
    if error.errno == errno.EACCES:
        return (
            f"port {port} on {host} needs more privileges (below 1024: root); "
            "set TALLYHUB_PORT or pass --port"
        )
    reason = error.strerror or str(error)
    return (
        f"cannot listen on {host}:{port}: {reason}; "
        "set TALLYHUB_HOST and TALLYHUB_PORT or pass --host and --port"
    )


def _demo_user_exists(settings: CoreSettings) -> bool:
    """Whether the demo user is there to sign in with; no when the database cannot be read
    now (serving does not wait for it)."""

    async def look() -> bool:
        db = Database(settings.database_url)
        try:
            async with asyncio.timeout(5), db.transaction(readonly=True) as session:
                found = await session.scalar(select(User.id).where(User.username == "demo"))
                return found is not None
        finally:
            await db.dispose()

    try:
        return asyncio.run(look())
    except (OSError, TimeoutError, SQLAlchemyError) as error:
        log.info("serve.demo_login_unknown", reason=repr(error)[:200])
        return False


def _announce(settings: CoreSettings, host: str, port: int, demo: bool) -> None:
    console.print(
        f"TallyHub on [bold]http://{host}:{port}/[/]  ·  API docs http://{host}:{port}/docs"
    )
    console.print(f"scheduler [bold]{settings.scheduler}[/]: {SCHEDULER_MODES[settings.scheduler]}")
    if demo:
        console.print("demo login: [bold]demo[/] / [bold]demo[/]")


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling `announce` once it answers requests (its lifespan, with
    the scheduler, has started and it accepts on its sockets)."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.announce()


def _announce_when_connectable(host: str, port: int, announce: Callable[[], None]) -> None:
    """For `--workers N`, whose workers start in processes of their own: `announce` once
    one of them accepts connections (a worker listens only once its start-up is done)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)

    def wait() -> None:
        while True:
            try:
                with socket.create_connection((target, port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        announce()

    threading.Thread(target=wait, name="announce", daemon=True).start()


class _ReusePortListener(socket.socket):
    """What `serve --workers N` hands uvicorn's process supervisor instead of one shared
    listening socket: pickled into each spawned worker (which is how uvicorn passes sockets
    on), it becomes a socket of that worker's own, bound with SO_REUSEPORT, and the kernel
    spreads new connections evenly over the workers' sockets. With one shared socket
    whichever worker wakes first accepts a whole burst, and keep-alive connections stay
    where they landed: measured, 62 of 64 connections on one of two workers."""

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int]) -> None:
        super().__init__(family, socket.SOCK_STREAM)
        self.address = address
        self.close()  # only a recipe here in the supervisor: nothing listens on it

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reuse_port_socket, (self.family, self.address))


def _reuse_port_socket(family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


SCHEDULER_MODES = {  # what `serve` says of its TALLYHUB_SCHEDULER
    "embedded": "jobs run in this process",
    "celery": "jobs run by `tallyhub worker`, sent by `tallyhub beat`",
    "off": "jobs run only by hand (`tallyhub jobs run NAME`)",
}


def _celery(settings: CoreSettings, loglevel: str) -> Any:
    """The Celery app, with our own log lines at `loglevel` in their own level (Celery's
    lines keep Celery's format)."""
    from tallyhub.core.jobs.celery_runner import celery_app

    register_jobs()
    configure_logging(json=_json_logs(settings), level=loglevel)
    return celery_app(settings)


LogLevel = Annotated[str, typer.Option("--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR")]


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once (processes)")] = 2,
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", "-n", help="Node name, e.g. worker1@%h (default celery@%h)"),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="Queues to take jobs from, comma-separated (default: TALLYHUB_JOB_QUEUE and "
            "every job's own queue, e.g. douplus.orders)",
        ),
    ] = None,
    loglevel: LogLevel = "INFO",
) -> None:
    """Run scheduled jobs from the Celery queue (TALLYHUB_SCHEDULER=celery)."""
    settings = _settings()
    celery = _celery(settings, loglevel.upper())
    every_queue = {settings.job_queue} | {s.queue for s in REGISTRY.values() if s.queue}
    argv = [
        "worker",
        f"--loglevel={loglevel.upper()}",
        f"--concurrency={concurrency}",
        f"--queues={queues or ','.join(sorted(every_queue))}",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    celery.worker_main(argv)


@app.command()
def beat(loglevel: LogLevel = "INFO") -> None:
    """Put every registered job on the Celery queue at its schedule (one beat for all)."""
    settings = _settings()
    schedule_file = settings.resolved_beat_schedule_file()
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    celery = _celery(settings, loglevel.upper())
    celery.start(["beat", f"--loglevel={loglevel.upper()}", f"--schedule={schedule_file}"])


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    role: Annotated[Role, typer.Option()] = Role.operator,
) -> None:
    """Create a user."""

    async def work(runtime: Runtime) -> int:
        return await runtime.db.run(lambda s: _create(s, username, password, role))

    user_id = _with_runtime(work)
    console.print(f"user [bold]{username}[/] ({role.value}) created with id {user_id}")


async def _create(session: AsyncSession, username: str, password: str, role: Role) -> int:
    user = await create_user(session, username, password, role)
    return user.id


@jobs_app.command("list")
def jobs_list() -> None:
    """Registered jobs and their schedules."""
    register_jobs()

    table = Table("job", "schedule", "description")
    for spec in sorted(REGISTRY.values(), key=lambda s: s.name):
        table.add_row(spec.name, spec.schedule, spec.description)
    console.print(table)


@jobs_app.command("run")
def jobs_run(name: str) -> None:
    """Run a job now and print its recorded run."""

    async def work(runtime: Runtime) -> JobRun | None:
        run_id = await JobRunner(runtime).run(name)
        async with runtime.db.transaction(readonly=True) as session:
            return await session.get(JobRun, run_id)

    run = _with_runtime(work)
    if run is None:
        raise typer.Exit(1)
    console.print(
        f"{run.job_name}: [bold]{run.status}[/] in {run.duration_ms} ms {run.counts or ''}"
    )
    if run.error:
        console.print(run.error)
        raise typer.Exit(1)


@demo_app.command("seed")
def demo_seed() -> None:
    """Load demo data (idempotent; refused in production)."""
    from tallyhub import demo

    settings = _settings()
    if settings.env == "production":
        console.print("[red]demo data is refused when TALLYHUB_ENV=production[/]")
        raise typer.Exit(1)
    counts = _with_runtime(demo.seed)
    console.print(f"demo data ready: {counts}; login [bold]demo[/] / [bold]demo[/]")


cli_upstreams.register(app, _with_runtime, console)
for _domain in DOMAINS:
    if _domain.commands is not None:
        app.add_typer(_domain.commands(_with_runtime, console), name=_domain.name)
