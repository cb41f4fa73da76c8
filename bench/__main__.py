"""`python -m bench` (what `make bench` runs): every benchmark module in turn, each table
printed as soon as it is measured. `python -m bench leads` runs only the named ones."""

from __future__ import annotations

import importlib
import sys

# Each module exposes `run() -> str`, which measures and returns its table.
MODULES: list[str] = ["leads", "clicks", "clicks_agents", "douplus", "taskstats", "callcenter"]


def main(argv: list[str]) -> int:
    names = argv or MODULES
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        table: str = module.run()
        print(table, flush=True)
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
