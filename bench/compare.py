"""Two versions of the code, or of its settings, side by side on the two hot paths: the
clicks benchmark's batched run (b) and the leads benchmark's batched incoming run.

    python -m bench.compare /path/to/old/src src
    python -m bench.compare src,TALLYHUB_CLICKS__BATCHING__CONCURRENCY=1 src
    BENCH_COMPARE_PATHS=clicks python -m bench.compare /path/to/old/src src

Each argument is a source tree (the directory holding `tallyhub/`, e.g. a `git worktree`
of an older commit), optionally followed by comma-separated settings for its server; the
server runs from the tree through PYTHONPATH, with this checkout's migrations and load
generator. The runs alternate (old, new, new, old, …) so that the
machine's drift falls on both; each prints its rate, latency, writer figures and CPU per
click, and the table compares the means. On a shared machine the CPU per click moves much
less from run to run than the rate does.

Overrides: BENCH_COMPARE_PATHS (`clicks,leads`), BENCH_COMPARE_ROUNDS (4 runs of each),
BENCH_SECONDS (10), BENCH_CLICK_WORKERS (only the first is used; default 2), BENCH_WORKERS
(leads; default 1), and the two benchmarks' others.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from bench.clicks import (
    Sizes,
    _create_admin,
    check_exact,
    click_run,
    make_campaigns,
    replay_leftovers,
    server_env,
)
from bench.harness import (
    CpuUse,
    Server,
    Table,
    TempDatabase,
    env_int,
    log,
    run_fast,
    temp_database,
)
from bench.leads import Sizes as LeadSizes
from bench.leads import admin_token, incoming_run, make_http_groups
from bench.leads import check_exact as check_leads_exact
from bench.leads import server_env as leads_env


@dataclass(frozen=True)
class Variant:
    tree: Path
    settings: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, argument: str) -> Variant:
        tree, *settings = argument.split(",")
        pairs = []
        for setting in settings:
            key, equals, value = setting.partition("=")
            if not key or not equals:
                raise ValueError(f"{argument}: settings are KEY=VALUE, comma-separated")
            pairs.append((key, value))
        return cls(Path(tree).resolve(), tuple(pairs))

    def __str__(self) -> str:
        return ",".join([str(self.tree), *(f"{k}={v}" for k, v in self.settings)])


@dataclass(frozen=True)
class Measured:
    """One run of one variant on one path: its rate and CPU use."""

    rate: float
    cpu: CpuUse


Rounds = dict[Variant, list[Measured]]


async def compare(variants: list[Variant]) -> str:
    from tallyhub import migrate

    os.environ.setdefault("BENCH_SECONDS", "10")
    os.environ.setdefault("BENCH_CLICK_WORKERS", "2")
    paths = os.environ.get("BENCH_COMPARE_PATHS", "clicks,leads").split(",")
    rounds = env_int("BENCH_COMPARE_ROUNDS", 4)
    password = secrets.token_urlsafe(12)
    tables = []
    async with temp_database("compare") as db:
        await asyncio.to_thread(migrate.upgrade, db.url)
        await _create_admin(db, password)
        if "clicks" in paths:
            clicks = await _clicks_rounds(db, variants, rounds, password)
            workers = Sizes.from_env().workers[0]
            tables.append(_table(f"batched /__track, {workers} worker(s)", "click", clicks))
        if "leads" in paths:
            leads = await _leads_rounds(db, variants, rounds, password)
            workers = LeadSizes.from_env().workers
            title = f"batched POST /api/client/incoming, {workers} worker(s)"
            tables.append(_table(title, "lead", leads))
    return "\n\n".join(tables)


def _in_turn(variants: list[Variant], n: int) -> list[Variant]:
    """Round n's order: old, new; then new, old; … so the machine's drift falls on both."""
    return variants if n % 2 == 0 else variants[::-1]


def _variant_env(variant: Variant, env: dict[str, str]) -> dict[str, str]:
    return env | dict(variant.settings) | {"PYTHONPATH": str(variant.tree)}


async def _clicks_rounds(
    db: TempDatabase, variants: list[Variant], rounds: int, password: str
) -> Rounds:
    sizes = Sizes.from_env()
    workers = sizes.workers[0]
    secret = secrets.token_urlsafe(32)
    runs: Rounds = {variant: [] for variant in variants}
    for n in range(rounds):
        for variant in _in_turn(variants, n):
            var_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
            env = _variant_env(variant, server_env(db, secret, var_dir, batching=True))
            tag = f"r{n}-{variants.index(variant)}"
            async with Server(tag, env, workers=workers) as server:
                campaigns = await make_campaigns(server, password, tag)
                run = await click_run(server, sizes, tag, "/__track", campaigns, workers)
            run.spooled = await replay_leftovers(db, var_dir)
            await check_exact(db, campaigns, run)
            shutil.rmtree(var_dir, ignore_errors=True)
            if not run.exact_ok:
                raise SystemExit(f"{variant}: not exact: {run.exact}")
            runs[variant].append(Measured(run.rate, run.cpu))
            log(
                f"clicks {tag} {variant}: {run.rate:,.0f}/s p99 "
                f"{run.load.pct(99) * 1000:.1f} ms, {run.cpu.per_event(run.rate)}; {run.writer}"
            )
    return runs


async def _leads_rounds(
    db: TempDatabase, variants: list[Variant], rounds: int, password: str
) -> Rounds:
    sizes = LeadSizes.from_env()
    secret = secrets.token_urlsafe(32)
    runs: Rounds = {variant: [] for variant in variants}
    for n in range(rounds):
        for variant in _in_turn(variants, n):
            env = _variant_env(variant, leads_env(db, secret, batching=True))
            tag = f"leads-r{n}-{variants.index(variant)}"
            async with Server(tag, env, workers=sizes.workers) as server:
                token = await admin_token(server, "bench-admin", password)
                groups = await make_http_groups(server, token, sizes, tag)
                outcome = await incoming_run(server, groups, sizes, tag)
            exact = await check_leads_exact(db, groups, outcome.load)
            if not exact.startswith("yes"):
                raise SystemExit(f"{variant}: leads not exact: {exact}")
            rate = outcome.load.rate
            runs[variant].append(Measured(rate, outcome.cpu))
            log(f"leads {tag} {variant}: {rate:,.0f}/s, {outcome.cpu.per_event(rate)}")
    return runs


def _table(path: str, event: str, runs: Rounds) -> str:
    rounds = len(next(iter(runs.values())))
    seconds = Sizes.from_env().seconds
    table = Table(f"compare — {path}, {rounds} × {seconds:.0f} s each, alternating")
    base = next(iter(runs.values()))
    for variant, measured in runs.items():
        rate = mean(r.rate for r in measured)
        server_us = mean(r.cpu.server_us(r.rate) for r in measured)
        postgres = mean(r.cpu.postgres_us(r.rate) for r in measured)
        rates = ", ".join(f"{r.rate:,.0f}" for r in measured)
        table.add(f"{variant}: {event}s/s", f"{rate:,.0f} ({rates})")
        table.add(
            f"    CPU per {event}, server / postgres", f"{server_us:.0f} µs / {postgres:.0f} µs"
        )
        if measured is not base:
            table.add(
                "    against the first",
                f"rate {rate / mean(r.rate for r in base):.2f} ×, server CPU per {event} "
                f"{server_us / mean(r.cpu.server_us(r.rate) for r in base):.2f} ×",
            )
    table.note(f"every run exact (every acknowledged {event} counted once)")
    return table.render()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    try:
        variants = [Variant.parse(a) for a in argv]
    except ValueError as error:
        print(error)
        return 2
    if len(set(variants)) != len(variants):
        print("each variant once: runs are grouped by variant")
        return 2
    missing = [str(v.tree) for v in variants if not (v.tree / "tallyhub").is_dir()]
    if missing:
        print(f"not a source tree (no tallyhub/ inside): {', '.join(map(str, missing))}")
        return 2
    print(run_fast(lambda: compare(variants)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
