"""`tallyhub serve` says at start which scheduler runs the jobs (TALLYHUB_SCHEDULER), so
that an operator reading its log knows whether this process runs them."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest


def _first_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")  # the process ended


@pytest.mark.parametrize("mode", ["embedded", "celery", "off"])
def test_serve_logs_its_scheduler_mode(tmp_path: Path, mode: str) -> None:
    env = {
        **os.environ,
        "TALLYHUB_ENV": "test",
        "TALLYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tallyhub.db'}",
        "TALLYHUB_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "TALLYHUB_VAR_DIR": str(tmp_path / "var"),
        "TALLYHUB_SCHEDULER": mode,
    }
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "tallyhub"), "serve", "--no-migrate", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert serve.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_first_lines, args=(serve.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        # Said before it starts serving: what it prints first is enough (a bound, not a
        # measure: the server keeps running, silent, if it never says it).
        while (line := lines.get(timeout=60)) and not line.startswith("scheduler "):
            seen.append(line)
    except queue.Empty:
        line = ""
    finally:
        serve.terminate()
        serve.wait(30)
    assert line.startswith(f"scheduler {mode}: jobs run"), "".join(seen)
