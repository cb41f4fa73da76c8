"""Benchmarks that print tables of figures and ratios measured side by side in one run.

`python -m bench` runs every module listed in `bench.__main__.MODULES`; each module
(`bench/leads.py`, …) also runs alone with `python -m bench.<name>`. The shared kit (a
throwaway PostgreSQL database, the real server as a subprocess, a keep-alive HTTP load
generator, the table) lives in `bench/harness.py`.
"""
