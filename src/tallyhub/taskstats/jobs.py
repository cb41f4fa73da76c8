"""Jobs of the task-rollup domain, and their by-hand runs: the nightly scan of yesterday
(02:00, server time zone; the seed's cron line and shell script), `POST
/api/taskstats/scan` and `tallyhub taskstats scan --date` for any day."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tallyhub.core.columns import utcnow
from tallyhub.core.daywindow import zone
from tallyhub.core.jobs.registry import JobFailed, job
from tallyhub.core.runtime import Runtime
from tallyhub.taskstats import service
from tallyhub.taskstats.wiring import scan_context

ProgressFn = Callable[[int, int], None]


def yesterday(runtime: Runtime) -> date:
    return utcnow().astimezone(zone(runtime.settings.timezone)).date() - timedelta(days=1)


async def scan_day(
    runtime: Runtime, day: date, progress: ProgressFn | None = None
) -> service.ScanOutcome:
    async with scan_context(runtime) as ctx:
        return await service.scan(ctx, day, progress)


@job(
    "taskstats.daily_scan",
    cron="0 2 * * *",
    description="Roll up yesterday's task completions and send the partner callbacks",
)
async def daily_scan(runtime: Runtime) -> dict[str, Any]:
    outcome = await scan_day(runtime, yesterday(runtime))
    counts = outcome.counts()
    if outcome.errors:
        raise JobFailed(f"{len(outcome.errors)} of {outcome.tasks} tasks failed", counts)
    return counts


JOBS = (daily_scan,)

WithRuntime = Callable[[Callable[[Runtime], Awaitable[Any]]], Any]


def commands(with_runtime: WithRuntime, console: Console) -> typer.Typer:
    """`tallyhub taskstats …`."""
    cli = typer.Typer(help="Daily task rollups and partner callbacks.", no_args_is_help=True)

    @cli.command("scan")
    def scan_command(
        day: Annotated[
            str | None, typer.Option("--date", help="The day, YYYY-MM-DD (default yesterday)")
        ] = None,
    ) -> None:
        """Roll up a day's completions now, with a progress bar; callbacks go to the outbox."""
        try:
            wanted = None if day is None else date.fromisoformat(day)
        except ValueError as error:
            raise typer.BadParameter(f"--date must be YYYY-MM-DD, not {day!r}") from error
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("tasks", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            async def work(runtime: Runtime) -> service.ScanOutcome:
                return await scan_day(runtime, wanted or yesterday(runtime), progress)

            outcome: service.ScanOutcome = with_runtime(work)
        counts = outcome.counts()
        console.print({k: v for k, v in counts.items() if k != "errors"})
        for task_id, why in outcome.errors.items():
            console.print(f"[red]task {task_id}: {why}[/]")
        if outcome.errors:
            raise typer.Exit(1)

    return cli
