"""Two versions of the code, or of its settings, side by side on the clicks benchmark's
batched run (b).

    python -m bench.compare /path/to/old/src src
    python -m bench.compare src,TALLYHUB_CLICKS__BATCHING__CONCURRENCY=1 src

Each argument is a source tree (the directory holding `tallyhub/`, e.g. a `git worktree`
of an older commit), optionally followed by comma-separated settings for its server; the
server runs from the tree through PYTHONPATH, with this checkout's migrations and load
generator. The runs alternate (old, new, new, old, …) so that the
machine's drift falls on both; each prints its rate, latency, writer figures and CPU per
click, and the table compares the means. On a shared machine the CPU per click moves much
less from run to run than the rate does.

Overrides: BENCH_COMPARE_ROUNDS (4 runs of each), BENCH_SECONDS (10), BENCH_CLICK_WORKERS
(only the first is used; default 2), and the clicks benchmark's others.
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
    Run,
    Sizes,
    _create_admin,
    check_exact,
    click_run,
    make_campaigns,
    replay_leftovers,
    server_env,
)
from bench.harness import Server, Table, env_int, log, run_fast, temp_database


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


async def compare(variants: list[Variant]) -> str:
    from tallyhub import migrate

    os.environ.setdefault("BENCH_SECONDS", "10")
    os.environ.setdefault("BENCH_CLICK_WORKERS", "2")
    sizes = Sizes.from_env()
    workers = sizes.workers[0]
    rounds = env_int("BENCH_COMPARE_ROUNDS", 4)
    secret, password = secrets.token_urlsafe(32), secrets.token_urlsafe(12)
    runs: dict[Variant, list[Run]] = {variant: [] for variant in variants}
    async with temp_database("compare") as db:
        await asyncio.to_thread(migrate.upgrade, db.url)
        await _create_admin(db, password)
        for n in range(rounds):
            for variant in variants if n % 2 == 0 else variants[::-1]:
                var_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
                env = server_env(db, secret, var_dir, batching=True)
                env |= dict(variant.settings)
                env["PYTHONPATH"] = str(variant.tree)
                tag = f"r{n}-{variants.index(variant)}"
                async with Server(tag, env, workers=workers) as server:
                    campaigns = await make_campaigns(server, password, tag)
                    run = await click_run(server, sizes, tag, "/__track", campaigns, workers)
                run.spooled = await replay_leftovers(db, var_dir)
                await check_exact(db, campaigns, run)
                shutil.rmtree(var_dir, ignore_errors=True)
                if not run.exact_ok:
                    raise SystemExit(f"{variant}: not exact: {run.exact}")
                runs[variant].append(run)
                log(
                    f"{tag} {variant}: {run.rate:,.0f}/s p99 {run.load.pct(99) * 1000:.1f} ms, "
                    f"{run.cpu.per_event(run.rate)}; {run.writer}"
                )

    table = Table(
        f"compare — batched /__track, {workers} worker(s), {rounds} × {sizes.seconds:.0f} s "
        "each, alternating"
    )
    base = runs[variants[0]]
    for variant, measured in runs.items():
        rate = mean(r.rate for r in measured)
        server_us = mean(r.cpu.server_us(r.rate) for r in measured)
        postgres = mean(r.cpu.postgres_us(r.rate) for r in measured)
        rates = ", ".join(f"{r.rate:,.0f}" for r in measured)
        table.add(f"{variant}: clicks/s", f"{rate:,.0f} ({rates})")
        table.add("    CPU per click, server / postgres", f"{server_us:.0f} µs / {postgres:.0f} µs")
        if measured is not base:
            table.add(
                "    against the first",
                f"rate {rate / mean(r.rate for r in base):.2f} ×, server CPU per click "
                f"{server_us / mean(r.cpu.server_us(r.rate) for r in base):.2f} ×",
            )
    table.note("every run exact (302 answers − double clicks = counters = logs = days)")
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
