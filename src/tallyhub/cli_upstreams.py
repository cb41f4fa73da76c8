"""The command line's upstream commands: `keys` (the encryption of stored third-party
secrets), `simulate <name>` (a sync domain's local fake of its upstream) and `sync <name>`
(a sync domain's sync, here and now, with a progress bar). `cli.py` mounts them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.core.crypto import (
    EncryptedColumns,
    SecretUnreadable,
    generate_key,
    rotate_stored,
)
from tallyhub.core.domain import Domain
from tallyhub.core.jobs.registry import JobFailed
from tallyhub.core.runtime import Runtime
from tallyhub.core.webhooks import WebhookEndpoint
from tallyhub.domains import DOMAINS

T = TypeVar("T")
WithRuntime = Callable[[Callable[[Runtime], Awaitable[Any]]], Any]

# Core's own stored secrets: the webhook endpoints' signing secrets.
CORE_SECRETS = EncryptedColumns(WebhookEndpoint, ("secret",))
keys_app = typer.Typer(help="Encryption keys of stored third-party secrets.", no_args_is_help=True)


def _domain(name: str, what: str) -> Domain:
    for domain in DOMAINS:
        named = name in (domain.name, domain.simulator_name if what == "simulator" else "")
        if named and getattr(domain, what) is not None:
            return domain
    known = ", ".join(d.name for d in DOMAINS if getattr(d, what) is not None) or "none"
    raise typer.BadParameter(f"no domain {name!r} has a {what} (known: {known})")


def register(app: typer.Typer, with_runtime: WithRuntime, console: Console) -> None:
    app.add_typer(keys_app, name="keys")
    _keys(with_runtime, console)
    _simulate(app, console)
    _sync(app, with_runtime, console)


def _keys(with_runtime: WithRuntime, console: Console) -> None:
    @keys_app.command("generate")
    def keys_generate() -> None:
        """Print a new key: put it first in TALLYHUB_ENCRYPTION_KEYS, then `keys rotate`."""
        console.print(generate_key())

    @keys_app.command("rotate")
    def keys_rotate() -> None:
        """Re-encrypt every stored secret with the first key of TALLYHUB_ENCRYPTION_KEYS
        (the others still decrypt); afterwards the old keys may be dropped."""

        async def work(runtime: Runtime) -> int:
            targets = [CORE_SECRETS, *(t for d in DOMAINS for t in d.encrypted_columns)]

            async def rotate(session: AsyncSession) -> int:
                return await rotate_stored(session, runtime.secret_box(), targets)

            return await runtime.db.run(rotate)

        try:
            rotated = with_runtime(work)
        except SecretUnreadable as error:
            console.print(f"[red]nothing re-encrypted: {error}[/]")
            raise typer.Exit(1) from error
        console.print(f"re-encrypted {rotated} stored secrets with the first key")


def _simulate(app: typer.Typer, console: Console) -> None:
    @app.command()
    def simulate(
        name: Annotated[
            str, typer.Argument(help="The domain whose upstream to fake, e.g. douplus")
        ],
        port: Annotated[int, typer.Option(help="Port to listen on")] = 9100,
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        seed: Annotated[int, typer.Option(help="Seed of its data")] = 1,
        records_per_day: Annotated[
            int | None, typer.Option(help="callcenter: call records a day (default 20,000)")
        ] = None,
    ) -> None:
        """Serve a sync domain's simulator (its control endpoints are under /__sim/)."""
        from tallyhub.core.simulation import serve

        factory = _domain(name, "simulator").simulator
        assert factory is not None
        options = {} if records_per_day is None else {"records_per_day": records_per_day}
        try:
            app = factory(seed, **options)
        except TypeError as error:
            raise typer.BadParameter(
                f"the {name} simulator takes no such option: {error}"
            ) from error
        console.print(f"{name} simulator on http://{host}:{port} (controls: /__sim/)")
        serve(app, host, port)


def _sync(app: typer.Typer, with_runtime: WithRuntime, console: Console) -> None:
    @app.command()
    def sync(
        name: Annotated[str, typer.Argument(help="The sync domain, e.g. douplus")],
        mode: Annotated[str, typer.Option(help="full or incremental")] = "incremental",
        account: Annotated[int | None, typer.Option(help="One account's id (default all)")] = None,
    ) -> None:
        """Sync a domain from its upstream now, in this process, with a progress bar."""
        domain = _domain(name, "sync")
        if mode not in domain.sync_modes:
            raise typer.BadParameter(f"mode must be one of {', '.join(domain.sync_modes)}")
        assert domain.sync is not None
        run = domain.sync
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"{name} {mode}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                counts = with_runtime(lambda runtime: run(runtime, mode, account, progress))
            except JobFailed as failed:
                console.print(f"[red]{failed}[/]")
                raise typer.Exit(1) from failed
        console.print({k: v for k, v in counts.items() if k != "by_account"})
